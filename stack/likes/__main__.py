"""Run the likes service of a stack: python -m stack.likes <state>/stack.json"""

import sys
from pathlib import Path

from likkerctl.core.contract.http import serve
from stack.likes.app import LikesSettings, create_app
from stack.settings import StackSettings

settings = StackSettings.load(Path(sys.argv[1]))
app = create_app(
    LikesSettings(
        store_url=settings.likes_store_url,
        auth_url=settings.auth_url,
        admin_token=settings.admin_token(),
    )
)
serve(app, settings.listen_host, settings.ports.likes)
