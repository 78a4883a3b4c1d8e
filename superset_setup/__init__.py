"""Apache Superset for analysts, on the Druid datasources: installed into an environment of its
own (never the pipeline's), configured in the state directory, provisioned from the export files
in ``assets/`` (database, datasets, charts, the "Click stream" dashboard) and served on loopback.

- :mod:`superset_setup.install`: the pinned environment under the cache directory.
- :mod:`superset_setup.home`: Superset's configuration, secret key and admin credentials.
- :mod:`superset_setup.bundle`: the import bundle built from ``assets/`` and the settings.
- :mod:`superset_setup.provision`: ``superset db upgrade``/``init``/``fab create-admin``, the
  assets import (:mod:`superset_setup.import_assets`), and the server's command line.
"""
