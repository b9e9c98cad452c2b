"""The Zoho sandbox's module registry and field metadata, and the routes that show and extend them.

The registry is data: a module is an entry in ``MODULES`` plus its fields in ``STANDARD_FIELDS`` (and in
``XERO_FIELDS`` if our setup step adds fields to it). Routing, listing, validation, upsert matching and
notifications read the registry, so adding a module (Deals, say) is adding those entries; a module
whose records Zoho computes values for adds a derivation in validation.py.
Routes: GET /crm/v8/org, GET /settings/modules, GET and POST /settings/fields (Zoho v8 OAS modules.json,
fields.json and org.json, https://github.com/zoho/crm-oas).

Deals: the standard fields and the four mandatory ones (Deal Name, Account Name, Closing Date, Stage) of
Zoho's help page "Standard Fields in Deals"
(https://help.zoho.com/portal/en/kb/crm/sales-force-automation/deal-management/articles/standard-fields-deals).
Sales orders carry the standard ``Deal_Name`` lookup; invoices have no standard lookup to Deals, only
``Sales_Order`` (so the connector's setup adds one). Notes attach to any record through ``Parent_Id``
(https://www.zoho.com/crm/developer/docs/api/create-notes.html); Zoho has no Payments module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.wrappers import Response

from connector.sandbox.zoho.render import _error, _item_error, _json

DEAL_STAGES = ("Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers", "Perception Analysis",
               "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost", "Closed Lost to Competition")
# A deal in one of these stages is closed (the default layout's picklist; an org may add stages: UNVERIFIED).
CLOSED_DEAL_STAGES = ("Closed Won", "Closed Lost", "Closed Lost to Competition")
DEAL_TYPES = ("-None-", "Existing Business", "New Business")
SALES_ORDER_STATUSES = ("Created", "Approved", "Delivered", "Cancelled")
# Quote stages of the standard layout (UNVERIFIED: an org edits its picklist).
QUOTE_STAGES = ("Draft", "Negotiation", "Delivered", "On Hold", "Confirmed", "Closed Won", "Closed Lost")
INVOICE_STATUSES = ("Created", "Approved", "Delivered", "Cancelled", "Paid", "Partially Paid", "Void")
ACCOUNT_TYPES = ("-None-", "Analyst", "Competitor", "Customer", "Distributor", "Integrator", "Investor",
                 "Partner", "Press", "Prospect", "Reseller", "Supplier", "Vendor", "Other")
# Data types POST /settings/fields creates here (the OpenAPI lists more; these are the ones we model).
CREATABLE_TYPES = ("text", "currency", "website", "email", "phone", "textarea", "boolean", "date", "lookup")


@dataclass(frozen=True)
class FieldSpec:
    api_name: str
    # text, textarea, email, phone, website, currency, double, boolean, date, picklist, lookup, lineitem, and
    # "parent": a Note's Parent_Id, {"module": {"api_name"}, "id"}, pointing at a record of any module
    data_type: str
    length: int = 255
    mandatory: bool = False
    unique: bool = False
    custom: bool = False
    read_only: bool = False
    lookup: str | None = None  # target module of a lookup
    picklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleSpec:
    api_name: str
    singular: str
    id: str
    display_field: str  # the lookup "name" comes from this field
    duplicate_field: str  # Zoho's system duplicate-check field for upsert
    inventory: bool = False  # not in Free/Standard editions (3P: CData)


MODULES = {
    "Accounts": ModuleSpec("Accounts", "Account", "4876876000000002177", "Account_Name", "Account_Name"),
    "Contacts": ModuleSpec("Contacts", "Contact", "4876876000000002179", "Full_Name", "Email"),
    "Products": ModuleSpec("Products", "Product", "4876876000000002181", "Product_Name", "Product_Name"),
    "Invoices": ModuleSpec("Invoices", "Invoice", "4876876000000002183", "Subject", "Subject", inventory=True),
    "Deals": ModuleSpec("Deals", "Deal", "4876876000000002185", "Deal_Name", "Deal_Name"),
    "Sales_Orders": ModuleSpec("Sales_Orders", "Sales Order", "4876876000000002187", "Subject", "Subject",
                               inventory=True),
    "Notes": ModuleSpec("Notes", "Note", "4876876000000002189", "Note_Title", "Note_Title"),
    "Quotes": ModuleSpec("Quotes", "Quote", "4876876000000002191", "Subject", "Subject", inventory=True),
}


def _text(name: str, length: int, **kw) -> FieldSpec:
    return FieldSpec(name, "text", length, **kw)


def _address(prefix: str, code: str) -> list[FieldSpec]:
    return [_text(f"{prefix}_Street", 250), _text(f"{prefix}_City", 30), _text(f"{prefix}_State", 30),
            _text(f"{prefix}_{code}", 30), _text(f"{prefix}_Country", 30)]


def _money(name: str, **kw) -> FieldSpec:
    return FieldSpec(name, "currency", 16, **kw)


# Standard-layout fields (names from the v8 SDK field list); lengths are Zoho's usual defaults.
STANDARD_FIELDS: dict[str, list[FieldSpec]] = {
    "Accounts": [
        _text("Account_Name", 200, mandatory=True), FieldSpec("Phone", "phone", 30),
        FieldSpec("Fax", "phone", 30), FieldSpec("Website", "website", 255), _text("Account_Number", 40),
        FieldSpec("Account_Type", "picklist", 120, picklist=ACCOUNT_TYPES),
        FieldSpec("Description", "textarea", 32000), *_address("Billing", "Code"), *_address("Shipping", "Code"),
    ],
    "Contacts": [
        _text("Last_Name", 80, mandatory=True), _text("First_Name", 40), _text("Full_Name", 120, read_only=True),
        FieldSpec("Email", "email", 100), FieldSpec("Secondary_Email", "email", 100), FieldSpec("Phone", "phone", 30),
        FieldSpec("Mobile", "phone", 30), FieldSpec("Account_Name", "lookup", lookup="Accounts"), _text("Title", 100),
        *_address("Mailing", "Zip"), FieldSpec("Email_Opt_Out", "boolean"), FieldSpec("Description", "textarea", 32000),
    ],
    "Products": [
        _text("Product_Name", 200, mandatory=True), _text("Product_Code", 40), _money("Unit_Price"),
        FieldSpec("Description", "textarea", 32000), FieldSpec("Product_Active", "boolean"),
        FieldSpec("Taxable", "boolean"),
    ],
    "Invoices": [
        _text("Subject", 255, mandatory=True),
        FieldSpec("Account_Name", "lookup", mandatory=True, lookup="Accounts"),
        FieldSpec("Contact_Name", "lookup", lookup="Contacts"),
        FieldSpec("Invoice_Date", "date"), FieldSpec("Due_Date", "date"),
        FieldSpec("Status", "picklist", 120, picklist=INVOICE_STATUSES),
        _text("Purchase_Order", 100), FieldSpec("Sales_Order", "lookup", lookup="Sales_Orders"),
        FieldSpec("Invoiced_Items", "lineitem", mandatory=True),
        _money("Sub_Total", read_only=True), _money("Tax", read_only=True), _money("Discount"), _money("Adjustment"),
        _money("Grand_Total", read_only=True), *_address("Billing", "Code"), *_address("Shipping", "Code"),
        FieldSpec("Terms_and_Conditions", "textarea", 32000), FieldSpec("Description", "textarea", 32000),
    ],
    "Deals": [
        _text("Deal_Name", 120, mandatory=True), FieldSpec("Account_Name", "lookup", mandatory=True, lookup="Accounts"),
        FieldSpec("Contact_Name", "lookup", lookup="Contacts"), FieldSpec("Type", "picklist", 120, picklist=DEAL_TYPES),
        _money("Amount"), FieldSpec("Closing_Date", "date", mandatory=True), _text("Next_Step", 100),
        FieldSpec("Stage", "picklist", 120, mandatory=True, picklist=DEAL_STAGES), FieldSpec("Probability", "double", 3),
        _money("Expected_Revenue", read_only=True), FieldSpec("Description", "textarea", 32000),
    ],
    # Lines: Ordered_Items (Sales Orders) and Quoted_Items (Quotes), line items as Invoiced_Items are
    # (v8 field names: Zoho's SDK field list; https://www.zoho.com/crm/developer/docs/api/v8/get-records.html).
    # Not mandatory here (Zoho's layout requires a line: UNVERIFIED for the API); totals are not computed.
    "Sales_Orders": [
        _text("Subject", 255, mandatory=True), FieldSpec("Account_Name", "lookup", mandatory=True, lookup="Accounts"),
        FieldSpec("Deal_Name", "lookup", lookup="Deals"), FieldSpec("Contact_Name", "lookup", lookup="Contacts"),
        FieldSpec("Status", "picklist", 120, picklist=SALES_ORDER_STATUSES), FieldSpec("Description", "textarea", 32000),
        FieldSpec("Ordered_Items", "lineitem"),
    ],
    "Quotes": [
        _text("Subject", 255, mandatory=True), FieldSpec("Account_Name", "lookup", mandatory=True, lookup="Accounts"),
        FieldSpec("Deal_Name", "lookup", lookup="Deals"), FieldSpec("Contact_Name", "lookup", lookup="Contacts"),
        FieldSpec("Quote_Stage", "picklist", 120, picklist=QUOTE_STAGES), FieldSpec("Valid_Till", "date"),
        FieldSpec("Description", "textarea", 32000), FieldSpec("Quoted_Items", "lineitem"),
    ],
    # Note_Content's limit and which of the two is mandatory are UNVERIFIED (the create-notes page's samples
    # always send both); Parent_Id is required to attach the note.
    "Notes": [
        _text("Note_Title", 120), FieldSpec("Note_Content", "textarea", 32000, mandatory=True),
        FieldSpec("Parent_Id", "parent", mandatory=True),
    ],
}

# The custom fields our setup step creates in an org (single-line text of 255, unless noted).
XERO_FIELDS: dict[str, list[FieldSpec]] = {
    "Accounts": [_text("Xero_Contact_ID", 255, unique=True, custom=True), _text("Xero_Tax_Number", 255, custom=True),
                 _text("Xero_Status", 255, custom=True), FieldSpec("Xero_Url", "website", 255, custom=True),
                 _money("Xero_Outstanding", custom=True), _money("Xero_Overdue", custom=True),
                 _money("Xero_Total_Invoiced", custom=True), _money("Xero_Credit_Available", custom=True),
                 FieldSpec("Xero_Last_Invoice_Date", "date", custom=True),
                 FieldSpec("Xero_Last_Payment_Date", "date", custom=True),
                 _money("Xero_Last_Payment_Amount", custom=True), _text("Xero_Payment_Status", 255, custom=True)],
    "Contacts": [_text("Xero_Person_Key", 255, unique=True, custom=True)],
    "Products": [_text("Xero_Item_Code", 255, unique=True, custom=True)],
    "Invoices": [_text("Xero_Invoice_ID", 255, unique=True, custom=True), _money("Xero_Amount_Paid", custom=True),
                 _money("Xero_Amount_Due", custom=True), FieldSpec("Xero_Url", "website", 255, custom=True),
                 FieldSpec("Deal", "lookup", custom=True, lookup="Deals")],
    "Deals": [_money("Xero_Invoiced", custom=True), _money("Xero_Paid", custom=True),
              _money("Xero_Outstanding", custom=True), _money("Xero_Credited", custom=True),
              FieldSpec("Xero_Last_Payment_Date", "date", custom=True), _text("Xero_Payment_Status", 255, custom=True)],
}

LINE_ITEM_FIELDS = ("id", "Product_Name", "Quantity", "List_Price", "Discount", "Tax", "Description")
LINE_ITEM_COMPUTED = ("Total", "Total_After_Discount", "Net_Total")
SYSTEM_KEYS = {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Owner", "Tag", "$approval_state"}


def _json_type(data_type: str) -> str:
    return {"currency": "double", "double": "double", "boolean": "boolean", "lookup": "jsonobject", "parent": "jsonobject",
            "lineitem": "jsonarray"}.get(data_type, "string")


def _field_metadata(spec: FieldSpec, spec_id: str) -> dict:
    """One entry of GET /settings/fields, using the key names of Zoho's fields.json."""
    lookup = {}
    if spec.lookup:
        target = MODULES[spec.lookup]
        lookup = {"display_label": spec.lookup, "api_name": spec.api_name, "id": spec_id,
                  "module": {"api_name": target.api_name, "id": target.id}}
    return {
        "api_name": spec.api_name,
        "id": spec_id,
        "field_label": spec.api_name.replace("_", " "),
        "display_label": spec.api_name.replace("_", " "),
        "data_type": spec.data_type,
        "json_type": _json_type(spec.data_type),
        "length": spec.length,
        "decimal_place": 2 if spec.data_type == "currency" else None,
        "system_mandatory": spec.mandatory,
        "custom_field": spec.custom,
        "read_only": spec.read_only,
        "field_read_only": spec.read_only,
        "visible": True,
        "unique": {"casesensitive": "false"} if spec.unique else {},
        "lookup": lookup,
        "currency": {"rounding_option": "normal", "precision": 2} if spec.data_type == "currency" else {},
        "pick_list_values": [
            {"display_value": v, "actual_value": v, "id": f"{spec_id}{n:03d}", "sequence_number": n,
             "type": "used", "colour_code": None}
            for n, v in enumerate(spec.picklist, start=1)
        ],
        "associated_module": None,
        "api_supported": True,
    }


