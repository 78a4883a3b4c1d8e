"""The live dashboard: one page served by Falcon, its numbers read from Druid through druid.queries."""
