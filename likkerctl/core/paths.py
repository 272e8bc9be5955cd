"""Where likkerctl keeps its state; read once from the environment by the CLI and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("LIKKER_STATE_DIR"):
        return Path(env["LIKKER_STATE_DIR"]).expanduser()
    base = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local/state"
    )
    return Path(base) / "likker"
