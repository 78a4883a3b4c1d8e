"""Import an assets bundle into Superset, overwriting what it holds: run by Superset's own
interpreter (``<superset env>/bin/python import_assets.py BUNDLE.zip USERNAME``), never imported
by clickpipe.

``superset import-dashboards`` keeps existing databases, datasets and charts as they are, so a
changed asset would never reach an existing home; Superset's assets import (the command behind
``POST /api/v1/assets/import/``) overwrites every object of the bundle, matched by uuid.
"""

import sys
from zipfile import ZipFile

from flask import g
from superset.app import create_app


def main(bundle: str, username: str) -> None:
    app = create_app()
    with app.app_context():
        from superset import security_manager
        from superset.commands.exceptions import CommandInvalidError
        from superset.commands.importers.v1.assets import ImportAssetsCommand
        from superset.commands.importers.v1.utils import get_contents_from_bundle

        g.user = security_manager.find_user(username=username)
        with ZipFile(bundle) as archive:
            contents = get_contents_from_bundle(archive)
        try:
            ImportAssetsCommand(contents).run()
        except CommandInvalidError as exc:
            sys.exit(f"invalid bundle {bundle}: {exc.normalized_messages()}")


if __name__ == "__main__":
    main(*sys.argv[1:])
