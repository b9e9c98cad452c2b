"""An invoice batch pushed by its task leaves its customers' Account figures to the Zoho buffer: however many
batches of one customer's invoices arrive within the window, the Account is written once, with the figures of
all of them, by one flush (workers/zoho_tasks.py ACCOUNT_FIGURES)."""

from __future__ import annotations

from decimal import Decimal

from connector.mapping import zoho_fields as zf
from tests.reliability.conftest import run
from workers.zoho_tasks import ACCOUNT_FIGURES, ACCOUNT_FIGURES_LINGER_SECONDS, push_records_to_zoho

FLUSH_ZOHO, PUSH = "connector.flush_zoho_buffer", "connector.push_records_to_zoho"
CONSULTING = {"Description": "Consulting", "Quantity": Decimal(1), "AccountCode": "200", "TaxType": "NONE"}


def test_batches_of_one_customers_invoices_write_its_account_once_a_window(world, published):
    customer = world.xero.create_contact(world.tenant_id, Name="Windowed Ltd")["ContactID"]
    world.sync("contacts", [customer])
    invoices = [world.xero.create_invoice(world.tenant_id, customer, [{**CONSULTING, "UnitAmount": Decimal(amount)}]
                                          )["InvoiceID"] for amount in ("100.00", "20.00", "3.00")]

    def account_writes() -> int:
        return sum(w["count"] for w in world.zoho.writes("Accounts"))

    def outstanding() -> Decimal:
        link = world.deps.store.links.get(world.connection_id, "contact", customer)
        return Decimal(str(world.zoho.record("Accounts", link.zoho_id)[zf.ACCOUNT_OUTSTANDING])).quantize(Decimal("0.01"))

    writes_before = account_writes()
    for batch in (invoices[:1], invoices[1:2], invoices[2:]):  # three batches, as three flushes hand them over
        world.fetch("invoices", batch)
        assert push_records_to_zoho.apply(args=[world.connection_id, "invoices", batch, {}]).successful()
    assert account_writes() == writes_before  # the invoices are in Zoho; their Account waits for the window
    [flush] = published.take(FLUSH_ZOHO)  # one flush for the three batches, after the window
    assert flush.args == [world.connection_id, ACCOUNT_FIGURES] and flush.eta is not None
    assert ACCOUNT_FIGURES_LINGER_SECONDS <= 5  # the delay the README promises

    run(flush)
    [push] = published.take(PUSH)
    assert push.args[1:3] == [ACCOUNT_FIGURES, [customer]]
    run(push)
    assert account_writes() == writes_before + 1
    assert outstanding() == Decimal("123.00")

    # Run again (a redelivery): the figures did not change, so nothing is written.
    run(push)
    assert account_writes() == writes_before + 1


def test_a_retried_figures_push_ends_each_customers_trail_settled_even_with_nothing_left_to_write(world, published):
    from connector.store import audit as stages

    customer = world.xero.create_contact(world.tenant_id, Name="Retried Ltd")["ContactID"]
    world.sync("contacts", [customer])
    invoice = world.xero.create_invoice(world.tenant_id, customer, [{**CONSULTING, "UnitAmount": Decimal("50.00")}]
                                        )["InvoiceID"]
    world.fetch("invoices", [invoice])
    assert push_records_to_zoho.apply(args=[world.connection_id, "invoices", [invoice], {}]).successful()
    [flush] = published.take(FLUSH_ZOHO)
    run(flush)
    [push] = published.take(PUSH)
    run(push)  # the Account holds the figures now

    def last_stage() -> str:
        return world.deps.store.audit.latest_stage(world.connection_id, "contact", customer)

    # A figures push of this customer failed before (Zoho answered 500, say): its trail says 'retrying'.
    world.deps.store.audit.record(connection_id=world.connection_id, record_type="contact", record_id=customer,
                                  stage=stages.RETRYING, detail={"reason": "Zoho answered 500"})
    # The first delivery of a push that finds nothing to write adds no row; the retry of a failed one settles it.
    assert push_records_to_zoho.apply(args=[world.connection_id, ACCOUNT_FIGURES, [customer], {}]).successful()
    assert last_stage() == stages.RETRYING
    assert push_records_to_zoho.apply(args=[world.connection_id, ACCOUNT_FIGURES, [customer], {}],
                                      kwargs={"attempt": 1}).successful()
    assert last_stage() == stages.SKIPPED
