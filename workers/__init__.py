"""Celery wiring: the app, the tasks (thin wrappers over connector.pipeline), the CLI and the demo."""
