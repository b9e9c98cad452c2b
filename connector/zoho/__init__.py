"""Zoho CRM: the v8 REST client and the OAuth token manager."""

from connector.zoho.auth import ZohoTokenManager, ZohoTokenSource
from connector.zoho.client import RecordResult, ZohoClient, raise_for_zoho

__all__ = ["RecordResult", "ZohoClient", "ZohoTokenManager", "ZohoTokenSource", "raise_for_zoho"]
