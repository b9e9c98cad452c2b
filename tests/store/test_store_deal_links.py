"""Invoice -> deal decisions: stored and replaced, the unassigned listed, a deal's invoices in one query."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import event

from connector.store import Store

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def _invoice(number: int) -> dict:
    return {"InvoiceID": f"inv-{number}", "Type": "ACCREC", "Contact": {"ContactID": "c-1"}, "Total": "10.00"}


def test_a_decision_is_replaced_and_the_unassigned_are_listed(store: Store, connection_id: int) -> None:
    links = store.deal_links
    links.save(connection_id, {"inv-1": {"deal_id": None, "rule": "unassigned", "reason": "two open deals",
                                         "contact_id": "c-1"},
                               "inv-2": {"deal_id": "d-1", "rule": "reference", "reason": "named"}})
    assert [row["invoice_id"] for row in links.unassigned(connection_id)] == ["inv-1"]
    assert links.unassigned(connection_id)[0]["reason"] == "two open deals"
    links.save(connection_id, {"inv-1": {"deal_id": "d-2", "rule": "manual", "reason": "linked by hand"}})
    assert links.unassigned(connection_id) == [] and links.count_unassigned(connection_id) == 0
    assert links.decisions(connection_id, ["inv-1", "inv-9"]) == {
        "inv-1": {"deal_id": "d-2", "rule": "manual", "reason": "linked by hand", "contact_id": None}}


def test_a_deal_with_ten_thousand_invoices_is_read_in_one_query(store: Store, connection_id: int) -> None:
    store.snapshots.put_many_if_newer(connection_id, "invoices", [(f"inv-{n}", T0, _invoice(n)) for n in range(10_000)])
    store.deal_links.save(connection_id, {f"inv-{n}": {"deal_id": "big" if n else "small", "rule": "reference",
                                                       "reason": ""} for n in range(10_000)})
    selects: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        found = store.deal_links.deals_invoices(connection_id, ["big", "small", "none"])
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(selects) == 1
    assert (len(found["big"]), [i["InvoiceID"] for i in found["small"]], found["none"]) == (9_999, ["inv-0"], [])


def test_a_deleted_deal_leaves_its_invoices_unassigned(store: Store, connection_id: int) -> None:
    store.deal_links.save(connection_id, {"inv-1": {"deal_id": "d-1", "rule": "kept", "reason": ""},
                                          "inv-2": {"deal_id": "d-2", "rule": "kept", "reason": ""}})
    assert store.deal_links.forget_deals(connection_id, ["d-1"], "its deal was deleted in Zoho") == ["inv-1"]
    [row] = store.deal_links.unassigned(connection_id)
    assert (row["invoice_id"], row["reason"]) == ("inv-1", "its deal was deleted in Zoho")
