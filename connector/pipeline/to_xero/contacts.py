"""A new Zoho Account, or a Contact with no Account, becomes a Xero contact: matched first, created only
when nothing matches, never twice.

``ensure_xero_contact`` is the one entry (Zoho notifications, `connector link`/`create`, and any flow
that needs a Zoho customer in Xero, such as a won deal's invoice). Under a per-record lock
(connector/record_locks.py), in order:
(a) the id link: already linked, done (no Xero call);
(b) a Xero contact whose ContactNumber is the Zoho id: ours from an earlier try whose answer was lost;
(c) an active contact with the same email; (d) one with the same name, any case. Xero's searchTerm
    searches Name, FirstName, LastName, ContactNumber and EmailAddress case-insensitively
    (https://developer.xero.com/documentation/api/accounting/contacts): one search for the Zoho id, one for
    the email, one for the name, each made only when the rules before it found nothing;
a match links (no create); a name clash with another email, or several candidates, needs a person
(audited as a failure ``needs_review`` with the candidates; `connector failures` lists it, `connector link`
or `connector create` resolves it). Nothing matches: PUT /Contacts with ContactNumber = the Zoho id and an
Idempotency-Key made of the intent, the connection, the Zoho id and a digest of the body
(https://developer.xero.com/documentation/guides/idempotent-requests/idempotency/ : the same key returns
the first result), so a lost answer retried creates one contact, and a body changed since (an operator's
new name) is a new request. The lookup (b) is the second guard: a retry after a lost answer finds the
contact by its ContactNumber even after the key's window.

After the link or the create, Zoho gets the Xero ids (the Account's Xero_Contact_ID, each paired person's
Xero_Person_Key) by an update of those very records (keyed on their Zoho ids: an upsert keyed on the
Xero ids would make new ones), and the id links are saved with the content hashes of what Zoho now holds,
so the Xero webhook of our own create finds nothing to push (no echo), and later edits go both ways as
for any linked contact. Xero's refusals (400 ValidationException) are per-record failures saying what to
do, never retried; transient errors propagate, and the task's retry comes back through (a) and (b).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from connector.call_purpose import CRM_CREATE
from connector.errors import InvalidArgument, ValidationRefused
from connector.http import call_purpose
from connector.mapping import zoho_fields as zf
from connector.mapping import won_deals
from connector.mapping import xero_new_contact as new
from connector.mapping.hashing import canonical_json, content_hash
from connector.mapping.xero_values import parse_xero_date
from connector.mapping.zoho_records import owned_projection, zoho_contact_records
from connector.mapping_config import CREATABLE_IN_XERO, SyncConfig
from connector.pipeline.account_money import map_contact_as_pushed
from connector.store import audit as stages
from connector.store.links import LinkWrite

log = logging.getLogger(__name__)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

NEEDS_REVIEW = "needs_review"
LINKED, MATCHED, CREATED, SKIPPED, FAILED = "linked", "matched", "created", "skipped", "failed"
MAX_IDEMPOTENCY_KEY = 128  # Xero's limit (idempotency page above)

_ADDRESS = ("Street", "City", "State", "Code", "Country")
ACCOUNT_FIELDS = ("Account_Name", "Account_Type", "Account_Number", "Phone", "Fax", zf.ACCOUNT_XERO_ID, "Modified_Time",
                  *(f"Billing_{p}" for p in _ADDRESS), *(f"Shipping_{p}" for p in _ADDRESS))
DEAL_STAGE_FIELDS = ("Stage", "Account_Name")  # what a deal's notification reads for create_in_xero.deal_stages
PERSON_FIELDS = ("First_Name", "Last_Name", "Full_Name", "Email", "Phone", "Mobile", "Account_Name", "Modified_Time",
                 zf.CONTACT_PERSON_KEY, "Mailing_Street", "Mailing_City", "Mailing_State", "Mailing_Zip",
                 "Mailing_Country")


@dataclass(frozen=True)
class EnsureOutcome:
    """``xero_contact_id`` is set when the Zoho record is in Xero now (linked, matched or created)."""

    status: str  # LINKED (already), MATCHED, CREATED, NEEDS_REVIEW, SKIPPED (filter, came from Xero), FAILED
    xero_contact_id: str | None = None
    reason: str = ""
    candidates: tuple[dict, ...] = ()

    @property
    def ok(self) -> bool:
        return self.xero_contact_id is not None


@dataclass
class ContactCreation:
    """The collaborators of ``ensure_xero_contact`` for one connection (workers/zoho_tasks.py builds it)."""

    zoho: Any
    xero: Any  # a XeroClient at webhook priority
    snapshots: Any
    links: Any
    audit: Any
    ledger: Any
    locks: Any  # connector.record_locks.RecordLocks
    config: SyncConfig = field(default_factory=SyncConfig)
    today: Callable[[], date] = field(default=lambda: datetime.now(timezone.utc).date())
    task_id: str | None = None
    org_fields: Mapping[str, frozenset[str]] | None = None  # per module, from zoho_setup.check_org

    def zoho_update(self, module: str, records: list[dict]) -> None:
        """Update these Zoho records by id, leaving out fields the org lacks (as the push's upserts do)."""
        known = (self.org_fields or {}).get(module)
        if known:
            records = [{k: v for k, v in r.items() if k in known or k == "id"} for r in records]
        for result in self.zoho.update(module, records, trigger=self.config.trigger):
            result.raise_if_rejected()


def ensure_xero_contact(parts: ContactCreation, connection_id: int, zoho_module: str, zoho_id: str, *,
                        reason: str, force: bool = False, name: str | None = None,
                        sync_id: str | None = None, deal_stage_seen: bool = False) -> EnsureOutcome:
    """The Xero ContactID of this Zoho Account (or Contact with no Account), linking or creating it as the
    module docstring says. ``force``: skip the mapping.yaml filter (a caller that needs the customer in
    Xero whatever it is); ``name``: an operator's name for the new contact (`connector create`), which
    also skips the email and name matches the operator has reviewed; ``deal_stage_seen``: the caller has
    just read one of the Account's deals standing in a create_in_xero.deal_stages stage, so the filter
    does not read its deals again (the rest of the filter still applies). Audited on the Zoho record."""
    if zoho_module not in CREATABLE_IN_XERO:
        raise InvalidArgument(f"only {' and '.join(CREATABLE_IN_XERO)} become Xero contacts; got {zoho_module!r}")
    zoho_id = str(zoho_id)
    linked = _linked_contact(parts, connection_id, zoho_module, zoho_id)
    if linked is not None:
        return EnsureOutcome(LINKED, linked)
    if not force and name is None and not parts.config.creates_in_xero(zoho_module):
        return EnsureOutcome(SKIPPED, reason="create_in_xero does not list this module in mapping.yaml")
    trail = _Trail(parts, connection_id, zoho_module, zoho_id, sync_id, reason)
    with call_purpose(CRM_CREATE), closing(parts.locks.rounds(connection_id, "zoho-create",
                                                              [f"{zoho_module}:{zoho_id}"])) as rounds:
        for _ in rounds:  # one round: this record's lock held
            linked = _linked_contact(parts, connection_id, zoho_module, zoho_id)  # a writer before us
            if linked is not None:
                return EnsureOutcome(LINKED, linked)
            return _ensure_locked(parts, connection_id, zoho_module, zoho_id, trail, force=force, name=name,
                                  deal_stage_seen=deal_stage_seen)
    raise AssertionError("unreachable: RecordLocks.rounds yields this one record or raises")


def _ensure_locked(parts: ContactCreation, connection_id: int, module: str, zoho_id: str, trail: "_Trail", *,
                   force: bool, name: str | None, deal_stage_seen: bool) -> EnsureOutcome:
    found = parts.zoho.get_records(module, [zoho_id], ACCOUNT_FIELDS if module == "Accounts" else PERSON_FIELDS)
    record = next((r for r in found if str(r.get("id")) == zoho_id), None)
    if record is None:
        return trail.outcome(FAILED, f"the {module} record {zoho_id} is not in Zoho (deleted, or a wrong id)",
                             error="NotInZoho")
    if module == "Accounts" and record.get(zf.ACCOUNT_XERO_ID):
        return trail.outcome(SKIPPED, f"it came from Xero (its {zf.ACCOUNT_XERO_ID} is set): the Xero-to-Zoho "
                                      "push links it")
    if module == "Contacts" and record.get(zf.CONTACT_PERSON_KEY):
        return trail.outcome(SKIPPED, f"it came from Xero (its {zf.CONTACT_PERSON_KEY} is set)")
    if module == "Contacts" and record.get("Account_Name"):
        return trail.outcome(SKIPPED, "it belongs to an Account: it reaches Xero as one of the Account's people")
    waiting = _waiting_for_review(parts, connection_id, module, zoho_id, record) if name is None else None
    if waiting is not None:
        return EnsureOutcome(NEEDS_REVIEW, None, waiting)
    if not force and name is None:
        refusal = _filtered_out(parts, module, zoho_id, record, deal_stage_seen=deal_stage_seen)
        if refusal:
            return trail.outcome(SKIPPED, refusal)
    people = _people(parts, zoho_id) if module == "Accounts" else [record]
    body = (new.xero_contact_for_account(record, people, zoho_id=zoho_id, name=name) if module == "Accounts"
            else new.xero_contact_for_person(record, zoho_id=zoho_id, name=name))
    if not body["Name"]:
        return trail.outcome(FAILED, "it has no name to give the Xero contact; name it in Zoho, or "
                                     f"`connector create {module} {zoho_id} --name \"...\"`", error="NoName")

    match = _match(parts, zoho_id, body, operator_named=name is not None)
    if match is not None and match.ambiguous:
        return trail.review(match, body)
    if match is not None:
        contact = _full_contact(parts, match.contact)
        _adopt(parts, connection_id, module, zoho_id, people, contact)
        return trail.outcome(MATCHED, f"matched the Xero contact by {match.rule.replace('_', ' ')}",
                             xero_contact_id=str(contact["ContactID"]), rule=match.rule)
    try:
        [contact] = parts.xero.create_contacts([body], idempotency_key=create_key(connection_id, module, zoho_id,
                                                                                  body))
    except ValidationRefused as exc:
        return trail.outcome(FAILED, f"Xero refused the new contact: {exc}. {what_to_do(str(exc), module, zoho_id)}",
                             error="XeroValidation")
    _adopt(parts, connection_id, module, zoho_id, people, contact)
    return trail.outcome(CREATED, "created in Xero", xero_contact_id=str(contact["ContactID"]),
                         persons=len(body.get("ContactPersons") or []))


def accounts_at_deal_stage(deals: Iterable[Mapping[str, Any]], config: SyncConfig) -> dict[str, str]:
    """{Account id: the id of the deal that brings it to Xero} for the deals standing in one of
    create_in_xero.deal_stages (pure). A deal's notification is then enough: the Account need not be edited.
    The rest of the filter (account_types) and the id link are ``ensure_xero_contact``'s, as for any Account."""
    if not (config.creates_in_xero("Accounts") and config.create_deal_stages):
        return {}
    accounts: dict[str, str] = {}
    for deal in deals:
        account_id = won_deals.account_id_of(deal)
        if account_id and deal.get("Stage") in config.create_deal_stages:
            accounts.setdefault(account_id, str(deal.get("id")))
    return accounts


def create_key(connection_id: int, module: str, zoho_id: str, body: Mapping[str, Any]) -> str:
    """The Idempotency-Key of a create: the intent, the connection, the Zoho id, and a digest of the body
    (its generation: a changed body, such as an operator's new name, is a new request). At most 128."""
    digest = hashlib.sha256(canonical_json(dict(body)).encode()).hexdigest()[:16]
    key = f"zoho-{module.lower()}-create:{connection_id}:{zoho_id}:{digest}"
    return key if len(key) <= MAX_IDEMPOTENCY_KEY else hashlib.sha256(key.encode()).hexdigest()


def what_to_do(message: str, module: str, zoho_id: str) -> str:
    """The operator's next step for a Xero refusal of a new contact."""
    text = message.lower()
    if "name" in text and "already assigned" in text:
        return (f"Link it to that contact with `connector link {module} {zoho_id} XERO_CONTACT_ID`, or create it "
                f"under another name with `connector create {module} {zoho_id} --name \"...\"`")
    if "number" in text and "already assigned" in text:
        return ("A Xero contact (perhaps archived) already carries this Zoho id as its contact number: restore "
                f"it in Xero and `connector link {module} {zoho_id} XERO_CONTACT_ID`")
    if "archived" in text:
        return f"Restore the contact in Xero, then `connector link {module} {zoho_id} XERO_CONTACT_ID`"
    return (f"Correct the {module} record in Zoho (the field Xero names), then save it again there or run "
            f"`connector create {module} {zoho_id} --name \"...\"`")


def link_to_existing(parts: ContactCreation, connection_id: int, zoho_module: str, zoho_id: str,
                     xero_contact_id: str, *, by: str = "operator") -> EnsureOutcome:
    """`connector link`: link the Zoho record to an existing Xero contact (no create); InvalidArgument
    for an unknown id on either side or a contact already linked to another Zoho record."""
    if zoho_module not in CREATABLE_IN_XERO:
        raise InvalidArgument(f"ZOHO_MODULE must be {' or '.join(CREATABLE_IN_XERO)}; got {zoho_module!r}")
    zoho_id, xero_contact_id = str(zoho_id).strip(), str(xero_contact_id).strip()
    already = _linked_contact(parts, connection_id, zoho_module, zoho_id)
    if already is not None and already != xero_contact_id:
        raise InvalidArgument(f"{zoho_module} {zoho_id} is already linked to Xero contact {already}")
    if already == xero_contact_id:
        return EnsureOutcome(LINKED, already)
    taken = parts.links.get(connection_id, "contact", xero_contact_id)
    if taken is not None and zoho_module == "Accounts":
        raise InvalidArgument(f"Xero contact {xero_contact_id} is already linked to Zoho Account {taken.zoho_id}")
    primary = parts.links.get(connection_id, "contact_person", f"{xero_contact_id}:primary")
    if primary is not None and zoho_module == "Contacts" and primary.zoho_id != zoho_id:
        raise InvalidArgument(f"Xero contact {xero_contact_id}'s primary person is already Zoho Contact {primary.zoho_id}")
    with call_purpose(CRM_CREATE):
        record = next(iter(parts.zoho.get_records(zoho_module, [zoho_id], ("id",))), None)
        if record is None:
            raise InvalidArgument(f"Zoho has no {zoho_module} record {zoho_id}")
        contacts = parts.xero.get_contacts([xero_contact_id]) if _GUID.fullmatch(xero_contact_id) else []
        if not contacts:
            raise InvalidArgument(f"Xero has no contact {xero_contact_id} (a ContactID, as `connector failures "
                                  "--json` shows the candidates)")
        people = _people(parts, zoho_id) if zoho_module == "Accounts" else [record]
        _adopt(parts, connection_id, zoho_module, zoho_id, people, contacts[0])
    trail = _Trail(parts, connection_id, zoho_module, zoho_id, None, f"linked by {by}")
    return trail.outcome(MATCHED, f"linked to the Xero contact by {by}", xero_contact_id=xero_contact_id, rule=by)


# --- steps ---------------------------------------------------------------------------------------


def _linked_contact(parts: ContactCreation, connection_id: int, module: str, zoho_id: str) -> str | None:
    """(a) The Xero ContactID the id links give this Zoho record, if any."""
    for link in parts.links.by_zoho_ids([connection_id], module, [zoho_id]):
        if module == "Accounts" and link.kind == "contact":
            return link.xero_id
        if module == "Contacts" and link.kind == "contact_person":
            return link.xero_id.split(":", 1)[0]
    return None


def _waiting_for_review(parts: ContactCreation, connection_id: int, module: str, zoho_id: str,
                        record: Mapping[str, Any]) -> str | None:
    """Why nothing is looked up again: the record waits for a person's review (`connector link` or `create`)
    and has not changed in Zoho since (a won deal's hourly recheck, a redelivery: no Xero call for them).
    A person's edit in Zoho (a new name, another email) is looked at afresh, unless made within the second of
    the review (Zoho's Modified_Time has no fraction). None: look it up."""
    last = next((e for e in reversed(parts.audit.trail(connection_id, module, zoho_id))
                 if e.stage in (stages.WRITTEN, stages.SKIPPED, stages.FAILED)), None)
    if last is None or (last.detail or {}).get("action") != NEEDS_REVIEW:
        return None
    try:
        modified = datetime.fromisoformat(str(record.get("Modified_Time") or ""))
    except ValueError:
        return None
    reviewed = last.created_at if last.created_at.tzinfo else last.created_at.replace(tzinfo=timezone.utc)
    if modified.tzinfo is None or modified > reviewed:
        return None
    return f"waiting for a person's review since {reviewed.isoformat(timespec='seconds')}: {last.detail.get('reason')}"


def _filtered_out(parts: ContactCreation, module: str, zoho_id: str, record: Mapping[str, Any], *,
                  deal_stage_seen: bool = False) -> str | None:
    """Why mapping.yaml's create_in_xero filter leaves this record in Zoho only; None: it passes."""
    config = parts.config
    if module != "Accounts":
        return None
    if config.create_account_types and record.get("Account_Type") not in config.create_account_types:
        return (f"its Account_Type is {record.get('Account_Type') or 'empty'}, not one of "
                f"{', '.join(config.create_account_types)} (create_in_xero.account_types)")
    if config.create_deal_stages and not deal_stage_seen:
        deals = parts.zoho.related_records("Accounts", zoho_id, "Deals", ["Stage"])
        if not any(d.get("Stage") in config.create_deal_stages for d in deals):
            return (f"none of its deals reached {', '.join(config.create_deal_stages)} yet "
                    "(create_in_xero.deal_stages); it goes to Xero once one does")
    return None


def _people(parts: ContactCreation, account_id: str) -> list[dict]:
    """The Account's Zoho Contacts, oldest first (the first is the Xero contact's primary person)."""
    people = parts.zoho.related_records("Accounts", account_id, "Contacts", PERSON_FIELDS)
    return sorted(people, key=lambda p: (str(p.get("Created_Time") or ""), str(p.get("id"))))


def _match(parts: ContactCreation, zoho_id: str, body: Mapping[str, Any], *, operator_named: bool):
    """Rules (b), (c), (d) in order, each search made only when the ones before found nothing."""
    found = parts.xero.search_contacts(zoho_id, include_archived=True)
    match = new.by_contact_number(zoho_id, found)
    if match is not None or operator_named:
        return match
    email = body.get("EmailAddress")
    if email:
        match = new.by_email(email, parts.xero.search_contacts(email))
        if match is not None:
            return match
    return new.by_name(body["Name"], email, parts.xero.search_contacts(body["Name"]))


def _full_contact(parts: ContactCreation, contact: Mapping[str, Any]) -> dict:
    """A searched contact in full (a list page's contact may lack ContactPersons or addresses)."""
    full = parts.xero.get_contacts([str(contact["ContactID"])])
    return full[0] if full else dict(contact)


def _adopt(parts: ContactCreation, connection_id: int, module: str, zoho_id: str, people: Sequence[Mapping],
           contact: Mapping[str, Any]) -> None:
    """Zoho gets the Xero ids of the records now linked; the snapshot and the id links record what Zoho
    then holds, so the push that follows the Xero webhook writes nothing."""
    config = parts.config
    contact_id = str(contact["ContactID"])
    when = parse_xero_date(contact.get("UpdatedDateUTC"))
    if when is not None:
        parts.snapshots.put_if_newer(connection_id, "contacts", contact_id, source_updated_at=when, payload=contact)
    mapped = map_contact_as_pushed(parts.snapshots, connection_id, dict(contact), config, today=parts.today())
    links: list[LinkWrite] = []
    if module == "Accounts":
        account, persons = zoho_contact_records(mapped, contact, config, zoho_id)
        parts.zoho_update("Accounts", [{**account, "id": zoho_id}])
        links.append(LinkWrite("contact", contact_id, "Accounts", zoho_id, content_hash(account), when))
    else:
        persons = [p for p in mapped["contacts"] if p[zf.CONTACT_PERSON_KEY] == f"{contact_id}:primary"]
        persons = [{zf.CONTACT_PERSON_KEY: p[zf.CONTACT_PERSON_KEY]} for p in persons]  # its Account: the push's
    pairs = _pair(persons, people)
    if pairs:
        parts.zoho_update("Contacts", [{**person, "id": zid} for person, zid in pairs])
        owned = config.owned_by_crm("Contacts")
        if owned:  # their notifications are our own write coming back
            parts.ledger.record_many(connection_id, "zoho", {
                zid: content_hash(owned_projection(person, owned)) for person, zid in pairs})
        hashed = module == "Accounts"  # a lone Contact's person gets its Account lookup from the push
        links += [LinkWrite("contact_person", person[zf.CONTACT_PERSON_KEY], "Contacts", zid,
                            content_hash(person) if hashed else "", when) for person, zid in pairs]
    parts.links.save_many(connection_id, links)


def _pair(persons: Sequence[Mapping[str, Any]], people: Sequence[Mapping[str, Any]]) -> list[tuple[dict, str]]:
    """Each mapped person with the Zoho Contact it is: by email, else by name; the others stay unpaired
    (the push adds the Xero contact's other people to Zoho)."""
    free = {str(p["id"]): p for p in people}
    pairs = []
    for person in persons:
        email = (person.get("Email") or "").lower()
        name = (person.get("First_Name") or "", person.get("Last_Name") or "")
        zid = next((i for i, p in free.items() if email and (p.get("Email") or "").lower() == email), None)
        if zid is None:
            zid = next((i for i, p in free.items()
                        if (p.get("First_Name") or "", p.get("Last_Name") or "") == name), None)
        if zid is None and len(persons) == 1 and len(free) == 1:
            zid = next(iter(free))  # a lone Contact is its own primary person
        if zid is not None:
            free.pop(zid)
            pairs.append((dict(person), zid))
    return pairs


class _Trail:
    """The audit rows and log line of one ensure, on the Zoho record (direction zoho_to_xero)."""

    def __init__(self, parts: ContactCreation, connection_id: int, module: str, zoho_id: str,
                 sync_id: str | None, reason: str) -> None:
        self._parts, self._connection_id, self._module, self._zoho_id = parts, connection_id, module, zoho_id
        self._sync_id, self._reason = sync_id, reason

    def _record(self, stage: str, detail: dict) -> None:
        self._parts.audit.record(connection_id=self._connection_id, record_type=self._module,
                                 record_id=self._zoho_id, direction=stages.ZOHO_TO_XERO, stage=stage,
                                 sync_id=self._sync_id, task_id=self._parts.task_id,
                                 detail={"via": self._reason, **detail})

    def outcome(self, status: str, why: str, *, xero_contact_id: str | None = None, error: str | None = None,
                **extra: Any) -> EnsureOutcome:
        stage = {MATCHED: stages.WRITTEN, CREATED: stages.WRITTEN, SKIPPED: stages.SKIPPED}.get(status, stages.FAILED)
        detail = {"reason": why, "action": status, **extra}
        if xero_contact_id:
            detail["xero_contact"] = xero_contact_id
        if error:
            detail["error"] = error
        self._record(stage, detail)
        log.info("xero.contact.%s", status, extra={"connection_id": self._connection_id, "record_type": self._module,
                                                    "zoho_id": self._zoho_id, "xero_id": xero_contact_id,
                                                    "sync_id": self._sync_id, "reason": why})
        return EnsureOutcome(status, xero_contact_id, why)

    def review(self, match: new.Match, body: Mapping[str, Any]) -> EnsureOutcome:
        candidates = tuple(new.candidate_summary(c) for c in match.ambiguous)
        ids = ", ".join(str(c["ContactID"]) for c in candidates)
        why = (f"{match.why}: a person decides. Link it to one with `connector link {self._module} {self._zoho_id} "
               f"XERO_CONTACT_ID` ({ids}), or create it under another name with `connector create {self._module} "
               f"{self._zoho_id} --name \"...\"`")
        self._record(stages.FAILED, {"reason": why, "action": NEEDS_REVIEW, "error": NEEDS_REVIEW,
                                     "zoho": {"Name": body.get("Name"), "EmailAddress": body.get("EmailAddress")},
                                     "candidates": list(candidates)})
        log.info("xero.contact.needs_review", extra={"connection_id": self._connection_id, "sync_id": self._sync_id,
                                                     "record_type": self._module, "zoho_id": self._zoho_id,
                                                     "candidates": [c["ContactID"] for c in candidates]})
        return EnsureOutcome(NEEDS_REVIEW, None, why, candidates)