def module_fields(module: str, xero_fields: bool) -> dict[str, FieldSpec]:
    """The fields an org starts with in ``module``, by api_name: the standard layout, plus ours."""
    specs = STANDARD_FIELDS[module] + (XERO_FIELDS.get(module, []) if xero_fields else [])
    return {spec.api_name: spec for spec in specs}


def field_id(module: str, number: int) -> str:
    """The id of the ``number``-th field of ``module`` (from 1): 19 digits, unique per org."""
    return f"48768760000{list(MODULES).index(module):02d}{number:06d}"


def _lookup_target(item: dict):
    """A lookup's target module, from ``"lookup": {"module": {"api_name": ...}}`` (fields.json, schema
    ``lookup``; the other keys that schema lists for a read are not required on create here: UNVERIFIED)."""
    lookup = item.get("lookup")
    module = lookup.get("module") if isinstance(lookup, dict) else None
    return module.get("api_name") if isinstance(module, dict) else None


class MetadataApi:
    """The org, modules and fields routes of ZohoSandbox (which holds the state they read)."""


    def _org(self) -> Response:
        """GET /crm/v8/org: ``{"org": [Org]}`` (Zoho v8 OAS org.json, scope ZohoCRM.org.READ)."""
        return _json({"org": [{
            "id": self.org_id, "zgid": self.org_id[-9:], "company_name": self.company_name,
            "domain_name": f"org{self.org_id[-9:]}", "country_code": self.dc.upper(), "currency": "NZD",
            "iso_code": "NZD", "time_zone": "Pacific/Auckland", "primary_email": "admin@example.com",
            "type": "production",
        }]})

    def _list_modules(self) -> Response:
        return _json({"modules": [
            {"api_name": m.api_name, "module_name": m.api_name, "id": m.id, "plural_label": m.api_name,
             "singular_label": m.singular, "api_supported": True, "creatable": True, "editable": True,
             "deletable": True, "viewable": True, "visible": True, "show_as_tab": True,
             "generated_type": "default", "status": "visible"}
            for m in self.modules.values()
        ]})

    def _list_fields(self, module: str | None) -> Response:
        if not module:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "module"})
        if module not in self.modules:
            return _error(400, "INVALID_MODULE", "The module name given seems to be invalid", {})
        return _json({"fields": [
            _field_metadata(f, field_id(module, n)) for n, f in enumerate(self.fields[module].values(), start=1)
        ]})

    def _create_fields(self, module: str | None, body) -> Response:
        """POST /settings/fields?module= (fields.json "Create Field"): body {"fields": [...]}, 201 with
        one SUCCESS item per field, details.id. Zoho derives api_name from field_label (spaces become
        underscores); per-item error codes beyond the OpenAPI's generic ones are UNVERIFIED."""
        if not module:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "module"})
        if module not in self.modules:
            return _error(400, "INVALID_MODULE", "The module name given seems to be invalid", {})
        items = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "fields", "json_path": "$.fields"})
        results = []
        with self._lock:
            for n, item in enumerate(items):
                label = item.get("field_label") if isinstance(item, dict) else None
                kind = item.get("data_type") if isinstance(item, dict) else None
                if not label or kind not in CREATABLE_TYPES:
                    results.append(_item_error("INVALID_DATA", "invalid data",
                                               "data_type" if label else "field_label", f"$.fields[{n}]"))
                    continue
                api_name = re.sub(r"\s+", "_", str(label).strip())
                if api_name in self.fields[module]:
                    results.append(_item_error("DUPLICATE_DATA", "duplicate data", "field_label",
                                               f"$.fields[{n}].field_label"))
                    continue
                target = _lookup_target(item) if kind == "lookup" else None
                if kind == "lookup" and target not in self.modules:
                    results.append(_item_error("INVALID_DATA", "invalid data", "lookup", f"$.fields[{n}].lookup"))
                    continue
                self.fields[module][api_name] = FieldSpec(
                    api_name, kind, int(item.get("length") or (16 if kind == "currency" else 255)),
                    unique=bool(item.get("unique")), custom=True, lookup=target)
                results.append({"code": "SUCCESS", "details": {"id": field_id(module, len(self.fields[module]))},
                                "message": "field created",
                                "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        return _json({"fields": results}, 201 if ok == len(results) else 400)

