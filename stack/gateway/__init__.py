"""The API gateway: authenticates callers and enqueues their likes with publisher confirms."""
