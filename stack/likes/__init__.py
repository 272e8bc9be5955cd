"""The likes service: posts, and likes authorized against bans and stored idempotently."""
