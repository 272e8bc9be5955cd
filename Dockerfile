# likkerctl and the Likker stack's Python services (auth, likes, gateway, takers).
# RabbitMQ, Prometheus and Alertmanager come from their own images: see stack/compose.yaml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY likkerctl ./likkerctl
COPY stack ./stack
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group likker \
    && mkdir -p /state \
    && chown likker:likker /state

USER likker
VOLUME ["/state"]
ENTRYPOINT ["likkerctl"]
CMD ["--help"]
