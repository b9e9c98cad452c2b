"""Zoho -> Xero writes that create Xero records (as opposed to from_zoho's edits of linked contacts)."""
