"""The Zoho CRM v8 sandbox, split by role (see app.py); ``connector.sandbox.zoho`` keeps its names."""

from connector.sandbox.zoho.accounts import FULL_SCOPE
from connector.sandbox.zoho.app import ZohoSandbox
from connector.sandbox.zoho.metadata import MODULES, STANDARD_FIELDS, XERO_FIELDS, FieldSpec, ModuleSpec
from connector.sandbox.zoho.render import _error, _item_error, _Rejected

__all__ = ["FULL_SCOPE", "MODULES", "STANDARD_FIELDS", "XERO_FIELDS", "FieldSpec", "ModuleSpec", "ZohoSandbox",
           "_Rejected", "_error", "_item_error"]
