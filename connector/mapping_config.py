"""The user's sync configuration: field mapping overrides, field ownership, workflow triggers.

A YAML or JSON file (JSON is read as YAML, which it is a subset of), validated with marshmallow when
the connector starts. Errors name the line and the key, e.g. ``mapping.yaml line 7: fields.Accounts.
Fax.from: Not a valid string.`` Example::

    trigger: []                    # Zoho workflow triggers on our writes: [] = none (the default)
    sync_bills: false              # ACCPAY bills are out of scope unless switched on
    placeholder_product: {item_code: XERO-NO-ITEM, name: Xero line without an item}
    invoice_status: {PAID: Approved}        # Xero status -> Zoho Status picklist value
    neutralise_formulas: false     # true: text starting =, +, -, @, tab or CR gets a leading ' (CSV export
                                   # safety; phones, emails, URLs, ids and plain numbers are left alone)
    fields:                        # per Zoho module: a Xero path, a constant, or omit
      Accounts:
        Description: {from: ContactNumber}
        Fax: {omit: true}
    crm_owns:                      # fields a person's edit in Zoho may write back to Xero
      Contacts: [First_Name, Last_Name, Email, Phone, Mobile]
      Accounts: []
    account_fields:                # the Account's money figures under your own Zoho field names
      outstanding: Amount_Owing    # (keys: outstanding, overdue, total_invoiced, credit_available,
                                   #  last_invoice_date, last_payment_date, last_payment_amount, payment_status)
    base_currency: NZD             # the Xero organisation's base currency (optional: see README)
    deals:                         # which Zoho deal each invoice belongs to (mapping/deals.py), in order
      rules: [kept, reference, sales_order, only_open_deal]   # kept first, always
      reference_pattern: 'DEAL-(\\d+)'   # its first group is the Zoho deal id (default: an 18-19 digit id)
      closed_stages: [Closed Won, Closed Lost, Closed Lost to Competition]
      invoice_field: Deal          # the invoice's lookup to Deals, created by `connector setup-zoho`
      fields: {paid: Amount_Collected}   # the Deal's figures under your own field names
    create_in_xero:                # new Zoho records become Xero contacts (pipeline/to_xero/contacts.py); off
      modules: [Accounts]          # Accounts and/or Contacts (a Contact with no Account); [] = off (default)
      account_types: [Customer]    # only Accounts whose Account_Type is one of these (omit: any type)
      deal_stages: [Closed Won]    # only once one of the Account's deals reached one of these (omit: no deal needed)
    won_deals:                     # a deal entering its won stage becomes ONE Xero invoice (off by default)
      enabled: false
      stage: Closed Won            # the stage that means won, for every pipeline not listed below
      pipelines: {}                # optional: Zoho pipeline -> its won stage; when given, only these pipelines
      status: DRAFT                # DRAFT (default), SUBMITTED or AUTHORISED
      item_code: null              # the Xero item of the one line made from the deal's Amount
      account_code: null           # the Xero sales account of lines without an item (e.g. '200')
      tax_type: null               # the Xero tax type of every line (e.g. OUTPUT2); none: Xero's default
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re

import yaml
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connector.errors import ConfigError
from connector.mapping import deals as deal_mapping
from connector.mapping import won_deals as won_deal_mapping
from connector.mapping import zoho_fields as zf
from connector.mapping.invoices import XERO_TO_ZOHO_INVOICE_STATUS
from connector.mapping.overrides import FieldOverride

MODULES = ("Accounts", "Contacts", "Products", "Invoices")
# Zoho modules whose new records may become Xero contacts (create_in_xero.modules).
CREATABLE_IN_XERO = ("Accounts", "Contacts")
# What the two-way sync can write back to Xero (see pipeline/from_zoho.py). Not Website: it is
# read-only in Xero's Contacts API, which ignores it on write.
WRITABLE_TO_XERO = {
    "Contacts": ("First_Name", "Last_Name", "Email", "Phone", "Mobile"),
    "Accounts": ("Account_Name", "Phone"),
}
# Defaults: Xero owns money, invoices and the company record; the CRM owns its people's names,
# emails and phones.
DEFAULT_CRM_OWNS: Mapping[str, tuple[str, ...]] = {"Contacts": WRITABLE_TO_XERO["Contacts"], "Accounts": ()}
WORKFLOW_TRIGGERS = ("workflow", "approval", "blueprint")


@dataclass(frozen=True)
class SyncConfig:
    trigger: tuple[str, ...] = ()
    sync_bills: bool = False
    placeholder_item_code: str = "XERO-NO-ITEM"
    placeholder_product_name: str = "Xero line without an item"
    invoice_status: Mapping[str, str] = field(default_factory=lambda: dict(XERO_TO_ZOHO_INVOICE_STATUS))
    field_overrides: tuple[FieldOverride, ...] = ()
    crm_owns: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CRM_OWNS))
    # Off by default: Zoho then holds exactly what Xero holds, and values are data, not formulas, until
    # someone opens a CSV export in a spreadsheet. Orgs that do that switch it on (mapping/formulas.py).
    neutralise_formulas: bool = False
    # The Account's money figure -> Zoho field API name (zoho_fields.ACCOUNT_MONEY_FIELDS, renamed here).
    account_fields: Mapping[str, str] = field(default_factory=lambda: dict(zf.ACCOUNT_MONEY_FIELDS))
    base_currency: str | None = None
    # Deals (connector/mapping/deals.py): the linking rules in order, how a Reference names a deal, the
    # stages that close a deal, the invoice's lookup field and the Deal's figures' field names.
    deal_rules: tuple[str, ...] = deal_mapping.DEFAULT_RULES
    deal_reference_pattern: str = deal_mapping.DEFAULT_REFERENCE_PATTERN
    deal_closed_stages: tuple[str, ...] = deal_mapping.DEFAULT_CLOSED_STAGES
    invoice_deal_field: str = zf.INVOICE_DEAL
    deal_fields: Mapping[str, str] = field(default_factory=lambda: dict(deal_mapping.DEAL_MONEY_FIELDS))
    # New Zoho records that become Xero contacts (create_in_xero): the modules (empty: off), and the filter.
    create_modules: tuple[str, ...] = ()
    create_account_types: tuple[str, ...] = ()  # empty: any Account_Type
    create_deal_stages: tuple[str, ...] = ()  # empty: no deal needed

    def creates_in_xero(self, module: str) -> bool:
        return module in self.create_modules
    # Won deals -> one Xero invoice each (pipeline/to_xero/deals.py; mapping/won_deals.py). Off by default.
    won_deal_invoices: bool = False
    won_deal_stage: str = won_deal_mapping.DEFAULT_WON_STAGE
    won_deal_pipelines: Mapping[str, str] = field(default_factory=dict)
    won_deal_status: str = "DRAFT"
    won_deal_item_code: str | None = None
    won_deal_account_code: str | None = None
    won_deal_tax_type: str | None = None

    def owned_by_crm(self, module: str) -> tuple[str, ...]:
        return tuple(self.crm_owns.get(module, ()))


class _OverrideSchema(Schema):
    from_ = fields.String(data_key="from", validate=validate.Length(min=1))
    value = fields.Raw(allow_none=False)
    omit = fields.Boolean()

    @validates_schema
    def _exactly_one(self, data: dict, **_: Any) -> None:
        given = [key for key in ("from_", "value", "omit") if key in data]
        if len(given) != 1:
            raise ValidationError("give exactly one of from, value, omit")


class _PlaceholderSchema(Schema):
    item_code = fields.String(required=True, validate=validate.Length(min=1, max=255))
    name = fields.String(required=True, validate=validate.Length(min=1, max=50))


_API_NAME = validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,99}$", error="not a Zoho field API name")


def _one_group_pattern(text: str) -> None:
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise ValidationError(f"not a valid regular expression ({exc})") from None
    if compiled.groups != 1:
        raise ValidationError(f"needs exactly one (group) around the deal id; it has {compiled.groups}")


class _DealsSchema(Schema):
    rules = fields.List(fields.String(validate=validate.OneOf(deal_mapping.RULES)), validate=validate.Length(min=1))
    reference_pattern = fields.String(validate=_one_group_pattern)
    closed_stages = fields.List(fields.String(validate=validate.Length(min=1)))
    invoice_field = fields.String(validate=_API_NAME)
    fields_ = fields.Dict(data_key="fields", keys=fields.String(validate=validate.OneOf(tuple(deal_mapping.DEAL_MONEY_FIELDS))),
                          values=fields.String(validate=_API_NAME))

    @validates_schema
    def _kept_first_once(self, data: dict, **_: Any) -> None:
        names = {**deal_mapping.DEAL_MONEY_FIELDS, **(data.get("fields_") or {})}
        if len(set(names.values())) != len(names):
            raise ValidationError("two figures cannot share a field", field_name="fields")
        rules = data.get("rules") or ["kept"]
        if len(set(rules)) != len(rules):
            raise ValidationError("a rule is listed twice", field_name="rules")
        if rules[0] != "kept":
            raise ValidationError("'kept' must come first: a link already made, or set by a person in Zoho, is "
                                  "never overwritten", field_name="rules")


class _CreateSchema(Schema):
    modules = fields.List(fields.String(validate=validate.OneOf(CREATABLE_IN_XERO)), required=True)
    account_types = fields.List(fields.String(validate=validate.Length(min=1, max=120)), validate=validate.Length(min=1))
    deal_stages = fields.List(fields.String(validate=validate.Length(min=1, max=120)), validate=validate.Length(min=1))

    @validates_schema
    def _filters_need_accounts(self, data: dict, **_: Any) -> None:
        modules = data.get("modules") or []
        if len(set(modules)) != len(modules):
            raise ValidationError("a module is listed twice", field_name="modules")
        for key in ("account_types", "deal_stages"):
            if key in data and "Accounts" not in modules:
                raise ValidationError("filters Accounts, but modules does not list Accounts", field_name=key)
class _WonDealsSchema(Schema):
    enabled = fields.Boolean()
    stage = fields.String(validate=validate.Length(min=1, max=120))
    pipelines = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=120)),
                            values=fields.String(validate=validate.Length(min=1, max=120)))
    status = fields.String(validate=validate.OneOf(won_deal_mapping.CREATABLE_STATUSES))
    # Xero: ItemCode up to 30 characters, AccountCode up to 10 (Items and Accounts pages of
    # https://developer.xero.com/documentation/api/accounting/items and .../accounts).
    item_code = fields.String(allow_none=True, validate=validate.Length(min=1, max=30))
    account_code = fields.String(allow_none=True, validate=validate.Length(min=1, max=10))
    tax_type = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z0-9]{1,50}$",
                                                                        error="a Xero tax type, e.g. OUTPUT2"))


class _ConfigSchema(Schema):
    trigger = fields.List(fields.String(validate=validate.OneOf(WORKFLOW_TRIGGERS)))
    sync_bills = fields.Boolean()
    neutralise_formulas = fields.Boolean()
    placeholder_product = fields.Nested(_PlaceholderSchema)
    invoice_status = fields.Dict(
        keys=fields.String(validate=validate.OneOf(tuple(XERO_TO_ZOHO_INVOICE_STATUS))), values=fields.String()
    )
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(validate=validate.OneOf(MODULES)),
        values=fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.Nested(_OverrideSchema)),
    )
    crm_owns = fields.Dict(
        keys=fields.String(validate=validate.OneOf(tuple(WRITABLE_TO_XERO))), values=fields.List(fields.String()),
    )
    account_fields = fields.Dict(
        keys=fields.String(validate=validate.OneOf(tuple(zf.ACCOUNT_MONEY_FIELDS))),
        values=fields.String(validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,99}$",
                                                      error="not a Zoho field API name")),
    )
    base_currency = fields.String(validate=validate.Regexp(r"^[A-Z]{3}$", error="a 3-letter ISO 4217 code"))
    deals = fields.Nested(_DealsSchema)
    create_in_xero = fields.Nested(_CreateSchema)
    won_deals = fields.Nested(_WonDealsSchema)

    @validates_schema
    def _distinct_account_fields(self, data: dict, **_: Any) -> None:
        names = {**zf.ACCOUNT_MONEY_FIELDS, **(data.get("account_fields") or {})}
        twice = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
        if twice:
            raise ValidationError(f"two figures cannot share a field: {', '.join(twice)}", field_name="account_fields")

    @validates_schema
    def _writable(self, data: dict, **_: Any) -> None:
        for module, names in (data.get("crm_owns") or {}).items():
            unknown = [n for n in names if n not in WRITABLE_TO_XERO.get(module, ())]
            if unknown:
                raise ValidationError(
                    f"cannot write {', '.join(unknown)} back to Xero; choose from {', '.join(WRITABLE_TO_XERO[module])}",
                    field_name="crm_owns",
                )


def parse_sync_config(text: str, *, source: str = "config") -> SyncConfig:
    """Validate a YAML/JSON text; raises ConfigError naming the line of the first problem."""
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML/JSON ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        return SyncConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} line 1: expected a mapping of settings")
    try:
        data = _ConfigSchema().load(raw)
    except ValidationError as exc:
        raise ConfigError("; ".join(_located(source, root, path, message) for path, message in _flatten(exc.messages)))
    return _build(data)


def load_sync_config(path: Path | None) -> SyncConfig:
    """The config at ``path``, or the defaults when there is no file."""
    if path is None or not Path(path).exists():
        return SyncConfig()
    return parse_sync_config(Path(path).read_text(encoding="utf-8"), source=str(path))


def _build(data: dict) -> SyncConfig:
    defaults = SyncConfig()
    overrides = []
    for module, entries in (data.get("fields_") or {}).items():
        for zoho_field, spec in entries.items():
            overrides.append(FieldOverride(module=module, zoho_field=zoho_field, xero_path=spec.get("from_"),
                                           value=spec.get("value"), omit=bool(spec.get("omit"))))
    placeholder = data.get("placeholder_product") or {}
    return SyncConfig(
        trigger=tuple(data.get("trigger", ())),
        sync_bills=bool(data.get("sync_bills", False)),
        placeholder_item_code=placeholder.get("item_code", defaults.placeholder_item_code),
        placeholder_product_name=placeholder.get("name", defaults.placeholder_product_name),
        invoice_status={**defaults.invoice_status, **(data.get("invoice_status") or {})},
        field_overrides=tuple(overrides),
        crm_owns={**defaults.crm_owns, **{m: tuple(v) for m, v in (data.get("crm_owns") or {}).items()}},
        neutralise_formulas=bool(data.get("neutralise_formulas", False)),
        account_fields={**defaults.account_fields, **(data.get("account_fields") or {})},
        base_currency=data.get("base_currency"),
        **_deal_settings(data.get("deals") or {}, defaults),
        create_modules=tuple((data.get("create_in_xero") or {}).get("modules", ())),
        create_account_types=tuple((data.get("create_in_xero") or {}).get("account_types", ())),
        create_deal_stages=tuple((data.get("create_in_xero") or {}).get("deal_stages", ())),
        **_won_deal_settings(data.get("won_deals") or {}, defaults),
    )


def _won_deal_settings(won: dict, defaults: SyncConfig) -> dict:
    return {
        "won_deal_invoices": bool(won.get("enabled", defaults.won_deal_invoices)),
        "won_deal_stage": won.get("stage", defaults.won_deal_stage),
        "won_deal_pipelines": dict(won.get("pipelines") or {}),
        "won_deal_status": won.get("status", defaults.won_deal_status),
        "won_deal_item_code": won.get("item_code"),
        "won_deal_account_code": won.get("account_code"),
        "won_deal_tax_type": won.get("tax_type"),
    }


def _deal_settings(deals: dict, defaults: SyncConfig) -> dict:
    return {
        "deal_rules": tuple(deals.get("rules", defaults.deal_rules)),
        "deal_reference_pattern": deals.get("reference_pattern", defaults.deal_reference_pattern),
        "deal_closed_stages": tuple(deals.get("closed_stages", defaults.deal_closed_stages)),
        "invoice_deal_field": deals.get("invoice_field", defaults.invoice_deal_field),
        "deal_fields": {**defaults.deal_fields, **(deals.get("fields_") or {})},
    }


def _flatten(messages: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            out.extend(_flatten(value, path if key in ("_schema", "key", "value") else (*path, key)))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(path, " ".join(messages))]
    return [(path, str(messages))]


def _located(source: str, root: yaml.Node | None, path: tuple, message: str) -> str:
    node, line = root, 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if str(k.value) == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    name = ".".join(str(p) for p in path) or "(top)"
    return f"{source} line {line}: {name}: {message}"
