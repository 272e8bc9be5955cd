#!/usr/bin/env bash
# Set up and run Likker on a fresh Debian 12 machine (as root), or run the test suite.
#
#   bash bootstrap.sh demo   # the stack + the Friday incident, in the dashboard
#   bash bootstrap.sh test   # lint, type-check, import layers and the whole test suite
#
# Both install what is missing first: the Debian packages (RabbitMQ, Prometheus,
# Alertmanager, PostgreSQL), a virtualenv in .venv, and this project into it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
DEB_PACKAGES=(rabbitmq-server prometheus prometheus-alertmanager postgresql)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: need root to install Debian packages: $*" >&2
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_debian_packages() {
  local missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

ensure_venv() {
  local extras="$1"
  if ! command -v python3 >/dev/null; then
    log "installing python3"
    apt_install python3 python3-venv
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  # Reinstall only when the project's dependencies changed.
  local stamp="$VENV/.installed-${extras:-base}"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing likkerctl${extras:+[$extras]} into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$ROOT${extras:+[$extras]}"
    echo "$want" >"$stamp"
  fi
}

cmd_demo() {
  ensure_debian_packages
  ensure_venv ""
  local ctl="$VENV/bin/likkerctl"
  local state="${LIKKER_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/likker}"
  log "starting the stack with the legacy retry policy (requeue), as on that Friday,"
  log "and only ${LIKKER_DEMO_HEADROOM:-1GB} of disk above the broker's limit"
  "$ctl" stack up --retry-policy requeue --disk-headroom "${LIKKER_DEMO_HEADROOM:-1GB}"
  mkdir -p "$state/logs"
  log "replaying the Friday incident in the background (log: $state/logs/demo-load.log)"
  "$ctl" stack load --scenario friday --rate 200 --duration "${LIKKER_DEMO_SECONDS:-600}" \
    >"$state/logs/demo-load.log" 2>&1 &
  # Global, not local: the EXIT trap runs after this function has returned.
  DEMO_LOAD_PID=$!
  trap 'kill "$DEMO_LOAD_PID" 2>/dev/null || true' EXIT
  sleep 5
  log "opening the dashboard (q quits and stops the load; the stack keeps running)"
  "$ctl" dashboard
  echo "    the stack is still running; stop it with: $ctl stack down" >&2
}

cmd_test() {
  ensure_debian_packages
  ensure_venv dev
  cd "$ROOT"
  log "ruff"
  "$VENV/bin/ruff" check .
  "$VENV/bin/ruff" format --check .
  log "mypy"
  "$VENV/bin/mypy"
  "$VENV/bin/mypy" plugins/chat-notify/likkerctl_chat_notify
  log "import layers (lint-imports)"
  "$VENV/bin/lint-imports"
  log "pytest"
  "$VENV/bin/pytest" "$@"
}

case "${1:-}" in
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  *)
    echo "usage: bash bootstrap.sh demo|test [pytest args]" >&2
    exit 2
    ;;
esac
