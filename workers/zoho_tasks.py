"""Zoho-side tasks (queue "zoho"): write fetched Xero records into Zoho; take Zoho notifications in.

Pushes batch ACROSS records: ``buffer_zoho_push`` adds its ids to a per-(connection, resource) leased
buffer in Redis (connector/coalesce.py, the same one the Xero fetches use) and one
``flush_zoho_buffer`` a moment later claims up to 100 at a time, queues their ``push_records_to_zoho``
and only then lets them leave the buffer. A batch of 100 or more is pushed at once.
"""

from __future__ import annotations

import logging

from connector.call_purpose import CRM_CREATE, WRITE_BACK
from connector.channels import watches_deals
from connector.http import call_purpose
from connector import logs, queues
from connector.backoff import backoff_delay
from connector.parking import Redrive, park_backoff, zoho_resource
from connector.pipeline import from_zoho, to_zoho, xero_in
from connector.pipeline.common import RECORD_TYPES
from connector.pipeline.deals import DealSync
from connector.pipeline.to_xero.contacts import (
    CREATED,
    DEAL_STAGE_FIELDS,
    ContactCreation,
    accounts_at_deal_stage,
    ensure_xero_contact,
)
from connector.pipeline.to_xero import deals as won_deals
from connector.pipeline.to_xero.deals import WonDealInvoices
from connector.store import audit as stages
from connector.store.parked import NOTIFY, OUTAGE, PUSH, WAITING_FOR_ACCOUNT
from connector.zoho.client import MAX_RECORDS_PER_WRITE
from workers.app import app
from workers.base import ConnectorTask
from workers.buffer_flush import queue_flush
from workers.deps import get_deps

log = logging.getLogger(__name__)

# The buffer's name for customers whose Account figures an invoice batch changed (ZohoPush.account_figures).
ACCOUNT_FIGURES = "account_figures"
PUSHED_RESOURCES = ("contacts", "invoices", "creditnotes", "payments", "overpayments", "prepayments", ACCOUNT_FIGURES)
BUFFER_LINGER_SECONDS = 0.5  # how long the first id of a burst waits for company
# How long a customer's Account waits for more of its invoices' batches before its figures are written: one
# write a window instead of one a batch, the figures at most this much (plus the queue's wait) behind.
ACCOUNT_FIGURES_LINGER_SECONDS = 2.0
# Per-record retries of Zoho's retryable 207 codes on the broker; then the records are parked with
# their own, growing backoff (never dead-lettered for a refusal Zoho calls temporary).
MAX_RECORD_RETRIES = 5
RECORD_RETRY_CAP_SECONDS = 60.0
# A won deal waiting for its account to reach Xero is looked at again at least hourly (one Zoho read each).
ACCOUNT_RECHECK_CAP_SECONDS = 3600.0


@app.task(name=queues.BUFFER_ZOHO_PUSH, base=ConnectorTask, bind=True)
def buffer_zoho_push(self, connection_id: int, resource: str, xero_ids: list[str],
                     sync_ids: dict | None = None) -> int:
    """Fetched records of one resource ("contacts", "invoices", "creditnotes", "payments") join the Zoho
    buffer, and a flush is queued; a batch of 100 or more is a whole upsert and is pushed at once."""
    return _buffer_ids(self, connection_id, resource, list(xero_ids), dict(sync_ids or {}))


@app.task(name=queues.PUSH_RECORDS_TO_ZOHO, base=ConnectorTask, bind=True)
def push_records_to_zoho(self, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict | None = None,
                         attempt: int = 0, parked_attempts: int = 0) -> int:
    """Write these records of one resource to Zoho now (a flushed batch, a replay, a backfill page, parked
    work resumed). ``attempt``: retries of Zoho's retryable refusals so far; ``parked_attempts``: times parked."""
    return _push_now(self, connection_id, resource, list(xero_ids), dict(sync_ids or {}), attempt, parked_attempts)


