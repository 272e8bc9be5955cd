"""Reaching a cluster through any of its nodes: a list of AMQP URLs, tried in turn.

Shared by the stack's clients (gateway, auth, takers) and likkerctl, so every client fails
over the same way: a comma-separated list (or a sequence) of URLs, the node that answered
last tried first, one log line when a connection lands on another node than before, and a
backoff between rounds that found no node at all (never a busy loop).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Sequence

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingConnection


def split_urls(urls: str | Sequence[str]) -> list[str]:
    """`"a,b"` or `["a", "b,c"]` → `["a", "b", "c"]` (blanks dropped, order kept)."""
    items = [urls] if isinstance(urls, str) else list(urls)
    return [u.strip() for item in items for u in item.split(",") if u.strip()]


def where(url: str) -> str:
    """host:port of a URL, for log lines (never its credentials)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class Backoff:
    """Delays between rounds that reached no node: `first`, doubling, at most `most`."""

    def __init__(self, first: float = 0.5, most: float = 5.0) -> None:
        self.first, self.most = first, most
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Nodes:
    """The nodes one client may use; remembers which one it is on."""

    def __init__(
        self,
        urls: str | Sequence[str],
        who: str,
        log: logging.Logger,
        *,
        socket_timeout: float | None = None,
    ) -> None:
        self.urls = split_urls(urls)
        if not self.urls:
            raise ValueError("no AMQP URL given")
        self.who = who
        self.log = log
        self.socket_timeout = socket_timeout
        self.index = 0  # the node to try first
        self.current: str | None = None  # the node of the last connection that opened

    def params(self, url: str) -> pika.URLParameters:
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        if self.socket_timeout is not None:
            params.socket_timeout = self.socket_timeout
        return params

    def order(self) -> list[str]:
        """Every URL, starting with the one to try first."""
        return self.urls[self.index :] + self.urls[: self.index]

    def opened(self, url: str) -> None:
        """A connection to `url` opened: log it if that is a failover, try it first next time."""
        if self.current is not None and url != self.current:
            self.log.warning(
                "%s: failover: now on %s (was %s)", self.who, where(url), where(self.current)
            )
        self.current = url
        self.index = self.urls.index(url)

    def failed(self, url: str) -> None:
        """`url` did not answer: try the one after it first next time."""
        self.index = (self.urls.index(url) + 1) % len(self.urls)

    def connect(self) -> BlockingConnection:
        """A blocking connection to the first node that answers; raises the last error if none."""
        error: Exception | None = None
        for url in self.order():
            try:
                conn = BlockingConnection(self.params(url))
            except (
                pika.exceptions.ProbableAuthenticationError,
                pika.exceptions.ProbableAccessDeniedError,
            ):
                raise  # the same credentials everywhere: another node would refuse too
            except (pika.exceptions.AMQPError, OSError) as exc:
                error = exc
                self.failed(url)
                continue
            self.opened(url)
            return conn
        assert error is not None
        raise error
