"""Profiles: which broker, Prometheus, Alertmanager and auth service likkerctl talks to.

Resolution, later wins: built-in `local` profile (the local stack, read from its state dir)
→ `[profiles.NAME]` in `$XDG_CONFIG_HOME/likkerctl/config.toml` → `LIKKER_*` environment
variables. Secrets are never printed: `redacted()` is what `config show` prints.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likkerctl.core import contract
from likkerctl.core.contract.nodes import split_urls
from likkerctl.core.errors import InvalidInput
from likkerctl.core.paths import config_path, default_state_dir
from stack.settings import StackSettings  # the local stack's settings file (stack.json)

LOCAL = "local"


class ConfigError(InvalidInput):
    """A config file or profile that cannot be used as written."""


@dataclass
class Profile:
    name: str = LOCAL
    # One node's URL, or (on a cluster) the first of `amqp_urls` / `mgmt_urls`: every node,
    # tried in turn when one does not answer. Set either; `set_urls` keeps them in step.
    amqp_url: str = ""
    mgmt_url: str = ""
    amqp_urls: list[str] = field(default_factory=list)
    mgmt_urls: list[str] = field(default_factory=list)
    mgmt_user: str = "guest"
    mgmt_password: str = "guest"
    vhost: str = "/"
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    auth_url: str | None = None
    admin_token: str | None = None
    admin_token_file: str | None = None
    actions_queue: str = contract.ACTIONS_QUEUE
    dlq: str = contract.DLQ_QUEUE
    control_exchange: str = contract.CONTROL_EXCHANGE
    state_dir: str = ""
    # Audit log and forecast samples; SQLite in the state dir unless set.
    audit_db_url: str | None = None
    # Likes store of the stack, for checks and reports (LIKKER_DB_URL).
    db_url: str | None = None
    # Where `likkerctl-NAME` executable plugins are looked for before PATH
    # (default: plugins/ beside the config file).
    plugins_dir: str = ""
    # RabbitMQ's CLI tools can reach this node (side-effect-free peek): its name, a file
    # holding its Erlang cookie, and its epmd port when not 4369. The local stack's are known.
    node: str | None = None
    erlang_cookie_file: str | None = None
    epmd_port: str | None = None
    # Field aliases for --where, top --by, peek --show (`tenant = "header.x-tenant"`), on
    # top of the Likker contract's (bot, user, post, action).
    aliases: dict[str, str] = field(default_factory=dict)
    # Where each value came from, for `config show`.
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def audit_url(self) -> str:
        return self.audit_db_url or f"sqlite:///{self.state_path / 'likkerctl.db'}"

    def amqp_nodes(self) -> list[str]:
        return list(self.amqp_urls) or split_urls(self.amqp_url)

    def mgmt_nodes(self) -> list[str]:
        return list(self.mgmt_urls) or split_urls(self.mgmt_url)

    def set_urls(self, key: str, value: str | list[str]) -> None:
        """Set `amqp_url(s)` or `mgmt_url(s)` from one URL, a comma-separated list or a list."""
        kind = key.removesuffix("s")
        urls = split_urls(value)
        setattr(self, kind, urls[0] if urls else "")
        setattr(self, f"{kind}s", urls)

    def token(self) -> str | None:
        """The auth admin token, from the profile or its file; None when neither is set."""
        if self.admin_token:
            return self.admin_token
        if self.admin_token_file:
            path = Path(self.admin_token_file).expanduser()
            try:
                return path.read_text().strip() or None
            except OSError:
                return None
        return None

    def redacted(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "sources"}
        data["amqp_url"] = redact_url(self.amqp_url)
        data["mgmt_url"] = redact_url(self.mgmt_url)
        data["amqp_urls"] = [redact_url(u) for u in self.amqp_urls]
        data["mgmt_urls"] = [redact_url(u) for u in self.mgmt_urls]
        data["mgmt_password"] = "***" if self.mgmt_password else None
        data["admin_token"] = "***" if self.admin_token else None
        for key in ("audit_db_url", "db_url", "prometheus_url", "alertmanager_url", "auth_url"):
            if data[key]:
                data[key] = redact_url(data[key])
        return data


FIELDS = {f.name for f in dataclasses.fields(Profile)} - {"name", "sources"}
URL_KEYS = ("amqp_url", "mgmt_url", "amqp_urls", "mgmt_urls")
URL_LISTS = ("amqp_urls", "mgmt_urls")

ENV = {
    "LIKKER_AMQP_URL": "amqp_url",
    "LIKKER_MGMT_URL": "mgmt_url",
    "LIKKER_MGMT_USER": "mgmt_user",
    "LIKKER_MGMT_PASSWORD": "mgmt_password",
    "LIKKER_VHOST": "vhost",
    "LIKKER_PROMETHEUS_URL": "prometheus_url",
    "LIKKER_ALERTMANAGER_URL": "alertmanager_url",
    "LIKKER_AUTH_URL": "auth_url",
    "LIKKER_ADMIN_TOKEN": "admin_token",
    "LIKKER_ADMIN_TOKEN_FILE": "admin_token_file",
    "LIKKER_ACTIONS_QUEUE": "actions_queue",
    "LIKKER_DLQ": "dlq",
    "LIKKER_STATE_DIR": "state_dir",
    "LIKKER_AUDIT_DB_URL": "audit_db_url",
    "LIKKER_DB_URL": "db_url",
    "LIKKER_PLUGINS_DIR": "plugins_dir",
}


def redact_url(url: str) -> str:
    """`scheme://user:secret@host/...` → `scheme://user:***@host/...`."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def read_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    unknown = set(data) - {"default_profile", "profiles"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigError(f"{path}: [profiles.NAME] must be tables")
    for name, table in profiles.items():
        bad = set(table) - FIELDS
        if bad:
            raise ConfigError(
                f"{path}: profile {name!r}: unknown key(s) {', '.join(sorted(bad))}; "
                f"known: {', '.join(sorted(FIELDS))}"
            )
        aliases = table.get("aliases", {})
        if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
            raise ConfigError(f'{path}: profile {name!r}: aliases are name = "field" strings')
        for key, value in table.items():
            if key in URL_LISTS:
                if isinstance(value, str) or (
                    isinstance(value, list) and value and all(isinstance(v, str) for v in value)
                ):
                    continue
                raise ConfigError(
                    f"{path}: profile {name!r}: {key} must be a list of URLs (or one string)"
                )
            if key != "aliases" and not isinstance(value, str):
                raise ConfigError(f"{path}: profile {name!r}: {key} must be a string")
    return data


