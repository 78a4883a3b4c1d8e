"""The collector: Falcon endpoints (tag, pixel, JSON batch, Divolte pixel) that validate events
and produce RawClick records to Kafka, keyed by party id."""
