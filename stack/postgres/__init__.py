"""The stack's private PostgreSQL server (Debian's `postgresql`): its files, argv and health.

It runs as the `postgres` user when we are root (PostgreSQL refuses root), on its own port
and socket dir, with one database per user of it: `likes`, `auth` and `likkerctl`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from stack.settings import POSTGRES_DATABASES, POSTGRES_USER, StackSettings

BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"
# Where a cluster goes when the postgres user cannot reach the state dir (root's home is
# 0700): its own home from Debian's package, one directory per state dir.
FALLBACK_ROOT = Path("/var/lib/postgresql/likker")


class PostgresError(Exception):
    """The private server cannot be set up; the message says why and where to look."""


def run_as() -> str | None:
    """The user the server runs as: `postgres` when we are root, else ourselves."""
    return SERVICE_USER if os.geteuid() == 0 else None


def _user_can_enter(path: Path, user: str | None) -> bool:
    """Whether `user` may reach into `path` (search permission on it and every ancestor)."""
    if user is None:
        return os.access(path, os.X_OK)
    probe = subprocess.run(["test", "-x", str(path)], user=user, check=False)
    return probe.returncode == 0


def server_dir(settings: StackSettings) -> Path:
    """The directory of the cluster (`data/`) and its socket: `<state>/postgres`, or, when
    the server's user cannot reach into the state dir (root's home is 0700), one under the
    postgres user's home, which `<state>/postgres` then links to."""
    link = settings.state_dir / "postgres"
    if link.is_symlink():
        return link.resolve()
    if link.is_dir() or _user_can_enter(settings.state_dir, run_as()):
        return link
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:16]
    return FALLBACK_ROOT / digest


def prepare(settings: StackSettings) -> Path:
    """Create the server's directory (owned by its user) and the cluster if missing."""
    user = run_as()
    base = server_dir(settings)
    link = settings.state_dir / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    if user is not None:
        if base != link:
            shutil.chown(FALLBACK_ROOT, user, user)
        shutil.chown(base, user, user)
    os.chmod(base, 0o700)
    if base != link and not link.is_symlink():
        link.symlink_to(base, target_is_directory=True)
    data = base / "data"
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-made cluster from an initdb that died
        initdb = [
            str(BIN / "initdb"),
            "-D", str(data),
            "-A", "trust",
            "-U", POSTGRES_USER,
            "-E", "UTF8",
            "--locale=C.UTF-8",
        ]  # fmt: skip
        result = subprocess.run(
            initdb,
            user=user,
            cwd=base,
            env=user_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise PostgresError(f"initdb of {data} failed: {' '.join(tail) or 'no output'}")
    return base


def argv(settings: StackSettings) -> list[str]:
    """The postmaster in the foreground, so its pid is the part's pid (not pg_ctl's)."""
    base = server_dir(settings)
    return [
        str(BIN / "postgres"),
        "-D", str(base / "data"),
        "-p", str(settings.ports.postgres),
        "-k", str(base),
        "-c", f"listen_addresses={settings.host}",
        # Rows keep naive UTC timestamps whatever the machine's zone (the SQLite store too).
        "-c", "timezone=UTC",
        "-c", "max_connections=200",
    ]  # fmt: skip


def ready(settings: StackSettings) -> bool:
    probe = [
        str(BIN / "pg_isready"),
        "-h", settings.host,
        "-p", str(settings.ports.postgres),
        "-U", POSTGRES_USER,
        "-d", "postgres",
        "-q",
    ]  # fmt: skip
    result = subprocess.run(probe, check=False, timeout=10)
    return result.returncode == 0


def create_databases(settings: StackSettings) -> None:
    """The stack's databases on its own server, created on first start."""
    # psycopg takes 0.2 s to import: only stacks that run their own server pay for it.
    import psycopg
    import psycopg.sql

    with psycopg.connect(
        host=settings.host,
        port=settings.ports.postgres,
        user=POSTGRES_USER,
        dbname="postgres",
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in POSTGRES_DATABASES:
            if name not in have:
                # CREATE DATABASE takes no bind parameters: the name goes in quoted.
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name))
                )


def user_env() -> dict[str, str] | None:
    """The server's environment: the postgres user's HOME, not root's."""
    user = run_as()
    if user is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=pwd.getpwnam(user).pw_dir, USER=user, LOGNAME=user)
    return env


def wipe(settings: StackSettings) -> None:
    """Delete the cluster, also when it lives outside the state dir."""
    link = settings.state_dir / "postgres"
    if link.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(link.resolve())


def server_url(settings: StackSettings) -> str:
    """The server, as `stack status` shows it (no database: there are three)."""
    return f"postgresql://{POSTGRES_USER}@{settings.host_of('postgres')}:{settings.ports.postgres}"


def failure(log: str) -> str:
    """The server's last FATAL/PANIC line: why it stopped, in its own words."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):
        for mark in ("FATAL:", "PANIC:"):
            if mark in line:
                return line.split(mark, 1)[1].strip()
    return lines[-1].strip() if lines else "no output"
