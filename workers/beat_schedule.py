"""Beat's scheduler: Celery's own, keeping its state file (when each job last ran) where
``beat_schedule_filename`` says, CONNECTOR_DATA_DIR by default, and making that folder when needed."""

from __future__ import annotations

from pathlib import Path

from celery.beat import PersistentScheduler


class DataDirScheduler(PersistentScheduler):
    def _open_schedule(self):
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open_schedule()
