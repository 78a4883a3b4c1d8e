"""clickpipe: self-hosted real-time click-stream analytics (collector → Kafka → Faust → Druid)."""

__version__ = "0.1.0"
