"""gunicorn settings for the receiver (`gunicorn --config python:webhooks.gunicorn_config ...`).

Access logs on, through the connector's one logging setup (JSON lines in production), with the
path only: OAuth callbacks carry the authorization code and state in their query string.
"""

from __future__ import annotations

from gunicorn import glogging

from connector import logs
from workers.startup import exit_unless_ready

# gunicorn's master reads this file before it logs, binds or forks anything: the receiver's start-up
# check runs here, so a bad configuration is one line, once, rather than gunicorn's lines and one refusal
# (or traceback) per worker. webhooks.wsgi checks again for a gunicorn started without this file.
exit_unless_ready("receiver")

accesslog = "-"
# %(U)s is the path without its query string; %(M)s the request time in milliseconds.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
logger_class = "webhooks.gunicorn_config.ConnectorGunicornLogger"
# gunicorn's control socket (gunicornc) can resize and stop the server; a PaaS or compose manages the
# process instead, and two receivers on one host would share its default path.
control_socket_disable = True


def on_starting(server) -> None:
    """The master owns the folder of its workers' metric files (connector/metrics.py): made empty before any
    worker starts, so /metrics on any worker adds up all of theirs, and never those of a run before."""
    from connector.metrics import start_process_group
    from connector.settings import Settings

    start_process_group("web", Settings.from_env())


def child_exit(server, worker) -> None:
    from connector.metrics import process_exited

    process_exited(worker.pid)


class ConnectorGunicornLogger(glogging.Logger):
    """gunicorn's error and access loggers, sent through connector.logs instead of gunicorn's own format."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        handler = logs.make_handler("web", log_format=logs.configured_format())  # LOG_FORMAT checked above
        for logger in (self.error_log, self.access_log):
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.addHandler(handler)

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        self.access_log.info(self.cfg.access_log_format, atoms, extra={
            "http_method": atoms["m"], "path": atoms["U"], "status": atoms["s"],
            "duration_ms": atoms["M"], "remote_addr": atoms["h"]})
