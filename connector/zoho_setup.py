"""The Zoho org as it is: which modules it has and whether our custom fields exist.

``check_org`` reads GET /settings/modules and GET /settings/fields (one call per module we use);
``setup_org`` creates missing custom fields with POST /settings/fields?module= (Zoho v8 fields API,
operation "Create Field": body ``{"fields": [{field_label, data_type, length, unique}]}``).
An edition without the Invoices module (Free/Standard) syncs contacts only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf
from connector.mapping.deals import DEAL_MONEY_FIELDS, DEAL_MONEY_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NeededField:
    module: str
    api_name: str
    data_type: str  # Zoho data_type for the fields API: text, currency, website, date, lookup
    unique: bool = False
    # False: sync goes on without it (the value is not sent) and `check` reports it missing.
    required: bool = True
    lookup: str | None = None  # the module a lookup points at

    def how_to_create(self) -> str:
        kind = {"text": "Single Line (255)", "currency": "Currency", "website": "URL", "date": "Date",
                "lookup": f"Lookup to {self.lookup}"}[self.data_type]
        unique = ", 'Do not allow duplicate values' ticked" if self.unique else ""
        return (f"Zoho {self.module} has no field {self.api_name}: create it in Setup > Customization > Modules "
                f"and Fields > {self.module} as {kind} labelled '{self.api_name.replace('_', ' ')}'{unique}, "
                f"or run `connector setup-zoho`")


# Outstanding and overdue were always needed; the other money figures came later, so an org set up
# before them keeps syncing (without them) until `connector setup-zoho` creates them.
_REQUIRED_FIGURES = ("outstanding", "overdue")


def needed_fields(account_fields: Mapping[str, str] = zf.ACCOUNT_MONEY_FIELDS, *,
                  deal_fields: Mapping[str, str] = DEAL_MONEY_FIELDS,
                  invoice_deal_field: str = zf.INVOICE_DEAL) -> tuple[NeededField, ...]:
    """The custom fields the connector writes, with the Account's money figures under ``account_fields``
    names (mapping.yaml ``account_fields``) and the Deal's under ``deal_fields`` (mapping.yaml ``deals``).
    The deal fields are optional: without them invoices still sync, and `connector check` says what lacks."""
    money = tuple(NeededField("Accounts", account_fields[key], zf.ACCOUNT_MONEY_TYPES[key],
                              required=key in _REQUIRED_FIGURES) for key in zf.ACCOUNT_MONEY_FIELDS)
    return (
        NeededField("Accounts", zf.ACCOUNT_XERO_ID, "text", unique=True),
        NeededField("Accounts", zf.ACCOUNT_TAX_NUMBER, "text"),
        NeededField("Accounts", zf.ACCOUNT_XERO_STATUS, "text"),
        NeededField("Accounts", zf.XERO_URL, "website"),
        *money,
        NeededField("Contacts", zf.CONTACT_PERSON_KEY, "text", unique=True),
        NeededField("Products", zf.PRODUCT_ITEM_CODE, "text", unique=True),
        NeededField("Invoices", zf.INVOICE_XERO_ID, "text", unique=True),
        NeededField("Invoices", zf.INVOICE_AMOUNT_PAID, "currency"),
        NeededField("Invoices", zf.INVOICE_AMOUNT_DUE, "currency"),
        NeededField("Invoices", zf.XERO_URL, "website"),
        # Zoho's Invoices have no lookup to Deals (only Sales_Order): the connector adds one, so a Deal's
        # related list shows its invoices.
        NeededField("Invoices", invoice_deal_field, "lookup", required=False, lookup="Deals"),
        *(NeededField("Deals", deal_fields[key], DEAL_MONEY_TYPES[key], required=False) for key in DEAL_MONEY_FIELDS),
    )


def needed_for(config) -> tuple[NeededField, ...]:
    """``needed_fields`` under the names a SyncConfig (mapping.yaml) gives."""
    return needed_fields(config.account_fields, deal_fields=config.deal_fields,
                         invoice_deal_field=config.invoice_deal_field)


NEEDED_FIELDS = needed_fields()
CONTACT_MODULES = ("Accounts", "Contacts")


@dataclass(frozen=True)
class OrgCheck:
    modules: frozenset[str]
    missing: tuple[NeededField, ...] = field(default=())
    # API names of each module's fields: a field the org lacks (Currency without multi-currency) is not sent
    fields: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def has_invoices(self) -> bool:
        return "Invoices" in self.modules and "Products" in self.modules

    def problems(self) -> list[str]:
        return [f.how_to_create() for f in self.missing]

    def raise_if_unusable(self) -> None:
        """Contacts cannot sync without their key fields; say exactly which field and how to make it."""
        blocking = [f for f in self.missing if f.required and (f.module in CONTACT_MODULES or self.has_invoices)]
        if blocking:
            raise ConfigError("; ".join(f.how_to_create() for f in blocking))


def check_org(zoho, needed: tuple[NeededField, ...] = NEEDED_FIELDS) -> OrgCheck:
    modules = frozenset(m["api_name"] for m in zoho.modules() if m.get("api_supported", True))
    missing, present = [], {}
    for module in dict.fromkeys(f.module for f in needed):
        if module not in modules:
            continue
        present[module] = frozenset(f["api_name"] for f in zoho.fields(module))
        missing.extend(f for f in needed if f.module == module and f.api_name not in present[module])
    check = OrgCheck(modules=modules, missing=tuple(missing), fields=present)
    if not check.has_invoices:
        log.warning("zoho.org.contacts_only: this Zoho edition has no Invoices module; only contacts are synced")
    return check


def setup_org(zoho, needed: tuple[NeededField, ...] = NEEDED_FIELDS) -> list[str]:
    """Create every missing custom field; returns "Module.Field" for each one created."""
    created = []
    check = check_org(zoho, needed)
    for module in dict.fromkeys(f.module for f in check.missing):
        wanted = [f for f in check.missing if f.module == module]
        zoho.create_fields(module, [_field_body(f) for f in wanted])
        created.extend(f"{module}.{f.api_name}" for f in wanted)
    return created


def _field_body(needed: NeededField) -> dict:
    body = {"field_label": needed.api_name.replace("_", " "), "data_type": needed.data_type}
    if needed.data_type == "text":
        body["length"] = zf.CUSTOM_TEXT_MAX
    if needed.unique:
        body["unique"] = {"casesensitive": "false"}
    if needed.lookup:  # fields.json schema "lookup": the target module by api_name
        body["lookup"] = {"module": {"api_name": needed.lookup}}
    return body


# -- `connector setup-zoho`: check or create what each connected org lacks ------------------------


def missing_report(check: OrgCheck) -> list[str]:
    """One line per missing field: Module.Field, its Zoho type, and how to create it by hand."""
    return [f"  missing {f.module}.{f.api_name} ({f.data_type}{', unique' if f.unique else ''}): "
            f"{f.how_to_create()}" for f in check.missing]


def setup_zoho_orgs(orgs: list[tuple[str, object]], *, check_only: bool, out,
                    needed: tuple[NeededField, ...] = NEEDED_FIELDS) -> int:
    """``orgs``: (label, ZohoClient) per Zoho org. Exit code: with ``check_only`` 1 when anything we
    need is missing (listed with how to create it), else 0; otherwise the fields are created."""
    missing_any = False
    for label, zoho in orgs:
        check = check_org(zoho, needed)
        modules = "" if check.has_invoices else " (no Invoices module: contacts only)"
        if check_only:
            if check.missing:
                missing_any = True
                out.write(f"{label}: {len(check.missing)} custom field(s) missing{modules}\n")
                out.write("\n".join(missing_report(check)) + "\n")
            else:
                out.write(f"{label}: every custom field the connector needs exists{modules}\n")
            continue
        created = setup_org(zoho, needed)
        if created:
            out.write(f"{label}: created {len(created)} custom field(s){modules}\n")
            out.write("".join(f"  created {name}\n" for name in created))
        else:
            out.write(f"{label}: nothing to create; every custom field exists{modules}\n")
        left = check_org(zoho, needed).missing
        if left:  # Zoho accepted the call but the field is still not there
            missing_any = True
            out.write("\n".join(missing_report(OrgCheck(modules=check.modules, missing=left))) + "\n")
    return 1 if missing_any else 0


# -- the scheduled re-check (beat "recheck-zoho-orgs") ------------------------------------------

ORG_RECORD_TYPE = "zoho_org"  # audit trail of an org's health: `audit.trail(connection_id, "zoho_org", "org")`
ORG_RECORD_ID = "org"
_MISSING_KEY = "mlc:zoho-org-missing:{}"


def needed_missing(check: OrgCheck) -> tuple[NeededField, ...]:
    """What the org lacks that sync needs now (Invoices fields only matter with the Invoices module)."""
    return tuple(f for f in check.missing if f.required and (f.module in CONTACT_MODULES or check.has_invoices))


def report_org_change(connection_id: int, check: OrgCheck, *, audit, redis) -> bool:
    """Log and audit (stage "failed") once when a field we need goes missing; True when this call reported.

    What was last reported lives in Redis (GETSET), so every worker and every beat run agrees on "once";
    a later change (another field gone) is reported again, and a repaired org clears the state.
    """
    from connector.store import audit as stages

    missing = needed_missing(check)
    key = _MISSING_KEY.format(connection_id)
    state = ",".join(sorted(f"{f.module}.{f.api_name}" for f in missing))
    if not missing:
        if redis.delete(key):
            log.info("zoho.org.repaired connection=%s: every custom field the connector needs exists again",
                     connection_id)
        return False
    previous = redis.getset(key, state)
    if isinstance(previous, bytes):
        previous = previous.decode()
    if previous == state:
        return False
    how = [f.how_to_create() for f in missing]
    log.error("zoho.org.fields_missing connection=%s: %s", connection_id, "; ".join(how))
    audit.record(connection_id=connection_id, record_type=ORG_RECORD_TYPE, record_id=ORG_RECORD_ID,
                 stage=stages.FAILED, detail={"reason": "custom fields the connector needs are missing in Zoho",
                                              "missing": state.split(","), "how_to_fix": how})
    return True
