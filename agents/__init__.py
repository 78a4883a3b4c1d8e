"""Agents: thin wiring between topics, tables and the steps in :mod:`steps`.

To add an output fed by the enriched topic, add a module here with a ``register(app,
settings, ...)`` function and call it from :func:`app.factory.create_app` (docs/pipeline.md
has a worked example).
"""