# The task name before buffering and pushing were two tasks. Messages sent under it by an older
# release may still sit in the broker during an upgrade; it can go once no worker or queue of that
# release remains (one release after this one).
@app.task(name="connector.push_to_zoho", base=ConnectorTask, bind=True)
def push_to_zoho(self, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict | None = None,
                 buffered: bool = True, attempt: int = 0, parked_attempts: int = 0) -> int:
    """An older release's message: ``buffered`` chose between buffer_zoho_push and push_records_to_zoho."""
    if buffered:
        return _buffer_ids(self, connection_id, resource, list(xero_ids), dict(sync_ids or {}))
    return _push_now(self, connection_id, resource, list(xero_ids), dict(sync_ids or {}), attempt, parked_attempts)


def _buffer_ids(task: ConnectorTask, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict) -> int:
    if len(xero_ids) >= MAX_RECORDS_PER_WRITE:
        return _push_now(task, connection_id, resource, xero_ids, sync_ids, attempt=0, parked_attempts=0)
    buffer = get_deps().zoho_buffer
    flush_needed, _ = buffer.add(connection_id, resource, {x: sync_ids.get(x) or "" for x in xero_ids},
                                 countdown=BUFFER_LINGER_SECONDS)
    full = buffer.pending(connection_id, resource) >= MAX_RECORDS_PER_WRITE  # a whole upsert: go at once
    if full or flush_needed:
        queue_flush(buffer, flush_zoho_buffer, connection_id, resource, countdown=0 if full else BUFFER_LINGER_SECONDS)
    log.info("zoho.push.buffered", extra={"records": len(xero_ids)})
    return 0


@app.task(name="connector.flush_zoho_buffer", base=ConnectorTask, bind=True)
def flush_zoho_buffer(self, connection_id: int, resource: str) -> int:
    """Take everything buffered, in batches of up to 100, each pushed by its own task: a batch leaves
    the buffer only once its push is queued; a worker lost in between leaves it to its lease's expiry."""
    buffer = get_deps().zoho_buffer
    buffer.start_flush(connection_id, resource)
    batches = 0
    taken: dict[str, str] = {}
    while (claim := buffer.claim(connection_id, resource, max_ids=MAX_RECORDS_PER_WRITE)) is not None:
        taken.update({x: claim.sync_ids.get(x, "") for x in claim.ids})
        with logs.bound(**logs.one_trip(claim.ids, claim.sync_ids)):
            try:
                push_records_to_zoho.apply_async(args=[connection_id, resource, claim.ids, claim.sync_ids],
                                                 queue=queues.ZOHO_QUEUE)
            except Exception:
                buffer.release(claim)
                raise
            buffer.acknowledge(claim)
            log.info("zoho.buffer.flushed", extra={"records": len(claim.ids)})
        batches += 1
    logs.bind(**logs.one_trip(list(taken), taken))  # the rest of this task's lines (one trip: its ids)
    return batches


def _defer_account_figures(connection_id: int, contact_ids: list[str]) -> None:
    """An invoice batch's customers join the Zoho buffer as ``account_figures``; the first of a window queues
    its flush. A customer already waiting is not added twice, so its Account is written once a window."""
    buffer = get_deps().zoho_buffer
    flush_needed, _ = buffer.add(connection_id, ACCOUNT_FIGURES, dict.fromkeys(contact_ids, ""),
                                 countdown=ACCOUNT_FIGURES_LINGER_SECONDS)
    if flush_needed:
        queue_flush(buffer, flush_zoho_buffer, connection_id, ACCOUNT_FIGURES, countdown=ACCOUNT_FIGURES_LINGER_SECONDS)


