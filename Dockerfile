FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY connector ./connector
COPY workers ./workers
COPY webhooks ./webhooks
COPY celeryconfig.py ./
RUN pip install --no-cache-dir -c constraints.txt .
ENV PYTHONUNBUFFERED=1
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--timeout", "10", "webhooks.wsgi:app"]
