"""Replay: re-run the pipeline over the raw topic's history and replace a time range of the datasources."""
