"""Run the gateway of a stack: python -m stack.gateway <state>/stack.json"""

import sys
from pathlib import Path

from likkerctl.core.contract.http import serve
from stack.gateway.app import GatewaySettings, create_app
from stack.settings import StackSettings

settings = StackSettings.load(Path(sys.argv[1]))
app = create_app(
    GatewaySettings(
        amqp_url=",".join(settings.amqp_urls),
        auth_url=settings.auth_url,
        likes_url=settings.likes_url,
    )
)
serve(app, settings.listen_host, settings.ports.gateway)
