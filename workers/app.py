"""The Celery application. Configuration lives in celeryconfig.py."""

from celery import Celery

app = Celery("ml_connector", include=["workers.xero_tasks", "workers.zoho_tasks", "workers.maintenance_tasks"])
app.config_from_object("celeryconfig")
