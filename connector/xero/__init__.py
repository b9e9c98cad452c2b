"""Xero: the Accounting API client and the OAuth token manager."""

from connector.xero.auth import XeroTokenManager, XeroTokenSource
from connector.xero.client import Page, XeroClient, raise_for_xero

__all__ = ["Page", "XeroClient", "XeroTokenManager", "XeroTokenSource", "raise_for_xero"]
