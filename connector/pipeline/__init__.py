"""The sync behaviour, one module per direction.

Xero → Zoho, per record:  received → fetched → mapped → written (or skipped / failed / parked)

1. ``xero_in.buffer_xero_events``: webhook events (ids only) go into one Redis buffer per connection
   and resource, duplicates collapsed. Events of a tenant with no connection yet are held until
   it is connected.
2. ``xero_in.flush_xero_buffer``: the ids gathered in a batch window are fetched by
   ``xero_in.fetch_xero_records``, one ``IDs=`` GET per ≤50 ids; each record is stored as a
   snapshot where the newest ``UpdatedDateUTC`` wins, so out-of-order deliveries cannot
   regress state. Polls (connector/polling.py) and the backfill feed the same snapshots.
3. ``to_zoho.ZohoPush``: the snapshots are mapped (pure) and upserted into Zoho keyed on the
   Xero id; a content hash per link skips writes that would change nothing, so a second
   delivery of the same event writes nothing to Zoho.

Zoho → Xero: ``from_zoho.pull_zoho_changes`` takes a person's edit of a linked Zoho record to the
Xero contact and recognises the notifications of our own writes.

Every function takes its collaborators keyword-only; the Celery tasks in workers/ build them
and decide about retries (workers/base.py holds the one retry policy).
"""