def _push_now(task: ConnectorTask, connection_id: int, resource: str, xero_ids: list[str], sync_ids: dict,
              attempt: int, parked_attempts: int) -> int:
    deps = get_deps()
    record_type = "contact" if resource == ACCOUNT_FIGURES else RECORD_TYPES[resource]
    redrive = Redrive(PUSH, resource, attempts=parked_attempts)
    connection = task.active_connection(connection_id, record_type=record_type, record_ids=xero_ids,
                                        sync_ids=sync_ids, redrive=redrive)
    if connection is None:
        return 0
    try:
        push = make_zoho_push(deps, connection, task_id=task.request.id,
                              defer_account_figures=lambda ids: _defer_account_figures(connection_id, ids))
        if resource == "contacts":
            outcome = push.contacts(xero_ids, sync_ids)
        elif resource == "invoices":
            outcome = push.invoices(xero_ids, sync_ids)
        elif resource == ACCOUNT_FIGURES:
            outcome = push.account_figures(
                xero_ids, after_a_failure=bool(task.request.retries or attempt or parked_attempts))
        else:
            outcome = push.related(resource, xero_ids, sync_ids)
    except Exception as exc:
        # Records already pushed are skipped by their content hash, so a retry writes nothing twice;
        # a batch that keeps failing is split until the record at fault is alone.
        def split(part: list[str], countdown: float) -> None:
            push_records_to_zoho.apply_async(
                args=[connection_id, resource, part, {x: sync_ids[x] for x in part if x in sync_ids}],
                kwargs={"attempt": attempt, "parked_attempts": parked_attempts},
                countdown=countdown, retries=task.request.retries + 1, queue=queues.ZOHO_QUEUE)

        task.retry_or_fail(exc, connection_id=connection_id, record_type=record_type, record_ids=xero_ids,
                           sync_ids=sync_ids, redrive=redrive, split=split)
        return 0
    if outcome.retry:
        retry_sync_ids = {x: sync_ids[x] for x in outcome.retry if x in sync_ids}
        if attempt < MAX_RECORD_RETRIES:
            # Only the records Zoho refused with a retryable code (or waiting on their contact) go again.
            push_records_to_zoho.apply_async(
                args=[connection_id, resource, outcome.retry, retry_sync_ids],
                kwargs={"attempt": attempt + 1, "parked_attempts": parked_attempts},
                countdown=backoff_delay(attempt, base=1.0, cap=RECORD_RETRY_CAP_SECONDS, jitter=(0.8, 1.0)),
                queue=queues.ZOHO_QUEUE)
        else:
            task.parking().park(
                reason=OUTAGE, redrive=redrive, wait=park_backoff(parked_attempts), connection_id=connection_id,
                record_type=record_type, record_ids=outcome.retry, sync_ids=retry_sync_ids,
                error=RuntimeError(f"Zoho kept refusing {len(outcome.retry)} record(s) with a retryable code"))
    return len(outcome.written)


def make_zoho_push(deps, connection, *, task_id: str | None = None, priority: int = 0,
                   defer_account_figures=None) -> to_zoho.ZohoPush:
    """A ZohoPush wired to this connection's clients; refreshes read through the Xero rate governor
    (at ``priority``: a backfill or replay run in-process reads behind live work). ``defer_account_figures``:
    see ZohoPush (the push task's; others write the Accounts before they return)."""

    def refresh(resource: str, ids: list[str]) -> list[str]:
        if not ids:
            return []
        batch = xero_in.FetchBatch(connection.id, resource, list(ids), {})
        return xero_in.fetch_xero_records(batch, xero=deps.xero_client(connection, priority=priority),
                                          snapshots=deps.store.snapshots, audit=deps.store.audit,
                                          transaction=deps.store.transaction)

    org = deps.zoho_org(connection)
    zoho = deps.zoho_client(connection)
    deals = DealSync(connection_id=connection.id, zoho=zoho, snapshots=deps.store.snapshots, links=deps.store.links,
                     deal_links=deps.store.deal_links, audit=deps.store.audit, config=deps.sync_config,
                     invoices_module=org.has_invoices, org_fields=org.fields, task_id=task_id,
                     today=lambda: deps.store.clock.now().date(), transaction=deps.store.transaction)
    return to_zoho.ZohoPush(
        connection_id=connection.id, snapshots=deps.store.snapshots, zoho=zoho,
        links=deps.store.links, audit=deps.store.audit, ledger=deps.store.write_ledger,
        locks=deps.record_locks, config=deps.sync_config,
        invoices_enabled=org.has_invoices, refresh=refresh, task_id=task_id, org_fields=org.fields,
        transaction=deps.store.transaction, today=lambda: deps.clock.now().date(), deals=deals,
        defer_account_figures=defer_account_figures,
    )


