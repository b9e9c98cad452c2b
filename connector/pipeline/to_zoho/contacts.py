"""The contacts round: a Xero contact becomes one Zoho Account and a Contact per person, Accounts first
(the people's Account_Name lookup needs the Account's id). The Account carries the customer's money
figures, computed from their stored invoices, credit notes and payments (pipeline/account_money.py):
no contact is re-read from Xero for them. ``refresh_accounts`` pushes the Accounts of the customers some
changed documents belong to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from typing import Any

from connector.errors import DataError
from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import map_contact
from connector.mapping.hashing import content_hash
from connector.mapping.zoho_records import zoho_contact_records
from connector.pipeline.account_money import account_figures
from connector.pipeline.to_zoho.core import BatchOutcome, PushCore, newer, rejection
from connector.store import audit as stages
from connector.store.links import LinkWrite
from connector.store.snapshots import contact_of


def push_contacts(push: PushCore, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
    sync_ids = dict(sync_ids or {})
    outcome = BatchOutcome()
    stale: list[str] = []
    with closing(push.locks.rounds(push.connection_id, "contact", xero_ids)) as rounds:
        for ids in rounds:
            stale += _contacts_round(push, ids, sync_ids, outcome, force=False)
    push.rewrite_stale(stale, lambda ids: _contacts_round(push, ids, sync_ids, BatchOutcome(), force=True), "contact")
    return outcome


def _contacts_round(push: PushCore, xero_ids: list[str], sync_ids: dict, outcome: BatchOutcome, *,
                    force: bool) -> list[str]:
    """Writes one locked round; returns the ids whose link save found a newer version (see rewrite_stale)."""
    connection_id, config = push.connection_id, push.config
    with push.transaction():
        figures = account_figures(push.snapshots, connection_id, xero_ids, today=push.today(),
                                  base_currency=config.base_currency)
        mapped = push.mapped("contacts", "contact", xero_ids, sync_ids, outcome, _with_money(figures, config),
                             lambda m: {"zoho_contacts": len(m["contacts"])})
        push.links.prefetch(connection_id, "contact", list(mapped))
    stale: list[str] = []

    pending, changed = [], set()
    for cid, (result, snapshot) in mapped.items():
        account, _ = zoho_contact_records(result, snapshot.payload, config)
        account_hash = content_hash(account)
        link = push.links.get(connection_id, "contact", cid)
        if link is not None and (newer(link, snapshot) or (link.content_hash == account_hash and not force)):
            outcome.zoho_ids[cid] = link.zoho_id
        else:
            pending.append((cid, account, account_hash, snapshot))
    account_links, _ = _upsert_accounts(push, pending, outcome)
    changed.update(link.xero_id for link in account_links)

    candidates = []
    for cid, (result, snapshot) in mapped.items():
        if cid not in outcome.zoho_ids:
            continue
        for person in zoho_contact_records(result, snapshot.payload, config, outcome.zoho_ids[cid])[1]:
            candidates.append((cid, person[zf.CONTACT_PERSON_KEY], person, content_hash(person), snapshot))
    push.links.prefetch(connection_id, "contact_person", [c[1] for c in candidates])
    people = []
    for cid, key, person, person_hash, snapshot in candidates:
        link = push.links.get(connection_id, "contact_person", key)
        if link is None or not (newer(link, snapshot) or (link.content_hash == person_hash and not force)):
            people.append((cid, key, person, person_hash, snapshot))
    links, ledger, person_of = [], {}, {}
    for (cid, key, person, person_hash, snapshot), result in zip(
        people, push.upsert("Contacts", [p[2] for p in people], zf.CONTACT_PERSON_KEY)
    ):
        if result.ok:
            links.append(LinkWrite("contact_person", key, "Contacts", result.id, person_hash,
                                   snapshot.source_updated_at))
            person_of[key] = cid
            changed.add(cid)
            ledger[result.id] = person
        else:
            detail = rejection(result, "Contacts")
            detail["person"] = key
            outcome.merge_failure(cid, detail)
    # A contact's link is saved with its people's, in one statement: a push that finds the contact linked
    # (an invoice's, for its Account_Name) finds its people linked too (for its Contact_Name), never a
    # contact half written. Should this push stop before here, the next one upserts the Account again,
    # keyed on its Xero id: the same record, and no link to be found meanwhile.
    with push.transaction():
        not_saved = push.save_links(account_links + links)
        stale += [person_of.get(xero_id, xero_id) for xero_id in not_saved]  # a person's key: its contact
        push.record_in_ledger("Contacts", ledger)

    for cid in mapped:
        if cid in outcome.failed:
            continue
        (outcome.written if cid in changed else outcome.skipped).append(cid)
    push.audit_outcome("contact", mapped, outcome, sync_ids)
    return list(dict.fromkeys(stale))


def _with_money(figures: Mapping[str, Any], config) -> Callable[[Mapping[str, Any]], dict]:
    """map_contact with the customer's money figures; a stored document Xero's arithmetic cannot read
    fails the contact with that document's field named."""
    def mapper(payload: Mapping[str, Any]) -> dict:
        money = figures.get(str(payload.get("ContactID")))
        if isinstance(money, DataError):
            raise money
        return map_contact(payload, money=money, money_fields=config.account_fields)
    return mapper


