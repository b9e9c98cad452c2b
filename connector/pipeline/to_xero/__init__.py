"""Zoho -> Xero creations: new Zoho records that become Xero records (``contacts``: Accounts and Contacts)."""
