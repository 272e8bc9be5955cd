"""Load generator with incident scenarios (`likkerctl stack load`).

`normal`: users like posts, cycling through distinct (user, post) pairs, so every accepted
like should be stored. `friday`: the same, plus a bot owned by a banned user hammering the
banner's post, which the likes service refuses every time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import requests

SCENARIOS = ("normal", "friday")


class LoadError(Exception):
    pass


@dataclass
class Actor:
    user_id: int
    token: str
    bot_id: int | None = None


@dataclass
class Population:
    users: list[Actor]
    posts: list[int]
    bot: Actor | None = None  # friday: the banned user's bot
    target_post: int | None = None  # friday: the banner's post
    banner_user_id: int | None = None
    banned_user_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "posts": len(self.posts),
            "bot_id": self.bot.bot_id if self.bot else None,
            "bot_user_id": self.banned_user_id,
            "banner_user_id": self.banner_user_id,
            "target_post": self.target_post,
        }


def _check(resp: requests.Response, what: str) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise LoadError(f"{what} failed: HTTP {resp.status_code} {resp.text[:200]}")
    data: dict[str, Any] = resp.json()
    return data


def setup_population(
    gateway_url: str, auth_url: str, admin_token: str, *, users: int, posts: int, friday: bool
) -> Population:
    """Create users, posts and (friday) the ban and the bot, through the real APIs."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    http = requests.Session()
    try:
        created = [
            _check(
                http.post(
                    f"{auth_url}/v1/users", json={"name": f"user-{i}"}, headers=admin, timeout=10
                ),
                "creating a user",
            )
            for i in range(users)
        ]
    except requests.RequestException as exc:
        raise LoadError(f"auth service unreachable at {auth_url}: {exc}") from exc
    actors = [Actor(u["user_id"], u["token"]) for u in created]
    post_ids = []
    for i in range(posts):
        author = actors[i % len(actors)]
        post = _check(
            http.post(
                f"{gateway_url}/v1/posts",
                json={"text": f"post {i}"},
                headers={"Authorization": f"Bearer {author.token}"},
                timeout=10,
            ),
            "creating a post",
        )
        post_ids.append(post["post_id"])
    pop = Population(actors, post_ids)
    if friday:
        banner = _check(
            http.post(f"{auth_url}/v1/users", json={"name": "banner"}, headers=admin, timeout=10),
            "creating the banner",
        )
        banned = _check(
            http.post(f"{auth_url}/v1/users", json={"name": "banned"}, headers=admin, timeout=10),
            "creating the banned user",
        )
        _check(
            http.post(
                f"{auth_url}/v1/users/{banner['user_id']}/bans",
                json={"banned_user_id": banned["user_id"]},
                headers=admin,
                timeout=10,
            ),
            "banning",
        )
        bot = _check(
            http.post(
                f"{auth_url}/v1/users/{banned['user_id']}/bots",
                json={"name": "friday-bot"},
                headers=admin,
                timeout=10,
            ),
            "creating the bot",
        )
        target = _check(
            http.post(
                f"{gateway_url}/v1/posts",
                json={"text": "the banner's post"},
                headers={"Authorization": f"Bearer {banner['token']}"},
                timeout=10,
            ),
            "creating the banner's post",
        )
        pop.bot = Actor(banned["user_id"], bot["token"], bot["bot_id"])
        pop.target_post = target["post_id"]
        pop.banner_user_id = banner["user_id"]
        pop.banned_user_id = banned["user_id"]
    return pop


@dataclass
class LoadReport:
    scenario: str
    rate: float
    duration_s: float
    elapsed_s: float = 0.0
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    # request ids answered 202, by who sent them: "user" or "bot"
    accepted: dict[str, list[str]] = field(default_factory=lambda: {"user": [], "bot": []})
    population: Population | None = None
    # 5xx answers without a Retry-After header (the gateway promises one on every 503).
    without_retry_after: int = 0
    # (seconds since start the request was sent, seconds it took, status): for failover timing.
    timeline: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def accepted_count(self) -> int:
        return sum(len(v) for v in self.accepted.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "rate": self.rate,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "sent": self.sent,
            "accepted": {k: len(v) for k, v in self.accepted.items()},
            "accepted_per_s": round(self.accepted_count / self.elapsed_s, 1)
            if self.elapsed_s
            else 0.0,
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "without_retry_after": self.without_retry_after,
            "population": self.population.as_json() if self.population else None,
        }


Tick = Callable[[LoadReport], Awaitable[None]]


class _Plan:
    """Who likes what next: distinct (user, post) pairs, and the bot's share on friday."""

    def __init__(self, pop: Population, bot_share: float, seed: int) -> None:
        self._rng = random.Random(seed)
        self._pop = pop
        self._bot_share = bot_share if pop.bot is not None else 0.0
        self._pairs = [(u, p) for u in pop.users for p in pop.posts]
        self._rng.shuffle(self._pairs)
        self._i = 0

    def next(self) -> tuple[str, Actor, int]:
        if self._bot_share and self._rng.random() < self._bot_share:
            assert self._pop.bot is not None and self._pop.target_post is not None
            return "bot", self._pop.bot, self._pop.target_post
        user, post = self._pairs[self._i % len(self._pairs)]
        self._i += 1
        return "user", user, post


async def run_load(
    gateway_url: str,
    pop: Population,
    *,
    scenario: str,
    rate: float,
    duration_s: float,
    bot_share: float = 0.2,
    concurrency: int = 64,
    max_requests: int | None = None,
    on_tick: Tick | None = None,
    seed: int = 7,
) -> LoadReport:
    """Send likes at `rate`/s for `duration_s` (or until `max_requests`); never retries."""
    report = LoadReport(scenario, rate, duration_s, population=pop)
    plan = _Plan(pop, bot_share if scenario == "friday" else 0.0, seed)
    counter = iter(range(max_requests if max_requests is not None else 10**12))
    start = time.monotonic()
    deadline = start + duration_s

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                i = next(counter)
            except StopIteration:
                return
            due = start + i / rate if rate > 0 else time.monotonic()
            if due >= deadline:
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            who, actor, post = plan.next()
            report.sent += 1
            sent = time.monotonic()
            try:
                async with session.post(
                    f"{gateway_url}/v1/posts/{post}/likes",
                    headers={"Authorization": f"Bearer {actor.token}"},
                ) as resp:
                    report.statuses[str(resp.status)] += 1
                    report.timeline.append((sent - start, time.monotonic() - sent, resp.status))
                    if resp.status >= 500 and "Retry-After" not in resp.headers:
                        report.without_retry_after += 1
                    if resp.status == 202:
                        report.accepted[who].append((await resp.json())["request_id"])
                    else:
                        await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                report.errors[type(exc).__name__] += 1

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0)
            report.elapsed_s = time.monotonic() - start
            if on_tick is not None:
                await on_tick(report)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tick_task = asyncio.create_task(ticker())
        try:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        finally:
            tick_task.cancel()
    report.elapsed_s = time.monotonic() - start
    return report