def local_profile(environ: Mapping[str, str]) -> Profile:
    """The local stack: its settings file when a stack has run, else its default ports."""

    state = default_state_dir(environ).resolve()
    settings_file = state / "stack.json"
    settings = StackSettings.load(settings_file) if settings_file.exists() else StackSettings(state)
    return Profile(
        name=LOCAL,
        amqp_url=settings.amqp_url,
        mgmt_url=settings.management_url,
        amqp_urls=settings.amqp_urls,
        mgmt_urls=settings.management_urls,
        mgmt_user=settings.rabbit_user,
        mgmt_password=settings.rabbit_password,
        prometheus_url=settings.prometheus_url,
        alertmanager_url=settings.alertmanager_url,
        auth_url=settings.auth_url,
        admin_token_file=str(settings.admin_token_file),
        state_dir=str(state),
        db_url=settings.likes_store_url,
        # The stack keeps likkerctl's audit log, ledger and samples in its own database
        # server when it has one; with SQLite, the default file in the state dir.
        audit_db_url=None
        if settings.db == "sqlite" and not settings.db_url
        else (settings.audit_store_url),
        # Node 1, reachable by RabbitMQ's CLI with the stack's one cookie (every node's).
        node=settings.node_name,
        erlang_cookie_file=str(state / "erlang.cookie"),
        epmd_port=str(settings.ports.epmd),
        sources={"*": f"local stack ({state})"},
    )


def load_profile(name: str | None = None, environ: Mapping[str, str] | None = None) -> Profile:
    env = os.environ if environ is None else environ
    path = config_path(env)
    data = read_config(path)
    profiles: dict[str, dict[str, str]] = data.get("profiles", {})
    chosen = name or env.get("LIKKER_PROFILE") or data.get("default_profile") or LOCAL
    profile = local_profile(env)
    if chosen != LOCAL or LOCAL in profiles:
        if chosen not in profiles and chosen != LOCAL:
            known = ", ".join(sorted({LOCAL, *profiles}))
            raise ConfigError(f"unknown profile {chosen!r} (in {path}); profiles: {known}")
        table = profiles.get(chosen, {})
        if chosen != LOCAL:
            # A named profile starts from neutral defaults, not from the local stack.
            profile = Profile(name=chosen, state_dir=profile.state_dir)
            profile.sources = {"*": "defaults"}
        for key, value in table.items():
            if key in URL_KEYS:
                profile.set_urls(key, value)
            else:
                setattr(profile, key, value)
            profile.sources[key] = str(path)
    for var, key in ENV.items():
        if env.get(var):
            if key in URL_KEYS:  # one URL or a comma-separated list
                profile.set_urls(key, env[var])
            else:
                setattr(profile, key, env[var])
            profile.sources[key] = var
    # A single URL (or a comma-separated one) from any source: the lists follow it.
    profile.set_urls("amqp_urls", profile.amqp_nodes())
    profile.set_urls("mgmt_urls", profile.mgmt_nodes())
    plain = []
    for url in profile.mgmt_urls:
        # Credentials in the URL win over mgmt_user/mgmt_password.
        parts = urllib.parse.urlsplit(url)
        if parts.username:
            profile.mgmt_user = urllib.parse.unquote(parts.username)
            profile.mgmt_password = urllib.parse.unquote(parts.password or "")
            host = parts.netloc.rpartition("@")[2]
            url = urllib.parse.urlunsplit(parts._replace(netloc=host))
        plain.append(url)
    profile.set_urls("mgmt_urls", plain)
    if not profile.plugins_dir:
        profile.plugins_dir = str(path.parent / "plugins")
    for key in ("amqp_url", "mgmt_url"):
        if not getattr(profile, key):
            raise ConfigError(
                f"profile {chosen!r} has no {key} (set it in {path} or {key_env(key)})"
            )
    return profile


def key_env(key: str) -> str:
    return next((var for var, k in ENV.items() if k == key), key)