@app.task(name=queues.INGEST_ZOHO_NOTIFICATION, base=ConnectorTask, bind=True, direction=stages.ZOHO_TO_XERO)
def ingest_zoho_notification(self, connection_id: int, notification: dict) -> int:
    """A Zoho change: a person's edit of a linked Account/Contact goes to Xero; our own echo does not.
    ``notification["routed"]``: already sent to the connection that links its records."""
    deps = get_deps()
    module = str(notification.get("module", ""))
    ids = [str(i) for i in notification.get("ids", [])]
    operation = str(notification.get("operation", ""))
    if not notification.get("routed"):
        # The org's one channel reaches the connection holding its tokens: every record goes to the
        # connection (of those sharing the org) that links it; a routed part is not routed again.
        routes = from_zoho.route_by_link(connection_id, module, ids, links=deps.store.links,
                                         sharing=deps.credentials.sharing(connection_id, "zoho"))
        for owner_id, part in routes.items():
            if owner_id != connection_id:
                ingest_zoho_notification.apply_async(args=[owner_id, {**notification, "ids": part, "routed": True}],
                                                     queue=queues.ZOHO_QUEUE)
                log.info("zoho.notification.routed", extra={"connection_id": owner_id, "id_count": len(part)})
        ids = routes.get(connection_id, [])
        if not ids:
            return 0
        notification = {**notification, "ids": ids, "routed": True}
    # Only edits travel to Xero (and creations: new deals, which may be won already, and new records of the
    # modules that become Xero contacts), so only they are kept for later (a reconnect, a limit's reset).
    kept = operation == "update" or (operation == "insert" and (
        module == "Deals" or deps.sync_config.creates_in_xero(module)))
    redrive = Redrive(NOTIFY, zoho_resource(module), priority=1,
                      attempts=int(notification.get("parked_attempts") or 0)) if kept else None
    connection = self.active_connection(connection_id, record_type=module, record_ids=ids, redrive=redrive)
    if connection is None:
        return 0
    if module == "Deals":
        return _take_in_deals(self, deps, connection, ids, notification, operation, redrive)
    if module == "Invoices":
        # Nothing on an invoice travels to Xero; a person's change of its Deal lookup is the manual link.
        if operation != "update":
            return 0
        try:
            return make_zoho_push(deps, connection).deals.lookups_edited(ids)
        except Exception as exc:
            self.retry_or_fail(exc, connection_id=connection_id, record_type=module, record_ids=ids, redrive=redrive)
            return 0
    made: list[ContactCreation] = []  # built at the first record that needs it: most notifications need none

    def create(zoho_id: str):
        made[:] = made or [make_contact_creation(deps, connection, task_id=self.request.id)]
        return ensure_xero_contact(made[0], connection_id, module, zoho_id, sync_id=notification.get("sync_id"),
                                   reason=f"zoho {notification.get('source') or 'notification'} ({operation})")

    try:
        with call_purpose(WRITE_BACK):
            outcome = from_zoho.pull_zoho_changes(
                connection_id, module, ids, operation=operation,
                zoho=deps.zoho_client(connection), xero=deps.xero_client(connection, priority=1),
                snapshots=deps.store.snapshots, links=deps.store.links, audit=deps.store.audit,
                ledger=deps.store.write_ledger, config=deps.sync_config,
                detail={"channel_id": notification.get("channel_id"), "server_time": notification.get("server_time")},
                create=create,
            )
    except Exception as exc:
        def split(part: list[str], countdown: float) -> None:
            ingest_zoho_notification.apply_async(args=[connection_id, {**notification, "ids": part}],
                                                 countdown=countdown, retries=self.request.retries + 1,
                                                 queue=queues.ZOHO_QUEUE)

        self.retry_or_fail(exc, connection_id=connection_id, record_type=module, record_ids=ids, redrive=redrive,
                           split=split)
        return 0
    return outcome.xero_writes + outcome.created


