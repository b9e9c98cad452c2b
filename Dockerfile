# One image for every process of the connector: web (the default command), worker, beat, Flower and
# the one-shot `connector migrate` (see docker-compose.yml and the Procfile).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md celeryconfig.py ./
COPY connector ./connector
COPY workers ./workers
COPY webhooks ./webhooks
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin connector \
    && mkdir -p /app/config /app/var && chown connector /app/var
# Never root: a compromise of the receiver stays an unprivileged user's.
USER connector
EXPOSE 8000
# The receiver's public liveness answer; worker, beat and Flower set their own checks in docker-compose.yml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["gunicorn", "--config", "python:webhooks.gunicorn_config", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "10", "webhooks.wsgi:app"]
