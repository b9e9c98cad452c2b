"""The Zoho org as it is: which modules it has and whether our custom fields exist.

``check_org`` reads GET /settings/modules and GET /settings/fields (one call per module we use);
``setup_org`` creates missing custom fields with POST /settings/fields?module= (Zoho v8 fields API,
operation "Create Field": body ``{"fields": [{field_label, data_type, length, unique}]}``).
An edition without the Invoices module (Free/Standard) syncs contacts only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connector.errors import ConfigError
from connector.mapping import zoho_fields as zf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NeededField:
    module: str
    api_name: str
    data_type: str  # Zoho data_type for the fields API: text, currency, website
    unique: bool = False

    def how_to_create(self) -> str:
        kind = {"text": "Single Line (255)", "currency": "Currency", "website": "URL"}[self.data_type]
        unique = ", 'Do not allow duplicate values' ticked" if self.unique else ""
        return (f"Zoho {self.module} has no field {self.api_name}: create it in Setup > Customization > Modules "
                f"and Fields > {self.module} as {kind} labelled '{self.api_name.replace('_', ' ')}'{unique}, "
                f"or run `connector setup-zoho`")


NEEDED_FIELDS = (
    NeededField("Accounts", zf.ACCOUNT_XERO_ID, "text", unique=True),
    NeededField("Accounts", zf.ACCOUNT_TAX_NUMBER, "text"),
    NeededField("Accounts", zf.ACCOUNT_XERO_STATUS, "text"),
    NeededField("Accounts", zf.XERO_URL, "website"),
    NeededField("Accounts", zf.ACCOUNT_OUTSTANDING, "currency"),
    NeededField("Accounts", zf.ACCOUNT_OVERDUE, "currency"),
    NeededField("Contacts", zf.CONTACT_PERSON_KEY, "text", unique=True),
    NeededField("Products", zf.PRODUCT_ITEM_CODE, "text", unique=True),
    NeededField("Invoices", zf.INVOICE_XERO_ID, "text", unique=True),
    NeededField("Invoices", zf.INVOICE_AMOUNT_PAID, "currency"),
    NeededField("Invoices", zf.INVOICE_AMOUNT_DUE, "currency"),
    NeededField("Invoices", zf.XERO_URL, "website"),
)
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
        blocking = [f for f in self.missing if f.module in CONTACT_MODULES or self.has_invoices]
        if blocking:
            raise ConfigError("; ".join(f.how_to_create() for f in blocking))


def check_org(zoho) -> OrgCheck:
    modules = frozenset(m["api_name"] for m in zoho.modules() if m.get("api_supported", True))
    missing, present = [], {}
    for module in dict.fromkeys(f.module for f in NEEDED_FIELDS):
        if module not in modules:
            continue
        present[module] = frozenset(f["api_name"] for f in zoho.fields(module))
        missing.extend(f for f in NEEDED_FIELDS if f.module == module and f.api_name not in present[module])
    check = OrgCheck(modules=modules, missing=tuple(missing), fields=present)
    if not check.has_invoices:
        log.warning("zoho.org.contacts_only: this Zoho edition has no Invoices module; only contacts are synced")
    return check


def setup_org(zoho) -> list[str]:
    """Create every missing custom field; returns "Module.Field" for each one created."""
    created = []
    check = check_org(zoho)
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
    return body
