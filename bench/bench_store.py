"""Benchmark: the likes store alone, SQLite against PostgreSQL, in one run.

Run:  .venv/bin/python bench/bench_store.py [--likes 20000] [--batch 100] [--writers 2] [--rounds 3]

What the likes service does per batch, without HTTP, the broker or the load generator:
`LikesStore.add_likes` (one transaction, `INSERT ... ON CONFLICT DO NOTHING ... RETURNING`)
from `--writers` threads, each storing its share of fresh likes in batches of `--batch`.
SQLite is a WAL file with the stack's pragmas (synchronous=NORMAL: a commit is durable
across process crashes, not OS crashes); PostgreSQL is a private server like the stack's
own (fsync and synchronous_commit on: a commit survives an OS crash too). Rounds alternate
SQLite and PostgreSQL, each on a fresh database; the ratio PostgreSQL / SQLite of the
median likes/s is the figure to compare between runs. JSON on stdout; docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core import contract
from stack.db import make_engine
from stack.likes.store import LikesStore
from tests.postgres import PostgresServer, running_postgres


def one_round(url: str, *, likes: int, batch: int, writers: int) -> dict[str, float]:
    engine = make_engine(url)
    store = LikesStore(engine)
    posts = [store.create_post(1, "bench") for _ in range(50)]
    per_writer = likes // writers
    work = [
        [
            contract.new_like(posts[i % len(posts)], contract.Actor(1_000_000 * w + i))
            for i in range(per_writer)
        ]
        for w in range(writers)
    ]
    stored = [0] * writers
    barrier = threading.Barrier(writers + 1)

    def write(w: int) -> None:
        barrier.wait()
        mine = work[w]
        for i in range(0, len(mine), batch):
            stored[w] += len(store.add_likes(mine[i : i + batch]))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    engine.dispose()
    assert sum(stored) == per_writer * writers, stored
    calls = writers * -(-per_writer // batch)
    return {"likes_per_s": sum(stored) / seconds, "ms_per_call": 1000 * seconds * writers / calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--likes", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kw = {"likes": args.likes, "batch": args.batch, "writers": args.writers}
    runs: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
    server: PostgresServer
    with running_postgres() as server, tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs["sqlite"].append(one_round(f"sqlite:///{tmp}/likes-{r}.db", **kw))
            runs["postgresql"].append(one_round(server.new_database("bench"), **kw))
    median = {
        db: {k: round(statistics.median(x[k] for x in rs), 2) for k in rs[0]}
        for db, rs in runs.items()
    }
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
                "load_average": os.getloadavg(),
                **kw,
                "rounds": args.rounds,
                "median": median,
                "all_rounds_likes_per_s": {
                    db: [round(x["likes_per_s"]) for x in rs] for db, rs in runs.items()
                },
                "postgresql_vs_sqlite": round(
                    median["postgresql"]["likes_per_s"] / median["sqlite"]["likes_per_s"], 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