def make_contact_creation(deps, connection, *, task_id: str | None = None) -> ContactCreation:
    """The creation path's collaborators for this connection; its Xero calls at webhook priority.
    Another flow needing a Zoho Account in Xero (a won deal's invoice) calls
    ``ensure_xero_contact(make_contact_creation(deps, connection), connection.id, "Accounts", account_id,
    reason=..., force=True)``."""
    return ContactCreation(
        zoho=deps.zoho_client(connection), xero=deps.xero_client(connection, priority=xero_in.PRIORITY_WEBHOOK),
        snapshots=deps.store.snapshots, links=deps.store.links, audit=deps.store.audit,
        ledger=deps.store.write_ledger, locks=deps.record_locks, config=deps.sync_config,
        today=lambda: deps.clock.now().date(), task_id=task_id, org_fields=deps.zoho_org(connection).fields)


def _take_in_deals(task: ConnectorTask, deps, connection, ids: list[str], notification: dict, operation: str,
                   redrive: Redrive | None) -> int:
    """Deals edited or created in Zoho. The one place deciding what a deal's stage does: a deal in its won
    stage is the won-deal path's (an invoice; its account's Xero contact ensured there, mapping.yaml
    won_deals); any other deal standing in one of create_in_xero.deal_stages brings its Account to Xero."""
    config = deps.sync_config
    if not watches_deals(config) or operation not in ("update", "insert"):
        log.info("zoho.deals.ignored", extra={"id_count": len(ids), "operation": operation})
        return 0
    done, not_won = 0, None
    if config.won_deal_invoices:
        outcome = _take_in_won_deals(task, deps, connection, ids, notification, redrive)
        if outcome is None:
            return 0
        done, not_won = len(outcome.created), outcome.not_won
    if not (config.creates_in_xero("Accounts") and config.create_deal_stages):
        return done
    try:
        return done + _accounts_at_deal_stage(task, deps, connection, [i for i in ids if i.isdigit()], not_won,
                                              notification)
    except Exception as exc:
        def split(part: list[str], countdown: float) -> None:
            ingest_zoho_notification.apply_async(args=[connection.id, {**notification, "ids": part}],
                                                 countdown=countdown, retries=task.request.retries + 1,
                                                 queue=queues.ZOHO_QUEUE)

        task.retry_or_fail(exc, connection_id=connection.id, record_type="Deals", record_ids=ids, redrive=redrive,
                           split=split)
        return 0


