"""The Celery application. Configuration lives in celeryconfig.py; logging and per-task log context
in workers/log_context.py (connected here, so worker, beat and Flower all get it)."""

from functools import cached_property

from celery import Celery, signals
from celery.apps.beat import Beat


class CheckedBeat(Beat):
    """`celery beat`, failing closed before it prints its banner (beat_init comes after it)."""

    def run(self) -> None:
        from workers.startup import exit_unless_ready

        exit_unless_ready("beat")
        super().run()


class ConnectorCelery(Celery):
    @cached_property
    def Beat(self):
        return self.subclass_with_self(CheckedBeat)


app = ConnectorCelery("ml_connector", include=["workers.xero_tasks", "workers.zoho_tasks",
                                               "workers.maintenance_tasks", "workers.backfill_tasks",
                                               "workers.schedule_tasks", "workers.console_tasks"])
app.config_from_object("celeryconfig")


# `celery worker` and `celery beat` (and `connector worker|beat`) fail closed before they start: a
# missing variable, or Redis or the database out of reach, is one line and a non-zero exit. The
# embedded worker thread of the demo and the embedded beat of `connector run` do neither check.
@signals.celeryd_init.connect
def _check_worker_can_start(**_) -> None:
    from workers.startup import exit_unless_ready

    exit_unless_ready("worker")
    _start_worker_metrics()


def _start_worker_metrics() -> None:
    """The worker's main process owns its children's metric files (connector/metrics.py), made before the
    pool starts; with CONNECTOR_METRICS_PORT it serves their sum at /metrics on that port."""
    from connector.metrics import serve_worker_metrics, start_process_group
    from connector.settings import Settings

    from workers.startup import refuse

    settings = Settings.from_env()
    folder = start_process_group("worker", settings)
    if settings.metrics_port is not None:
        try:
            serve_worker_metrics(settings.metrics_port, folder, address=settings.metrics_address)
        except OSError as exc:  # the port is taken, or not ours to bind
            refuse(f"CONNECTOR_METRICS_PORT: cannot listen on port {settings.metrics_port} ({exc.strerror or exc})")


@signals.worker_process_shutdown.connect
def _child_metrics_gone(pid=None, **_) -> None:
    import os

    from connector.metrics import process_exited

    process_exited(pid or os.getpid())


import workers.log_context  # noqa: E402,F401  (connects the Celery signals)
