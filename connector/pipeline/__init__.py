"""The sync behaviour, one module per direction.

Xero → Zoho, per record:  received → fetched → mapped → written (or skipped / failed)

1. ``xero_in.group_xero_events``: webhook events (ids only) → one fetch batch per connection
   and resource, duplicates collapsed. Unknown tenants are audited and dropped.
2. ``xero_in.fetch_xero_records``: one ``IDs=`` GET per ≤50 ids; each record is stored as a
   snapshot where the newest ``UpdatedDateUTC`` wins, so out-of-order deliveries cannot
   regress state.
3. ``to_zoho.push_contact``: the snapshot is mapped (pure) and upserted into Zoho keyed on the
   Xero id; a content hash per link skips writes that would change nothing, so a second
   delivery of the same event writes nothing to Zoho.

Every function takes its collaborators keyword-only; the Celery tasks in workers/ build them
and decide about retries (workers/base.py holds the one retry policy).
"""
