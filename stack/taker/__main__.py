"""Run one taker of a stack: python -m stack.taker <state>/stack.json <taker-id>"""

import sys
from pathlib import Path

from stack.settings import StackSettings
from stack.taker.main import TakerConfig, run

settings = StackSettings.load(Path(sys.argv[1]))
taker_id = sys.argv[2]
index = settings.taker_ids.index(taker_id) + 1
run(
    TakerConfig(
        taker_id=taker_id,
        amqp_url=",".join(settings.amqp_urls),
        likes_url=settings.likes_url,
        retry_policy=settings.retry_policy,
        rate=settings.taker_rate,
        batch=settings.taker_batch,
        linger_s=settings.taker_linger_ms / 1000,
        prefetch=settings.taker_prefetch_count,
        max_retries=settings.max_retries,
        backoff_s=settings.retry_backoff_s,
        backoff_max_s=settings.retry_backoff_max_s,
        quorum_members=settings.quorum_members,
    ),
    settings.listen_host,
    settings.taker_port(index),
)
