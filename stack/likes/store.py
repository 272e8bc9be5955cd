"""Likes store (SQLAlchemy 2): one row per like, unique by request_id and by (post, user).

Likes are written in batches, one transaction each, with an idempotent insert
(`INSERT ... ON CONFLICT DO NOTHING ... RETURNING request_id`; SQLite and PostgreSQL both
have it), so a redelivered like is skipped rather than doubled or failing its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from likkerctl.core.contract import LikeMessage

# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# and may simply be run again.
_RETRY = {"40P01", "40001"}
_ATTEMPTS = 3


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_user_id: Mapped[int] = mapped_column(index=True)
    text: Mapped[str] = mapped_column(String(5000))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Like(Base):
    __tablename__ = "likes"
    __table_args__ = (UniqueConstraint("post_id", "user_id", name="one_like_per_user"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    user_id: Mapped[int]
    bot_id: Mapped[int | None]
    received_at: Mapped[str] = mapped_column(String(40))
    stored_at: Mapped[datetime] = mapped_column(default=_now)


class LikesStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        Base.metadata.create_all(engine)
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def create_post(self, author_user_id: int, text: str) -> int:
        with Session(self.engine) as session, session.begin():
            post = Post(author_user_id=author_user_id, text=text)
            session.add(post)
            session.flush()
            return post.id

    def post_author(self, post_id: int) -> int | None:
        return self.post_authors([post_id]).get(post_id)

    def post_authors(self, post_ids: Iterable[int]) -> dict[int, int]:
        """post id -> its author's user id, for those of the posts that exist."""
        ids = sorted(set(post_ids))
        if not ids:
            return {}
        with Session(self.engine) as session:
            rows = session.execute(
                select(Post.id, Post.author_user_id).where(Post.id.in_(ids))
            ).all()
        return {post_id: author for post_id, author in rows}

    def add_like(self, like: LikeMessage) -> bool:
        """Store the like; False when it was already there (same request, or same post+user)."""
        return like.request_id in self.add_likes([like])

    def add_likes(self, likes: Sequence[LikeMessage]) -> set[str]:
        """Store the likes in one transaction; return the request ids that became new rows.

        A like already stored (same request id, or same post and user) is skipped, also when
        its twin is earlier in the same batch; either way it is not in the result.
        """
        if not likes:
            return set()
        now = _now()
        # In key order, so concurrent batches holding the same likes (redeliveries) wait
        # for each other on PostgreSQL rather than deadlock; twins of a like under another
        # request id can still cross, and PostgreSQL then aborts one batch: run it again.
        rows = [
            {
                "request_id": like.request_id,
                "post_id": like.post_id,
                "user_id": like.actor.user_id,
                "bot_id": like.actor.bot_id,
                "received_at": like.received_at,
                "stored_at": now,
            }
            for like in sorted(likes, key=lambda like: like.request_id)
        ]
        # SQLAlchemy sends this as multi-row INSERTs ("insertmanyvalues"): one statement per
        # batch, not one per like.
        stmt = self._insert(Like).on_conflict_do_nothing().returning(Like.request_id)
        attempt = 1
        while True:
            try:
                with self.engine.begin() as conn:
                    return set(conn.scalars(stmt, rows))
            except OperationalError as exc:
                if attempt == _ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _RETRY:
                    raise
                attempt += 1

    def like_count(self, post_id: int) -> int:
        with Session(self.engine) as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(Like).where(Like.post_id == post_id)
                )
                or 0
            )
