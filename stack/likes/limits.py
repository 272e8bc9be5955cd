"""What the likes service accepts from a taker: its paths and size limits (both sides use it)."""

SINGLE_PATH = "/v1/likes"
BATCH_PATH = "/v1/likes:batch"

# One like: the gateway's own body limit; a queue message larger than that is not a like.
MAX_LIKE_BYTES = 64 * 1024
# A batch is one store transaction: bounded so one request cannot hold the writer for long.
MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
