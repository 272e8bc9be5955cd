"""likkerctl: the on-call tool for the RabbitMQ-backed Likker likes pipeline."""

__version__ = "0.1.0"