def _accounts_at_deal_stage(task: ConnectorTask, deps, connection, ids: list[str], deals: dict | None,
                            notification: dict) -> int:
    """create_in_xero.deal_stages: each deal standing in one of the stages brings its Account to Xero through
    ensure_xero_contact (its lock, id link, matching, review and filter, not forced). Reading the deals costs
    one Zoho call (none when the won path read them); an Account already linked costs no call at all."""
    if deals is None:
        with call_purpose(CRM_CREATE):
            zoho = deps.zoho_client(connection)
            deals = {str(d["id"]): d for d in zoho.get_records("Deals", ids, DEAL_STAGE_FIELDS)} if ids else {}
    accounts = accounts_at_deal_stage(deals.values(), deps.sync_config)
    if not accounts:
        return 0
    # One Zoho org, several Xero tenants: an Account another of them links is in Xero already.
    mine = from_zoho.route_by_link(connection.id, "Accounts", list(accounts), links=deps.store.links,
                                   sharing=deps.credentials.sharing(connection.id, "zoho")).get(connection.id, [])
    parts = make_contact_creation(deps, connection, task_id=task.request.id) if mine else None
    created = 0
    for account_id in mine:
        outcome = ensure_xero_contact(parts, connection.id, "Accounts", account_id, sync_id=notification.get("sync_id"),
                                      reason=f"deal {accounts[account_id]} reached its stage (create_in_xero.deal_stages)",
                                      deal_stage_seen=True)
        created += outcome.status == CREATED
    log.info("zoho.deals.accounts_at_stage", extra={"connection_id": connection.id, "id_count": len(ids),
                                                    "accounts": len(accounts), "created": created,
                                                    "sync_id": notification.get("sync_id")})
    return created


def _take_in_won_deals(task: ConnectorTask, deps, connection, ids: list[str], notification: dict,
                       redrive: Redrive | None) -> won_deals.WonDealOutcome | None:
    """A deal entering its won stage becomes one Xero invoice (mapping.yaml won_deals). A deal whose account
    is not a Xero contact yet waits, parked, and is looked at again when it resumes. None: it failed (retried
    or recorded)."""
    org = deps.zoho_org(connection)
    won = WonDealInvoices(
        connection_id=connection.id, zoho=deps.zoho_client(connection),
        xero=deps.xero_client(connection, priority=xero_in.PRIORITY_WEBHOOK), links=deps.store.links,
        won_deals=deps.store.won_deals, audit=deps.store.audit, locks=deps.record_locks, config=deps.sync_config,
        modules=org.modules, org_fields=org.fields, task_id=task.request.id,
        ensure_contact=lambda account_id: ensure_xero_contact(
            make_contact_creation(deps, connection, task_id=task.request.id), connection.id, "Accounts", account_id,
            reason="won deal", force=True, sync_id=notification.get("sync_id")).xero_contact_id,
        detail={"channel_id": notification.get("channel_id"), "server_time": notification.get("server_time"),
                "source": notification.get("source") or "notification"})
    try:
        outcome = won.take_in(ids)
    except Exception as exc:
        def split(part: list[str], countdown: float) -> None:
            ingest_zoho_notification.apply_async(args=[connection.id, {**notification, "ids": part}],
                                                 countdown=countdown, retries=task.request.retries + 1,
                                                 queue=queues.ZOHO_QUEUE)

        task.retry_or_fail(exc, connection_id=connection.id, record_type=won_deals.RECORD_TYPE, record_ids=ids,
                           redrive=redrive, split=split)
        return None
    waiting = dict(outcome.waiting)
    if waiting and not notification.get("forwarded"):
        # One Zoho org, several Xero tenants: the deal belongs to the tenant whose contact its account is.
        for owner_id, part in _account_owners(deps, connection.id, waiting).items():
            ingest_zoho_notification.apply_async(
                args=[owner_id, {**notification, "ids": part, "routed": True, "forwarded": True}],
                queue=queues.ZOHO_QUEUE)
            log.info("zoho.deals.forwarded", extra={"connection_id": owner_id, "id_count": len(part)})
            for deal_id in part:
                waiting.pop(deal_id)
    if waiting:
        attempts = redrive.attempts if redrive else 0
        task.parking().park(
            connection_id=connection.id, record_type=won_deals.RECORD_TYPE, record_ids=list(waiting),
            reason=WAITING_FOR_ACCOUNT, redrive=Redrive(NOTIFY, zoho_resource("Deals"), priority=1,
                                                                   attempts=attempts + 1),
            wait=min(park_backoff(attempts), ACCOUNT_RECHECK_CAP_SECONDS),
            detail={"reason": won_deals.WAITING_REASON, "accounts": sorted(set(waiting.values()))})
    log.info("zoho.deals.taken_in", extra={"created": len(outcome.created), "waiting": len(outcome.waiting),
                                           "failed": len(outcome.failed), "reported": len(outcome.reported)})
    return outcome


