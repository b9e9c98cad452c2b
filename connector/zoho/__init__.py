"""Zoho CRM: the v8 REST client, the OAuth token manager and their request-pipeline hooks."""

from connector.zoho.auth import ZohoTokenManager, ZohoTokenSource
from connector.zoho.client import RecordResult, ZohoClient
from connector.zoho.hooks import ZohoApiHooks, ZohoTokenHooks

__all__ = ["RecordResult", "ZohoApiHooks", "ZohoClient", "ZohoTokenHooks", "ZohoTokenManager", "ZohoTokenSource"]
