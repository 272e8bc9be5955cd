"""Actions takers: read likes from the queue at a steady rate, hand them to the likes service."""
