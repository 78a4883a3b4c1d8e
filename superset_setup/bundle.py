"""The import bundle of the "Click stream" dashboard, built from ``assets/`` and the settings.

``assets/`` holds Superset's own export format (version 1.0.0): ``databases/``, ``datasets/``,
``charts/`` and ``dashboards/`` YAML files and ``metadata.yaml``, as Superset's "Export" writes
them. Objects are matched by their ``uuid`` on import, so importing again updates them in place.
The few values that depend on the deployment are ``${name}`` placeholders, replaced here by JSON
values (which YAML reads as they are), or, for names ending in ``_sql``, by SQL text for use inside
a YAML block scalar:

- ``${sqlalchemy_uri}``: pydruid's dialect URL of the broker (``CLICKPIPE_DRUID_BROKER_URL``);
- ``${clicks_datasource}``, ``${sessions_datasource}``: the datasource names;
- ``${clicks_table_sql}``: the clicks datasource as a quoted SQL identifier (virtual datasets);
- ``${clicks_columns}``, ``${sessions_columns}``: the datasets' columns, derived from
  druid/datasources.toml so a new dimension appears in Superset without editing the assets;
- ``${funnel_pages}``: the funnel's URL paths (``CLICKPIPE_SUPERSET_FUNNEL_PAGES``).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from clickpipe.config import Settings
from druid.specs import Datasource, load_declaration

ASSETS = Path(__file__).resolve().parent / "assets"
ROOT = "click_stream"  # the folder inside the zip, as Superset's export names one
DASHBOARD_SLUG = "click-stream"
# Druid SQL types of the declaration's dimension types (see druid/datasources.toml).
_SQL_TYPES = {"string": "VARCHAR", "boolean": "VARCHAR", "url": "VARCHAR", "long": "BIGINT", "double": "DOUBLE",
              "float": "FLOAT", "json": "COMPLEX<json>"}


def sqlalchemy_uri(broker_url: str) -> str:
    """pydruid's SQLAlchemy URL of the broker at ``broker_url``."""
    parts = urlsplit(broker_url)
    scheme = "druid+https" if parts.scheme == "https" else "druid"
    return f"{scheme}://{parts.netloc}/druid/v2/sql/"


def columns(ds: Datasource) -> list[dict[str, Any]]:
    """Superset's column entries of a datasource: its time, dimensions and promoted map keys."""
    entries = [{"column_name": "__time", "is_dttm": True, "type": "TIMESTAMP", "groupby": True, "filterable": True}]
    dimensions = dict(ds.dimensions)
    dimensions.update({ds.map_dimension(f, k): "string" for f, keys in ds.maps.items() for k in keys})
    # A nested (json) column is read with JSON_VALUE in SQL; it cannot be grouped or filtered as is.
    entries += [{"column_name": name, "is_dttm": False, "type": _SQL_TYPES[kind], "groupby": kind != "json",
                 "filterable": kind != "json"} for name, kind in dimensions.items()]
    return entries


def sql_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def values(settings: Settings) -> dict[str, str]:
    """Each placeholder's value, as text to put in the YAML."""
    declaration = load_declaration()
    sql = {"clicks_table_sql": sql_identifier(settings.druid_clicks_datasource)}
    return sql | {name: json.dumps(value) for name, value in {
        "sqlalchemy_uri": sqlalchemy_uri(settings.druid_broker_url),
        "clicks_datasource": settings.druid_clicks_datasource,
        "sessions_datasource": settings.druid_sessions_datasource,
        "clicks_columns": columns(declaration["clicks"]),
        "sessions_columns": columns(declaration["sessions"]),
        "funnel_pages": list(settings.superset_funnel_pages),
    }.items()}


def files(settings: Settings) -> dict[str, str]:
    """The bundle's files (path inside ``ROOT`` → text), placeholders replaced."""
    replacements = values(settings)
    return {str(path.relative_to(ASSETS)): Template(path.read_text()).substitute(replacements)
            for path in sorted(ASSETS.rglob("*.yaml"))}


def build(settings: Settings) -> bytes:
    """The zip Superset's assets import takes (metadata type ``assets``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, text in files(settings).items():
            bundle.writestr(f"{ROOT}/{name}", text)
    return buffer.getvalue()
