"""The pipeline's Faust app, configured from the environment.

Start a worker with ``faust -A app.main worker -l info`` (or ``clickpipe worker``). Several
workers on one host need distinct ``CLICKPIPE_PIPELINE_DATADIR`` and
``CLICKPIPE_PIPELINE_WEB_PORT``.
"""

from app.factory import create_app
from clickpipe.config import settings

app = create_app(settings)
