"""Thin adapters for the servers likkerctl talks to: RabbitMQ (management API and AMQP), the
auth service's admin API, the takers' control exchange, Alertmanager and Prometheus. Each
turns a failure into one of the core's errors, naming the server."""