def _account_owners(deps, connection_id: int, accounts: dict[str, str]) -> dict[int, list[str]]:
    """{connection: deal ids} for deals whose account another connection sharing the Zoho org links (the
    oldest link wins: a contact linked in two tenants is invoiced in the first)."""
    others = [c for c in deps.credentials.sharing(connection_id, "zoho") if c != connection_id]
    owner_of: dict[str, int] = {}
    for link in deps.store.links.by_zoho_ids(others, "Accounts", [a for a in accounts.values() if a]):
        if link.kind == "contact":
            owner_of.setdefault(link.zoho_id, link.connection_id)
    routes: dict[int, list[str]] = {}
    for deal_id, account in accounts.items():
        if account in owner_of:
            routes.setdefault(owner_of[account], []).append(deal_id)
    return routes


@app.task(name="connector.recheck_zoho_orgs", base=ConnectorTask, bind=True)
def recheck_zoho_orgs(self) -> int:
    """Beat: re-read every active connection's Zoho org; a custom field we need that went missing is
    logged and audited once (``zoho_setup.report_org_change``). Returns the connections reported."""
    from connector.errors import ConfigError
    from connector.zoho_setup import check_org, needed_for, report_org_change

    deps = get_deps()
    reported = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        try:
            check = check_org(deps.zoho_client(connection), needed_for(deps.sync_config))
        except Exception as exc:  # one org's outage or lost grant must not stop the others' checks
            log.warning("zoho.org.recheck_failed connection=%s: %s", connection.id, exc)
            continue
        reported += report_org_change(connection.id, check, audit=deps.store.audit, redis=deps.redis)
        try:
            deps.remember_zoho_org(connection.id, check)  # pushes see the org as it is now
        except ConfigError:
            pass  # already reported; pushes stop with the same message until the field is back
    return reported


@app.task(name="connector.recompute_deal_money", base=ConnectorTask, bind=True)
def recompute_deal_money(self) -> int:
    """Beat, daily just after midnight UTC: every deal with invoices is totalled again from the stored
    snapshots, for what only time changes (an invoice falling overdue turns the deal Overdue). No Xero call;
    a Deal whose figures did not change is not written (its hash on the id link). Returns the Deals written."""
    deps = get_deps()
    written = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        deals = deps.store.deal_links.linked_deals(connection.id)
        if deals:
            written += make_zoho_push(deps, connection).deals.total_deals(deals)
    log.info("zoho.deal_money.recomputed", extra={"records": written})
    return written


@app.task(name="connector.recompute_account_money", base=ConnectorTask, bind=True)
def recompute_account_money(self) -> int:
    """Beat, daily just after midnight UTC: push again the Account of every stored contact, its money figures
    recomputed from snapshots, for what only time changes (an invoice falling overdue) and for a customer
    an invoice moved away from (its snapshots no longer name the invoice, so no push of it reached them).

    No Xero call: contacts are pushed from their stored snapshots. An Account whose figures did not
    change is skipped by its content hash, so the Zoho cost is one upsert per batch of changed Accounts.
    Returns how many contacts were queued."""
    deps = get_deps()
    queued = 0
    for connection in deps.store.connections.all():
        if connection.state != "active":
            continue
        ids = deps.store.snapshots.contacts_with(connection.id, "contacts")  # a contact's own id
        for start in range(0, len(ids), MAX_RECORDS_PER_WRITE):
            push_records_to_zoho.apply_async(args=[connection.id, "contacts", ids[start:start + MAX_RECORDS_PER_WRITE]],
                                             queue=queues.ZOHO_QUEUE)
        queued += len(ids)
    log.info("zoho.account_money.recompute_queued", extra={"records": queued})
    return queued
