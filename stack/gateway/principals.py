"""Who a bearer token belongs to, cached, with bot blocks applied from the next request on.

The gateway asks auth's /v1/introspect at most once per request, and only on a cache miss.
The auth service announces every bot block on `likker.auth.events`; a listener thread drops
that bot's cached tokens as soon as the event arrives, and the TTL bounds staleness if an
event was ever missed (broker down when the operator blocked).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import httpx
import pika

from likkerctl.core.contract.nodes import Backoff, Nodes
from stack.topology import AUTH_EVENTS_EXCHANGE

log = logging.getLogger("likker.gateway.principals")


@dataclass(frozen=True)
class Principal:
    user_id: int
    bot_id: int | None
    blocked: bool
    blocked_reason: str | None = None


class AuthUnavailable(Exception):
    pass


class PrincipalCache:
    def __init__(self, client: httpx.AsyncClient, ttl_seconds: float = 30.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[Principal | None, float]] = {}

    async def resolve(self, token: str) -> Principal | None:
        """The token's principal, or None for an unknown token."""
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            resp = await self._client.get(
                "/v1/introspect", headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(str(exc)) from exc
        if resp.status_code == 401:
            principal = None
        elif resp.status_code == 200:
            data = resp.json()
            principal = Principal(
                data["user_id"], data["bot_id"], data["blocked"], data.get("blocked_reason")
            )
        else:
            raise AuthUnavailable(f"auth answered {resp.status_code}")
        # Unknown tokens are cached briefly so a flood of bad tokens does not flood auth.
        ttl = self._ttl if principal is not None else min(self._ttl, 2.0)
        self._entries[token] = (principal, now + ttl)
        if len(self._entries) > 100_000:
            self._entries.clear()
        return principal

    def clear(self) -> None:
        self._entries.clear()

    def forget_bot(self, bot_id: int) -> int:
        """Drop every cached token of a bot (thread-safe enough: dict ops hold the GIL)."""
        stale = [
            tok
            for tok, (p, _) in list(self._entries.items())
            if p is not None and p.bot_id == bot_id
        ]
        for tok in stale:
            self._entries.pop(tok, None)
        return len(stale)


class BlockEventListener:
    """Consumes auth's bot block events from a private queue and invalidates the cache."""

    def __init__(self, amqp_url: str, cache: PrincipalCache) -> None:
        self._nodes = Nodes(amqp_url, "auth-events", log)
        self._backoff = Backoff(1.0, 5.0)
        self._cache = cache
        self._stopping = False
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auth-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True

    def _run(self) -> None:
        while not self._stopping:
            try:
                conn = self._nodes.connect()
                channel = conn.channel()
                channel.exchange_declare(AUTH_EVENTS_EXCHANGE, exchange_type="fanout", durable=True)
                queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
                channel.queue_bind(queue, AUTH_EVENTS_EXCHANGE)
                channel.basic_consume(queue, self._on_event, auto_ack=True)
                # Events may have been missed while disconnected: start from a clean cache.
                self._cache.clear()
                self.connected.set()
                self._backoff.reset()
                while not self._stopping:
                    conn.process_data_events(time_limit=0.5)
                conn.close()
            except (pika.exceptions.AMQPError, OSError) as exc:
                was_connected = self.connected.is_set()
                self.connected.clear()
                log.warning("auth events listener disconnected: %s", exc)
                # A connection that had worked: another node at once; none answering: back off.
                time.sleep(0.1 if was_connected else self._backoff.next())

    def _on_event(self, _ch: object, _method: object, _props: object, body: bytes) -> None:
        try:
            event = json.loads(body)
            bot_id = int(event["bot_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed auth event: %r", body[:200])
            return
        dropped = self._cache.forget_bot(bot_id)
        log.info("%s bot %s: dropped %d cached tokens", event.get("event"), bot_id, dropped)
