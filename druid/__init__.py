"""Druid: ingestion specs derived from the schemas, supervisor management, analyst queries."""
