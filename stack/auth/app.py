"""HTTP API of the auth service (DESIGN §9).

Every route declares its statuses, bearer security and response shape; ids are bounded to
JSON-safe integers (`Id`), so an id beyond that is a 400, never an overflow in the store.
The OpenAPI links (create user → create bot → block bot) are what schemathesis's stateful
phase follows.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pika
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likkerctl.core.contract import ID_MAX
from likkerctl.core.contract.http import (
    BEARER,
    ApiError,
    Id,
    bearer_token,
    create_base_app,
    errors,
)
from likkerctl.core.contract.nodes import Nodes
from stack.auth.models import Ban, Base, Bot, Token, User, token_digest
from stack.db import make_engine
from stack.topology import AUTH_EVENTS_EXCHANGE

log = logging.getLogger("likker.auth")


@dataclass
class AuthSettings:
    store_url: str
    admin_token: str
    amqp_url: str | None = None  # where bot block events are announced; None: not announced


class NewUser(BaseModel):
    name: str = Field(default="user", min_length=1, max_length=200)


class NewBot(BaseModel):
    name: str = Field(default="bot", min_length=1, max_length=200)


class NewBan(BaseModel):
    banned_user_id: int = Field(ge=1, le=ID_MAX)


class BlockRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class UserCreated(BaseModel):
    user_id: int
    token: str


class BotCreated(BaseModel):
    bot_id: int
    user_id: int
    token: str


class BanMade(BaseModel):
    user_id: int
    banned_user_id: int


class BanList(BaseModel):
    user_id: int
    banned_user_ids: list[int]


class BanAnswer(BaseModel):
    user_id: int
    other_user_id: int
    banned: bool


class TokenOwner(BaseModel):
    user_id: int
    bot_id: int | None
    blocked: bool
    blocked_reason: str | None


class BotView(BaseModel):
    bot_id: int
    user_id: int
    name: str
    blocked: bool
    blocked_reason: str | None
    blocked_at: str | None


class BotList(BaseModel):
    bots: list[BotView]


class BotBlocked(BotView):
    announced: bool = Field(description="whether the gateways were told over the broker")


def _link(operation_id: str, **parameters: str) -> dict[str, object]:
    return {"operationId": operation_id, "parameters": parameters}


_USER_LINKS = {
    "links": {
        "CreateBot": _link("create_bot", user_id="$response.body#/user_id"),
        "ListBans": _link("list_bans", user_id="$response.body#/user_id"),
    }
}
_BOT_LINKS = {
    "links": {
        "ShowBot": _link("show_bot", bot_id="$response.body#/bot_id"),
        "BlockBot": _link("block_bot", bot_id="$response.body#/bot_id"),
        "UnblockBot": _link("unblock_bot", bot_id="$response.body#/bot_id"),
    }
}


def _bot_json(bot: Bot) -> dict[str, object]:
    return {
        "bot_id": bot.id,
        "user_id": bot.user_id,
        "name": bot.name,
        "blocked": bot.blocked,
        "blocked_reason": bot.blocked_reason,
        "blocked_at": bot.blocked_at.isoformat() if bot.blocked_at else None,
    }


def announce_block_event(amqp_url: str, event: dict[str, object]) -> bool:
    """Publish a block/unblock event with a confirm; False if the broker could not take it."""
    try:
        conn = Nodes(amqp_url, "auth", log).connect()
    except (pika.exceptions.AMQPError, OSError) as exc:
        log.warning("block event not announced (broker unreachable): %s", exc)
        return False
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(AUTH_EVENTS_EXCHANGE, "", json.dumps(event).encode())
        return True
    except pika.exceptions.AMQPError as exc:
        log.warning("block event not announced: %s", exc)
        return False
    finally:
        conn.close()


def create_app(
    settings: AuthSettings,
    *,
    engine: Engine | None = None,
    announce: Callable[[dict[str, object]], bool] | None = None,
) -> FastAPI:
    registry = CollectorRegistry()
    requests_total = Counter(
        "likker_auth_requests", "Auth API requests", ["route", "status"], registry=registry
    )
    engine = engine or make_engine(settings.store_url)
    Base.metadata.create_all(engine)
    if announce is None and settings.amqp_url:
        amqp_url = settings.amqp_url

        def announce(event: dict[str, object]) -> bool:
            return announce_block_event(amqp_url, event)

    app = create_base_app("likker-auth", registry, store_backed=True)
    admin_token = settings.admin_token

    def is_admin(request: Request) -> bool:
        token = bearer_token(request)
        return token is not None and hmac.compare_digest(token.encode(), admin_token.encode())

    def require_admin(request: Request) -> None:
        token = bearer_token(request)
        if token is None:
            raise ApiError(401, "unauthenticated", "missing bearer token")
        if is_admin(request):
            return
        with Session(engine) as session:
            known = session.get(Token, token_digest(token)) is not None
        if not known:  # not a credential at all: unauthenticated, not merely not allowed
            raise ApiError(401, "unauthenticated", "unknown bearer token")
        raise ApiError(403, "forbidden", "admin token required")

    def principal_of(session: Session, request: Request) -> Token | None:
        token = bearer_token(request)
        if token is None:
            return None
        return session.get(Token, token_digest(token))

    def require_self_or_admin(session: Session, request: Request, user_id: int) -> None:
        if is_admin(request):
            return
        tok = principal_of(session, request)
        if tok is None:
            raise ApiError(401, "unauthenticated", "missing or unknown bearer token")
        if tok.user_id != user_id or tok.bot_id is not None:
            raise ApiError(403, "forbidden", "only the user themself or an admin may do this")

    def get_user(session: Session, user_id: int) -> User:
        user = session.get(User, user_id)
        if user is None:
            raise ApiError(404, "not-found", f"no user {user_id}")
        return user

    def get_bot(session: Session, bot_id: int) -> Bot:
        bot = session.get(Bot, bot_id)
        if bot is None:
            raise ApiError(404, "not-found", f"no bot {bot_id}")
        return bot

    @app.post(
        "/v1/users",
        status_code=201,
        operation_id="create_user",
        response_model=UserCreated,
        responses={201: _USER_LINKS, **errors(400, 401, 403)},
        openapi_extra=BEARER,
    )
    def create_user(request: Request, body: NewUser | None = None) -> dict[str, object]:
        require_admin(request)
        token = secrets.token_urlsafe(32)
        with Session(engine) as session, session.begin():
            user = User(name=(body or NewUser()).name)
            session.add(user)
            session.flush()
            session.add(Token(digest=token_digest(token), user_id=user.id))
            user_id = user.id
        requests_total.labels("create_user", "201").inc()
        return {"user_id": user_id, "token": token}

    @app.post(
        "/v1/users/{user_id}/bots",
        status_code=201,
        operation_id="create_bot",
        response_model=BotCreated,
        responses={201: _BOT_LINKS, **errors(400, 401, 403, 404, s404="No such user")},
        openapi_extra=BEARER,
    )
    def create_bot(request: Request, user_id: Id, body: NewBot | None = None) -> dict[str, object]:
        token = secrets.token_urlsafe(32)
        with Session(engine) as session, session.begin():
            require_self_or_admin(session, request, user_id)
            get_user(session, user_id)
            bot = Bot(user_id=user_id, name=(body or NewBot()).name)
            session.add(bot)
            session.flush()
            session.add(Token(digest=token_digest(token), user_id=user_id, bot_id=bot.id))
            bot_id = bot.id
        return {"bot_id": bot_id, "user_id": user_id, "token": token}

    @app.post(
        "/v1/users/{user_id}/bans",
        status_code=201,
        operation_id="ban_user",
        response_model=BanMade,
        responses=errors(
            400,
            401,
            403,
            404,
            s400="Malformed request, or a user banning themself",
            s404="No such user (either of the two)",
        ),
        openapi_extra=BEARER,
    )
    def ban_user(request: Request, user_id: Id, body: NewBan) -> dict[str, object]:
        try:
            with Session(engine) as session, session.begin():
                require_self_or_admin(session, request, user_id)  # before judging the body
                if body.banned_user_id == user_id:
                    raise ApiError(400, "invalid", "a user cannot ban themself")
                get_user(session, user_id)
                get_user(session, body.banned_user_id)
                exists = session.scalar(
                    select(Ban.id).where(
                        Ban.user_id == user_id, Ban.banned_user_id == body.banned_user_id
                    )
                )
                if exists is None:
                    session.add(Ban(user_id=user_id, banned_user_id=body.banned_user_id))
        except IntegrityError:
            pass  # banned concurrently by another request: the same outcome
        return {"user_id": user_id, "banned_user_id": body.banned_user_id}

    @app.get(
        "/v1/users/{user_id}/bans",
        operation_id="list_bans",
        response_model=BanList,
        responses=errors(400, 401, 403, 404, s404="No such user"),
        openapi_extra=BEARER,
    )
    def list_bans(request: Request, user_id: Id) -> dict[str, object]:
        """Everyone `user_id` has banned (the likes service caches this per author)."""
        require_admin(request)
        with Session(engine) as session:
            get_user(session, user_id)
            banned = session.scalars(
                select(Ban.banned_user_id).where(Ban.user_id == user_id).order_by(Ban.id)
            )
            return {"user_id": user_id, "banned_user_ids": list(banned)}

    @app.get(
        "/v1/users/{user_id}/bans/{other_user_id}",
        operation_id="is_banned",
        response_model=BanAnswer,
        responses=errors(400, 401, 403),
        openapi_extra=BEARER,
    )
    def is_banned(request: Request, user_id: Id, other_user_id: Id) -> dict[str, object]:
        """Has `user_id` banned `other_user_id`? Asked by the likes service before storing."""
        require_admin(request)
        with Session(engine) as session:
            ban = session.scalar(
                select(Ban).where(Ban.user_id == user_id, Ban.banned_user_id == other_user_id)
            )
        return {"user_id": user_id, "other_user_id": other_user_id, "banned": ban is not None}

    @app.get(
        "/v1/introspect",
        operation_id="introspect",
        response_model=TokenOwner,
        responses=errors(401, s401="Missing or unknown token (the admin token is no principal)"),
        openapi_extra=BEARER,
    )
    def introspect(request: Request) -> dict[str, object]:
        """Who does the presented bearer token belong to? (the gateway's one auth call)"""
        with Session(engine) as session:
            tok = principal_of(session, request)
            if tok is None:
                raise ApiError(401, "unauthenticated", "missing or unknown bearer token")
            bot = session.get(Bot, tok.bot_id) if tok.bot_id is not None else None
            return {
                "user_id": tok.user_id,
                "bot_id": tok.bot_id,
                "blocked": bool(bot and bot.blocked),
                "blocked_reason": bot.blocked_reason if bot else None,
            }

    @app.get(
        "/v1/bots",
        operation_id="list_bots",
        response_model=BotList,
        responses=errors(400, 401, 403),
        openapi_extra=BEARER,
    )
    def list_bots(request: Request, blocked: bool | None = None) -> dict[str, object]:
        require_admin(request)
        with Session(engine) as session:
            query = select(Bot).order_by(Bot.id)
            if blocked is not None:
                query = query.where(Bot.blocked == blocked)
            return {"bots": [_bot_json(b) for b in session.scalars(query)]}

    @app.get(
        "/v1/bots/{bot_id}",
        operation_id="show_bot",
        response_model=BotView,
        responses=errors(400, 401, 403, 404, s404="No such bot"),
        openapi_extra=BEARER,
    )
    def show_bot(request: Request, bot_id: Id) -> dict[str, object]:
        require_admin(request)
        with Session(engine) as session:
            return _bot_json(get_bot(session, bot_id))

    def set_blocked(request: Request, bot_id: int, reason: str | None) -> dict[str, object]:
        require_admin(request)
        with Session(engine) as session, session.begin():
            bot = get_bot(session, bot_id)
            bot.blocked = reason is not None
            bot.blocked_reason = reason
            bot.blocked_at = datetime.now(UTC) if reason is not None else None
            result = _bot_json(bot)
        event: dict[str, object] = {
            "event": "bot-blocked" if reason else "bot-unblocked",
            "bot_id": bot_id,
        }
        result["announced"] = announce(event) if announce else False
        return result

    @app.post(
        "/v1/bots/{bot_id}/block",
        operation_id="block_bot",
        response_model=BotBlocked,
        responses=errors(400, 401, 403, 404, s404="No such bot"),
        openapi_extra=BEARER,
    )
    def block_bot(request: Request, bot_id: Id, body: BlockRequest) -> dict[str, object]:
        return set_blocked(request, bot_id, body.reason)

    @app.delete(
        "/v1/bots/{bot_id}/block",
        operation_id="unblock_bot",
        response_model=BotBlocked,
        responses=errors(400, 401, 403, 404, s404="No such bot"),
        openapi_extra=BEARER,
    )
    def unblock_bot(request: Request, bot_id: Id) -> dict[str, object]:
        return set_blocked(request, bot_id, None)

    return app
