"""A batch's database work on PostgreSQL is a fixed number of transactions, as the server ended them on the
batch's connections (``tests/store/server_transactions.py``): a larger batch of records does not cost more."""

from __future__ import annotations

from connector.sandbox.xero_seed import seed_demo_org, seed_invoices
from tests.store.server_transactions import server_transactions


def test_a_batch_of_invoices_costs_the_same_transactions_whatever_its_size(make_system, pg_database_url):
    picture = make_system(database_url=pg_database_url)
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=24)
    # The placeholder product exists after a first invoice, so both batches below do the same kinds of work:
    # fetch their invoices, push their not-yet-synced contacts along, write the invoices and read them back.
    assert not picture.sync("invoices", seed_invoices(picture.xero, picture.tenant_id, contacts[:1])).failed
    small = seed_invoices(picture.xero, picture.tenant_id, contacts[1:4], per_contact=1)
    large = seed_invoices(picture.xero, picture.tenant_id, contacts[4:], per_contact=3)
    assert len(large) >= 6 * len(small)

    outcomes = []
    small_cost = server_transactions(picture.deps.store,
                                     lambda: outcomes.append(picture.sync("invoices", small)))
    large_cost = server_transactions(picture.deps.store,
                                     lambda: outcomes.append(picture.sync("invoices", large)))

    assert [sorted(o.written) for o in outcomes] == [sorted(small), sorted(large)]
    assert large_cost == small_cost
    assert large_cost < len(large)  # not a transaction per record


def test_a_fetched_batch_is_stored_with_its_audit_rows_in_one_transaction(make_system, pg_database_url):
    picture = make_system(database_url=pg_database_url)
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=12)

    def fetch(ids):
        return lambda: picture.fetch("contacts", ids)

    # An id Xero does not know is only audited (one write); a batch of snapshots and their audit rows
    # costs no more than that.
    nothing_found = server_transactions(picture.deps.store, fetch(["00000000-0000-0000-0000-000000000000"]))
    batch = server_transactions(picture.deps.store, fetch(contacts))
    assert batch == nothing_found
    assert all(picture.deps.store.snapshots.get(picture.connection_id, "contacts", c) for c in contacts)
    trail = picture.deps.store.audit.trail(picture.connection_id, "contact", contacts[-1])
    assert [e.stage for e in trail] == ["fetched"]


def test_pushing_a_batch_of_invoices_with_their_deals_notes_and_accounts_costs_a_fixed_few_transactions(
        make_system, pg_database_url):
    picture = make_system(database_url=pg_database_url)
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=8)
    assert not picture.sync("invoices", seed_invoices(picture.xero, picture.tenant_id, contacts, per_contact=1)).failed
    # New invoices of customers already in Zoho, some paid: each has its deal decided, its payments noted,
    # and its customer's Account written with new figures.
    batch = seed_invoices(picture.xero, picture.tenant_id, contacts, per_contact=2, seed=11)
    picture.fetch("invoices", batch)
    outcome = []
    notes_before = len(picture.zoho.writes("Notes"))
    cost = server_transactions(picture.deps.store, lambda: outcome.append(picture.push().invoices(batch)))
    assert sorted(outcome[0].written) == sorted(batch)
    assert len(picture.zoho.writes("Notes")) > notes_before  # the batch's payments were noted
    # The push's own setup included (its connection, credentials, token): 20 before its reads were gathered
    # (a customer's Account written twice, the deals' and notes' reads apart).
    assert cost <= 14, cost
