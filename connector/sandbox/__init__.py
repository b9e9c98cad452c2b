"""Faithful local simulators of Xero and Zoho CRM, served over HTTP on loopback.

They follow the vendors' published APIs (paths, headers, envelopes, errors, limits), not our
client, so pointing any client at them is only a base-URL change.
"""
