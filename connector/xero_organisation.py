"""The Xero organisation's plan, base currency and country, as `connector check` and the fit report show them.

GET /Organisation (https://developer.xero.com/documentation/api/accounting/organisation) needs accounting.settings
or accounting.settings.read (https://developer.xero.com/documentation/guides/oauth2/scopes/; the granular change of
2026 split accounting.transactions and accounting.reports.read, not the settings scope:
https://developer.xero.com/faq/granular-scopes). The connector asks for the read scope since this was added;
a consent given before lacks it, and the answer is then a line saying to reconnect, never a failed check.

One call per check or report, made fresh each time: nothing is cached, so a plan changed in Xero shows at the next
check. ``describe_organisation`` and ``currency_note`` are pure.
"""

from __future__ import annotations

from typing import Any

from connector.call_purpose import CHECK
from connector.errors import NeedsReauth, Unauthorized
from connector.http import call_purpose

SETTINGS_SCOPES = frozenset({"accounting.settings", "accounting.settings.read"})
RECONNECT_FOR_SETTINGS = "reconnect Xero to show the plan and base currency"
# ``Class`` values of Xero's OpenAPI ``Organisation`` schema ("which plan the Xero organisation is on") in words;
# any other is shown from its code (PREMIUM_20 -> "Premium 20").
PLAN_NAMES = {"DEMO": "Demo company", "TRIAL": "Trial", "GST_CASHBOOK": "GST Cashbook",
              "NON_GST_CASHBOOK": "Non-GST Cashbook", "BASICLITE": "Basic Lite"}


def plan_in_words(plan_class: str | None) -> str | None:
    if not plan_class:
        return None
    code = str(plan_class).upper()
    return PLAN_NAMES.get(code) or code.replace("_", " ").title()


def describe_organisation(element: dict[str, Any]) -> dict[str, Any]:
    """What a person reads from GET /Organisation's element: the plan in words (and its code), base currency,
    country, edition (a PARTNER edition has no invoicing, the schema says), organisation type."""
    return {"read": True, "name": element.get("Name"), "plan": plan_in_words(element.get("Class")),
            "plan_class": element.get("Class"), "base_currency": element.get("BaseCurrency"),
            "country": element.get("CountryCode"), "edition": element.get("Edition"),
            "organisation_type": element.get("OrganisationType")}


def read_organisation(xero, granted_scopes: list[str] | None) -> dict[str, Any]:
    """The organisation as ``describe_organisation`` gives it, or why not: ``{"read": False, "note": ...}`` when
    the consent lacks the settings scope (no call is made when the stored scopes already say so), or
    ``{"read": False, "error": ..., "todo": ...}`` when the call failed otherwise."""
    if granted_scopes and not SETTINGS_SCOPES & set(granted_scopes):
        return {"read": False, "note": RECONNECT_FOR_SETTINGS}
    try:
        with call_purpose(CHECK):
            element = xero.get_organisation()
    except (Unauthorized, NeedsReauth):
        # Xero's 401 AuthorizationUnsuccessful for a scope not granted; the Xero check itself says whether the
        # connection is otherwise broken.
        return {"read": False, "note": RECONNECT_FOR_SETTINGS}
    except Exception as exc:  # reported, never raised: the rest of the check stands
        return {"read": False, "error": str(exc), "todo": "check again later"}
    return describe_organisation(element)


def currency_note(base_currency: str | None, zoho_currency: str | None,
                  configured_base: str | None = None) -> str | None:
    """What a difference between Xero's base currency, Zoho's home currency and mapping.yaml's ``base_currency``
    means for the figures (README, "Foreign currency"); None when there is nothing to say."""
    if not base_currency:
        return None
    notes = []
    if configured_base and configured_base != base_currency:
        notes.append(f"mapping.yaml says base_currency {configured_base} but Xero's base currency is "
                     f"{base_currency}: set base_currency: {base_currency} (or remove it) so foreign invoices are "
                     "converted right")
    if zoho_currency and zoho_currency != base_currency:
        notes.append(f"Zoho's home currency {zoho_currency} is not Xero's base currency {base_currency}: the money "
                     f"figures on Accounts and Deals are in {base_currency} (each foreign invoice converted at the "
                     f"rate Xero stored on it), not in {zoho_currency}; invoices keep their own currency, which "
                     "needs to be enabled in Zoho")
    return "; ".join(notes) or None
