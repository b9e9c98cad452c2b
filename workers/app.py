"""The Celery application. Configuration lives in celeryconfig.py."""

from celery import Celery

app = Celery("ml_connector", include=["workers.tasks"])
app.config_from_object("celeryconfig")