def refresh_accounts(push: PushCore, resource: str, xero_ids: Iterable[str],
                     refresh: Callable[..., BatchOutcome]) -> BatchOutcome:
    """Write again (with ``refresh``: ``refresh_account_figures``) the Accounts of the customers these stored
    documents belong to: their money figures may have changed. A customer whose contact was never fetched
    has no Account to write yet and is left alone."""
    wanted = list(dict.fromkeys(xero_ids))
    with push.transaction():
        push.snapshots.prefetch_missing(push.connection_id, resource, wanted)  # the round read them: no query
        customers = [contact_of(resource, s.payload) for x in wanted
                     if (s := push.snapshots.get(push.connection_id, resource, x)) is not None]
    customers = list(dict.fromkeys(c for c in customers if c))
    return refresh(customers, skip_unfetched=True) if customers else BatchOutcome()


def refresh_account_figures(push: PushCore, contact_ids: list[str], contacts: Callable[[list[str]], BatchOutcome],
                            *, skip_unfetched: bool = False) -> BatchOutcome:
    """The Accounts of customers whose documents changed, written again only where their record (money
    figures included) differs from the one last written: the link's content hash, as every push compares.

    Only the Account: the people and the contact's own fields are the contacts round's, run when the contact
    changes. So an unchanged Account costs no Zoho call and no audit row, and a changed one a single upsert
    (one per batch for all). A customer this cannot settle alone (no link yet, a newer version linked, a
    document the figures cannot read) goes through the whole contacts round (``contacts``), as before; so does
    one with no contact snapshot (which fails it), unless ``skip_unfetched``."""
    outcome = BatchOutcome()
    whole: list[str] = []
    stale: list[str] = []
    with closing(push.locks.rounds(push.connection_id, "contact", contact_ids)) as rounds:
        for ids in rounds:
            round_whole, round_stale = _figures_round(push, ids, outcome, skip_unfetched=skip_unfetched)
            whole += round_whole
            stale += round_stale
    push.rewrite_stale(stale, lambda ids: _contacts_round(push, ids, {}, BatchOutcome(), force=True), "contact")
    if whole:
        rest = contacts(whole)
        outcome.written += rest.written
        outcome.skipped += rest.skipped
        outcome.failed.update(rest.failed)
        outcome.retry += rest.retry
        outcome.zoho_ids.update(rest.zoho_ids)
    return outcome


def _figures_round(push: PushCore, contact_ids: list[str], outcome: BatchOutcome, *,
                   skip_unfetched: bool) -> tuple[list[str], list[str]]:
    """One locked round of ``refresh_account_figures``; returns (the ids for the whole contacts round, the ids
    whose link save met a newer version)."""
    connection_id, config = push.connection_id, push.config
    with push.transaction():  # afresh under the locks
        push.snapshots.prefetch(connection_id, "contacts", contact_ids)
        push.links.prefetch(connection_id, "contact", contact_ids)
        figures = account_figures(push.snapshots, connection_id, contact_ids, today=push.today(),
                                  base_currency=config.base_currency)
    whole, pending = [], []
    for cid in contact_ids:
        snapshot = push.snapshots.get(connection_id, "contacts", cid)
        link = push.links.get(connection_id, "contact", cid)
        money = figures.get(cid)
        if snapshot is None and skip_unfetched:
            continue
        if snapshot is None or link is None or newer(link, snapshot) or isinstance(money, DataError):
            whole.append(cid)
            continue
        try:
            mapped = map_contact(snapshot.payload, money=money, money_fields=config.account_fields)
        except DataError:
            whole.append(cid)  # the contacts round fails it with the field named
            continue
        account, _ = zoho_contact_records(mapped, snapshot.payload, config)
        account_hash = content_hash(account)
        outcome.zoho_ids[cid] = link.zoho_id
        if link.content_hash == account_hash:
            outcome.skipped.append(cid)
        else:
            pending.append((cid, account, account_hash, snapshot))
    links, refused = _upsert_accounts(push, pending, outcome)
    outcome.written += [link.xero_id for link in links]
    for cid in refused:
        push.audit_failure("contact", cid, {}, outcome)
    with push.transaction():
        stale = push.save_links(links)
    for link in links:
        push.audit_stage("contact", link.xero_id, {}, stages.WRITTEN,
                         {"zoho_id": link.zoho_id, "reason": "its money figures changed"})
    return whole, stale


def _upsert_accounts(push: PushCore, pending: list, outcome: BatchOutcome) -> tuple[list[LinkWrite], list[str]]:
    """Upserts the pending Accounts, ``(xero id, record, its hash, snapshot)`` each, in one call: returns the
    links of those Zoho took and the ids of those it refused (their failure merged into ``outcome``). Our
    writes go into the write ledger at once: Zoho's notification of this write may come any moment."""
    links, refused, ledger = [], [], {}
    for (cid, account, account_hash, snapshot), result in zip(
        pending, push.upsert("Accounts", [p[1] for p in pending], zf.ACCOUNT_XERO_ID)
    ):
        if result.ok:
            links.append(LinkWrite("contact", cid, "Accounts", result.id, account_hash, snapshot.source_updated_at))
            outcome.zoho_ids[cid] = result.id
            ledger[result.id] = account
        else:
            outcome.merge_failure(cid, rejection(result, "Accounts"))
            refused.append(cid)
    push.record_in_ledger("Accounts", ledger)
    return links, refused
