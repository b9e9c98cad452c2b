"""Logs that carry their data: after one webhook through the Procfile's receiver (gunicorn) and a real
prefork worker (tests/deploy/test_deploy_procfile.py runs them), every JSON line of that record's sync
carries the same sync_id, with its connection, record type, Xero id and task id, from the receiver
through ingest, fetch, push and flush."""

from __future__ import annotations

from connector.store import audit as stages


def assert_every_line_of_the_sync_carries_its_sync_id(deployment, web, worker, contact_id: str) -> None:
    """Called once web and worker (started from the Procfile with LOG_FORMAT=json) have stopped."""
    trail = deployment.deps.store.audit.trail(deployment.connection_id, "contact", contact_id)
    [sync_id] = {entry.sync_id for entry in trail}

    # The receiver started the trip: its line for the delivery names the record and the sync id the whole
    # chain uses (a delivery of one record carries them as top-level fields too).
    [accepted] = [line for line in web.json_lines()
                  if line.get("message") == "webhook.xero.accepted" and contact_id in line.get("xero_ids", [])]
    position = accepted["xero_ids"].index(contact_id)
    assert accepted["sync_ids"][position] == sync_id
    assert accepted["record_types"][position] == "contact"

    worker_lines = worker.json_lines()
    # The tasks of this sync: every task whose lines name this record or this sync.
    chain_tasks = {line["task_id"] for line in worker_lines
                   if line.get("task_id") and (line.get("xero_id") == contact_id or line.get("sync_id") == sync_id)}
    of_this_sync = [line for line in worker_lines
                    if line.get("task_id") in chain_tasks or line.get("xero_id") == contact_id]
    task_names = {line.get("task") for line in of_this_sync}
    assert {"connector.ingest_xero_events", "connector.flush_xero_buffer", "connector.buffer_zoho_push",
            "connector.flush_zoho_buffer", "connector.push_records_to_zoho"} <= task_names, task_names

    stray = [line for line in of_this_sync if line.get("sync_id") != sync_id]
    assert not stray, stray[:5]
    for line in of_this_sync:
        assert line["connection_id"] == deployment.connection_id, line
        assert line["record_type"] == "contact", line
        assert line["xero_id"] == contact_id, line
        assert line["task_id"] in chain_tasks, line
    # The data of each log call is printed: the audit stages and the task outcomes name what they did.
    messages = [line["message"] for line in of_this_sync]
    for stage in (stages.RECEIVED, stages.FETCHED, stages.MAPPED, stages.WRITTEN):
        assert f"sync.{stage}" in messages, messages
    [flushed] = [line for line in of_this_sync if line["message"] == "xero.buffer.flushed"]
    assert flushed["fetched"] == 1
    # The audit trail names the task of every stage (`connector audit` prints it).
    assert all(entry.task_id in chain_tasks for entry in trail), [(e.stage, e.task_id) for e in trail]
    shown = deployment.run(f"connector audit {deployment.connection_id} contact {contact_id}")
    assert shown.returncode == 0, shown.stderr
    for entry in trail:
        assert f"sync_id={sync_id}" in shown.stdout and f"task_id={entry.task_id}" in shown.stdout, shown.stdout
