"""Create a stack's secrets (admin and webhook tokens, mode 0600) if they do not exist yet.

`stack up` calls this; under Docker Compose a one-shot service runs
`python -m stack.init_state /config/stack.json` before the others start.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from stack.settings import StackSettings


def ensure_secret(path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # created concurrently: keep theirs
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")


def ensure_secrets(settings: StackSettings) -> None:
    ensure_secret(settings.admin_token_file)
    ensure_secret(settings.webhook_token_file)


if __name__ == "__main__":
    ensure_secrets(StackSettings.load(Path(sys.argv[1])))
