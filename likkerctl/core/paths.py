"""Where likkerctl keeps its state and finds its config file, from the environment given."""

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


def config_path(environ: Mapping[str, str]) -> Path:
    if environ.get("LIKKER_CONFIG"):
        return Path(environ["LIKKER_CONFIG"]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "likkerctl" / "config.toml"
