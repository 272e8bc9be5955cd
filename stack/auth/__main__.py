"""Run the auth service of a stack: python -m stack.auth <state>/stack.json"""

import sys
from pathlib import Path

from likkerctl.core.contract.http import serve
from stack.auth.app import AuthSettings, create_app
from stack.settings import StackSettings

settings = StackSettings.load(Path(sys.argv[1]))
app = create_app(
    AuthSettings(
        store_url=settings.auth_store_url,
        admin_token=settings.admin_token(),
        amqp_url=",".join(settings.amqp_urls),
    )
)
serve(app, settings.listen_host, settings.ports.auth)
