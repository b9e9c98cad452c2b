"""Failures: the records still failing, filtered; replay one, a selection or all that match; dismiss with a reason.

A replay is enqueued (connector.replay / connector.replay_failed on the maintenance queue, the path the
CLI's replay takes on workers); a dismissal is a "dismissed" stage in the record's trail
(connector.replay.dismiss, shared with `connector failures --dismiss`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import redirect, request

from connector import queues
from connector.errors import InvalidArgument
from connector.operator_console import AGES, failure_key
from connector.pipeline.common import RECORD_TYPES
from webhooks.console import console_blueprint, console_data, console_page, page
from webhooks.enqueue import EnqueueFailed
from webhooks.receiver import logger, receiver

FILTERS = ("connection", "record", "error", "age")
NOTICES = {
    "replayed": "Queued a replay of {n} record(s). Each leaves this list once it syncs; follow one on the "
                "Records page.",
    "replayed-all": "Queued a replay of every failure that matches these filters.",
    "dismissed": "Dismissed {n} failure(s); the reason is kept in each record's trail.",
}


def _filters(source) -> dict[str, str]:
    return {name: source.get(name, "").strip()[:100] for name in FILTERS}


def _render(filters: dict[str, str], *, notice: str | None = None, problem: str | None = None, status: int = 200):
    data = console_data()
    try:
        failures = data.failures(**filters)
    except InvalidArgument as exc:
        failures, problem = [], str(exc)
    return page("console/failures.html", section="failures", status=status, failures=failures,
                filters=filters, ages=AGES, record_types=sorted(set(RECORD_TYPES.values())),
                connections=data.connection_ids(), key_of=failure_key, notice=notice, problem=problem)


@console_blueprint.route("/failures", methods=["GET"])
@console_page
def failures():
    done = NOTICES.get(request.args.get("done", ""))
    count = request.args.get("n", "")
    notice = done.format(n=int(count) if count.isdigit() else 0) if done else None
    return _render(_filters(request.args), notice=notice)


@console_blueprint.route("/failures", methods=["POST"])
@console_page
def act_on_failures():
    filters = _filters(request.form)
    action = request.form.get("action", "")
    one = request.form.get("replay_one", "")
    selected = [one] if one else request.form.getlist("selected")
    data = console_data()
    try:
        if action == "replay-all":
            data.failures(**filters)  # the worker would refuse a filter that is not valid: say so here, queue nothing
            _enqueue(queues.REPLAY_FAILED, [int(filters["connection"]) if filters["connection"] else None,
                                            filters["age"] or None, filters["record"] or None,
                                            filters["error"] or None, "xero", 1000])
            return _done(filters, "replayed-all", 0)
        if not selected:
            return _render(filters, problem="Tick at least one failure first.", status=400)
        chosen = data.selected(selected, **filters)
        if one or action == "replay-selected":
            requests = data.replay_requests(chosen)
            for replay in requests:
                _enqueue(queues.REPLAY, [replay.connection_id, replay.resource, replay.ids, replay.source])
            return _done(filters, "replayed", sum(len(r.ids) for r in requests))
        if action == "dismiss-selected":
            return _done(filters, "dismissed", data.dismiss(chosen, request.form.get("reason", "")))
    except InvalidArgument as exc:
        return _render(filters, problem=str(exc), status=400)
    except EnqueueFailed as exc:
        logger.error("console.replay_not_queued", extra={"error": str(exc)})
        return _render(filters, problem=f"The replay was not queued ({exc}): check the broker, then try again.",
                       status=503)
    return _render(filters, problem="Choose an action: replay or dismiss.", status=400)


def _enqueue(task: str, args: list) -> None:
    receiver().enqueue(task, args, queues.MAINTENANCE_QUEUE)
    logger.info("console.replay_queued", extra={"task": task, "args": args})


def _done(filters: dict[str, str], done: str, count: int):
    # After a change, a GET of the list: reloading the page never repeats the change.
    query = urlencode({**{k: v for k, v in filters.items() if v}, "done": done, "n": count})
    return redirect(f"/console/failures?{query}", code=303)
