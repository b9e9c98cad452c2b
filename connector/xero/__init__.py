"""Xero: the Accounting API client, the OAuth token manager and their request-pipeline hooks."""

from connector.xero.auth import XeroTokenManager, XeroTokenSource
from connector.xero.client import Page, XeroClient
from connector.xero.hooks import XeroApiHooks, XeroTokenHooks

__all__ = ["Page", "XeroApiHooks", "XeroClient", "XeroTokenHooks", "XeroTokenManager", "XeroTokenSource"]
