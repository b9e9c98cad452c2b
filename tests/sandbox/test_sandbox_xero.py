"""The Xero sandbox served over real HTTP behaves like the documented Xero API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from connector.clock import Clock, ManualClock
from connector.sandbox.common import serve
from connector.sandbox.xero import XeroSandbox, XeroValidationError
from connector.sandbox.xero_seed import seed_demo_org, seed_invoices, seed_large_org

API = "/api.xro/2.0"
MS_DATE = re.compile(r"^/Date\(\d+\+0000\)/$")


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sandbox(clock):
    return XeroSandbox(clock)


class Switch:
    """One served WSGI endpoint whose app each test swaps in (a server per test costs ~0.5 s to stop)."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def served_switch():
    switch = Switch()
    with serve(switch) as served:
        served.switch = switch
        yield served


@pytest.fixture(scope="module")
def hook_switch():
    switch = Switch()
    with serve(switch) as served:
        served.switch = switch
        yield served


def mount(served, app):
    served.switch.app = app
    if isinstance(app, XeroSandbox):
        app.base_url = served.url
    return served


@pytest.fixture
def server(sandbox, served_switch):
    return mount(served_switch, sandbox)


@pytest.fixture
def tenant(sandbox):
    return sandbox.add_tenant("Demo Company (NZ)")


@pytest.fixture
def api(sandbox, server, tenant):
    """A requests session already holding a token and the tenant header, like a real client."""
    token = sandbox.issue_grant()["access_token"]
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "xero-tenant-id": tenant,
                            "Accept": "application/json"})
    session.base = server.url + API
    return session


def get(api, path, **kwargs):
    return api.get(api.base + path, **kwargs)


def token_request(server, sandbox, **form):
    return requests.post(f"{server.url}/connect/token", data=form,
                         auth=(sandbox.client_id, sandbox.client_secret))


# ---------------------------------------------------------------- OAuth and connections


def test_authorization_code_flow_issues_exactly_the_standard_token_keys(sandbox, server, tenant):
    authorize = requests.get(f"{server.url}/identity/connect/authorize", allow_redirects=False, params={
        "response_type": "code", "client_id": sandbox.client_id, "redirect_uri": "http://localhost/cb",
        "scope": "offline_access accounting.contacts", "state": "xyz"})
    assert authorize.status_code == 302
    callback = parse_qs(urlparse(authorize.headers["Location"]).query)
    assert callback["state"] == ["xyz"]

    token = token_request(server, sandbox, grant_type="authorization_code", code=callback["code"][0],
                          redirect_uri="http://localhost/cb")
    assert token.status_code == 200
    body = token.json()
    assert set(body) == {"access_token", "expires_in", "token_type", "refresh_token", "scope"}
    assert (body["expires_in"], body["token_type"]) == (1800, "Bearer")

    # the code is single-use
    again = token_request(server, sandbox, grant_type="authorization_code", code=callback["code"][0],
                          redirect_uri="http://localhost/cb")
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})

    connections = requests.get(f"{server.url}/connections",
                               headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert [c["tenantId"] for c in connections] == [tenant]
    connection = connections[0]
    assert set(connection) == {"id", "authEventId", "tenantId", "tenantType", "tenantName",
                               "createdDateUtc", "updatedDateUtc"}
    assert connection["tenantType"] == "ORGANISATION" and connection["tenantName"] == "Demo Company (NZ)"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", connection["createdDateUtc"])


def test_authorize_refuses_unknown_client(server):
    answer = requests.get(f"{server.url}/identity/connect/authorize", allow_redirects=False, params={
        "response_type": "code", "client_id": "nope", "redirect_uri": "http://localhost/cb", "scope": "openid"})
    assert answer.status_code == 400


def test_id_token_only_with_openid_scope(sandbox, tenant):
    assert "id_token" in sandbox.issue_grant(scope="openid offline_access accounting.contacts")
    assert "id_token" not in sandbox.issue_grant()


def test_refresh_rotates_and_the_old_token_works_only_within_grace(sandbox, server, clock, tenant):
    first = sandbox.issue_grant()["refresh_token"]
    rotated = token_request(server, sandbox, grant_type="refresh_token", refresh_token=first).json()
    assert rotated["refresh_token"] != first

    clock.advance(1700)  # a lost response is retried with the old token inside the 30-minute grace
    retry = token_request(server, sandbox, grant_type="refresh_token", refresh_token=first)
    assert retry.status_code == 200 and retry.json()["refresh_token"] == rotated["refresh_token"]

    clock.advance(200)
    late = token_request(server, sandbox, grant_type="refresh_token", refresh_token=first)
    assert (late.status_code, late.json()) == (400, {"error": "invalid_grant"})

    # client credentials in the form body (the Python SDK's style) work too
    newer = requests.post(f"{server.url}/connect/token", data={
        "grant_type": "refresh_token", "refresh_token": rotated["refresh_token"],
        "client_id": sandbox.client_id, "client_secret": sandbox.client_secret})
    assert newer.status_code == 200

    sandbox.revoke(newer.json()["refresh_token"])
    revoked = token_request(server, sandbox, grant_type="refresh_token", refresh_token=newer.json()["refresh_token"])
    assert revoked.json() == {"error": "invalid_grant"}
    unknown = token_request(server, sandbox, grant_type="refresh_token", refresh_token="made-up")
    assert unknown.status_code == 400


def test_expired_token_gets_problem_json_401_and_bad_tenant_403(sandbox, api, tenant):
    other = sandbox.add_tenant("Not connected")
    forbidden = api.get(api.base + "/Contacts", headers={"xero-tenant-id": other})
    assert forbidden.status_code == 403
    body = forbidden.json()
    assert (body["Title"], body["Status"], body["Detail"], body["Type"], body["Extensions"]) == (
        "Forbidden", 403, "AuthenticationUnsuccessful", None, {})
    missing = requests.get(api.base + "/Contacts", headers={"Authorization": api.headers["Authorization"]})
    assert missing.status_code == 403
    assert "X-MinLimit-Remaining" in missing.headers

    sandbox.expire_access_tokens()
    expired = get(api, "/Contacts")
    assert expired.status_code == 401
    body = expired.json()
    assert body["Title"] == "Unauthorized" and body["Status"] == 401
    assert re.fullmatch(r"TokenExpired: token expired at \d\d/\d\d/\d{4} \d\d:\d\d:\d\d", body["Detail"])
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}


def test_scope_without_transactions_cannot_read_invoices(sandbox, server, tenant):
    token = sandbox.issue_grant(scope="offline_access accounting.contacts.read")["access_token"]
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}
    assert requests.get(server.url + API + "/Contacts", headers=headers).status_code == 200
    refused = requests.get(server.url + API + "/Invoices", headers=headers)
    assert refused.status_code == 401 and refused.json()["Detail"] == "AuthorizationUnsuccessful"


def test_organisation_answers_its_settings_with_the_settings_scope_and_401_without(sandbox, server, tenant):
    # https://developer.xero.com/documentation/api/accounting/organisation; scope accounting.settings(.read).
    sydney = sandbox.add_tenant("Sydney Pty Ltd", base_currency="AUD", plan="PREMIUM", country="AU")
    token = sandbox.issue_grant(scope="offline_access accounting.settings.read")["access_token"]
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": sydney, "Accept": "application/json"}
    answer = requests.get(server.url + API + "/Organisation", headers=headers)
    assert answer.status_code == 200
    [organisation] = answer.json()["Organisations"]
    assert {k: organisation[k] for k in ("Name", "BaseCurrency", "CountryCode", "Class", "Edition", "Version",
                                         "OrganisationID", "OrganisationStatus", "IsDemoCompany")} == {
        "Name": "Sydney Pty Ltd", "BaseCurrency": "AUD", "CountryCode": "AU", "Class": "PREMIUM",
        "Edition": "BUSINESS", "Version": "AU", "OrganisationID": sydney, "OrganisationStatus": "ACTIVE",
        "IsDemoCompany": False}
    assert re.fullmatch(r"/Date\(\d+\)/", organisation["CreatedDateUTC"])  # as Xero's example: no offset
    assert requests.post(server.url + API + "/Organisation", headers=headers, json={}).status_code == 501

    # The default tenant: NZD, as every record in its base currency (CurrencyRate 1) assumes.
    headers["xero-tenant-id"] = tenant
    assert requests.get(server.url + API + "/Organisation", headers=headers).json()["Organisations"][0][
        "BaseCurrency"] == "NZD"
    older = sandbox.issue_grant(scope="offline_access accounting.contacts accounting.transactions")["access_token"]
    refused = requests.get(server.url + API + "/Organisation", headers={**headers, "Authorization": f"Bearer {older}"})
    assert refused.status_code == 401 and refused.json()["Detail"] == "AuthorizationUnsuccessful"


# ---------------------------------------------------------------- envelope, paging, filters


def test_envelope_dates_and_contact_shape(sandbox, api, tenant):
    sandbox.create_contact(tenant, Name="Müller & Söhne GmbH", EmailAddress="a@mueller.de",
                           Phones=[{"PhoneType": "MOBILE", "PhoneNumber": "123", "PhoneCountryCode": "49"}])
    answer = get(api, "/Contacts", params={"page": 1})
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Xero-Correlation-Id" in answer.headers
    assert '"\\/Date(' in answer.text  # slashes escaped on the wire, like Xero
    assert '"Outstanding":0.00' in answer.text  # money keeps two decimals
    body = answer.json()
    assert list(body)[:5] == ["Id", "Status", "ProviderName", "DateTimeUTC", "pagination"]
    assert body["Status"] == "OK" and body["ProviderName"] == "ml-connector sandbox"
    assert re.fullmatch(r"/Date\(\d+\)/", body["DateTimeUTC"])
    assert body["pagination"] == {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 1}
    contact = body["Contacts"][0]
    assert contact["Name"] == "Müller & Söhne GmbH"
    assert MS_DATE.match(contact["UpdatedDateUTC"])
    assert [a["AddressType"] for a in contact["Addresses"]] == ["STREET", "POBOX"]
    assert [p["PhoneType"] for p in contact["Phones"]] == ["DEFAULT", "DDI", "FAX", "MOBILE"]
    assert contact["Phones"][3]["PhoneNumber"] == "123" and contact["Phones"][0]["PhoneNumber"] == ""
    single = get(api, f"/Contacts/{contact['ContactID']}")
    assert single.json()["Contacts"][0]["ContactID"] == contact["ContactID"]
    missing = get(api, "/Contacts/00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, missing.text) == (404, "The resource you're looking for cannot be found")


def test_paging_and_ids_including_the_gateway_404(sandbox, api, tenant):
    ids = [sandbox.create_contact(tenant, Name=f"Contact {i:02d}")["ContactID"] for i in range(7)]
    page3 = get(api, "/Contacts", params={"page": 3, "pageSize": 3, "order": "Name ASC"}).json()
    assert page3["pagination"] == {"page": 3, "pageSize": 3, "pageCount": 3, "itemCount": 7}
    assert [c["Name"] for c in page3["Contacts"]] == ["Contact 06"]

    picked = get(api, "/Contacts", params={"IDs": f"{ids[1]},{ids[4]}"}).json()["Contacts"]
    assert {c["ContactID"] for c in picked} == {ids[1], ids[4]}

    padding = [f"00000000-0000-0000-0000-{i:012d}" for i in range(60)]
    assert get(api, "/Contacts", params={"IDs": ",".join(ids[:2] + padding[:50])}).status_code == 200
    too_many = get(api, "/Contacts", params={"IDs": ",".join(ids[:2] + padding[:51])})
    assert (too_many.status_code, too_many.text) == (404, "The resource you're looking for cannot be found")


def test_ids_filters_keep_creation_order_and_combine(sandbox, api, tenant):
    buyer, other = (sandbox.create_contact(tenant, Name=n)["ContactID"] for n in ("Buyer", "Other"))
    line = [{"Description": "x", "UnitAmount": 10}]
    first, second, third = (sandbox.create_invoice(tenant, c, line)["InvoiceID"] for c in (buyer, other, buyer))
    by_ids = get(api, "/Invoices", params={"IDs": f"{third},{first},{second}", "page": 1}).json()["Invoices"]
    assert [i["InvoiceID"] for i in by_ids] == [first, second, third]
    by_contact = get(api, "/Invoices", params={"ContactIDs": buyer.upper(), "page": 1}).json()["Invoices"]
    assert [i["InvoiceID"] for i in by_contact] == [first, third]
    both = get(api, "/Invoices", params={"ContactIDs": buyer, "IDs": f"{second},{third}", "page": 1}).json()
    assert [i["InvoiceID"] for i in both["Invoices"]] == [third]
    assert get(api, "/Contacts", params={"IDs": str(uuid.uuid4())}).json()["Contacts"] == []


def test_numbers_stay_unique_and_addressable_after_renumbering(sandbox, api, tenant):
    buyer = sandbox.create_contact(tenant, Name="Buyer", ContactNumber="C-7")["ContactID"]
    line = [{"Description": "x", "UnitAmount": 10}]
    invoice = sandbox.create_invoice(tenant, buyer, line, InvoiceNumber="A-1")["InvoiceID"]
    with pytest.raises(XeroValidationError, match="must be unique"):
        sandbox.create_invoice(tenant, buyer, line, InvoiceNumber="a-1")
    sandbox.update_invoice(tenant, invoice, InvoiceNumber="B-2")
    assert sandbox.create_invoice(tenant, buyer, line, InvoiceNumber="A-1")["InvoiceNumber"] == "A-1"
    assert get(api, "/Invoices/B-2").json()["Invoices"][0]["InvoiceID"] == invoice
    assert get(api, "/Invoices/b-2").status_code == 404
    assert get(api, "/Contacts/C-7").json()["Contacts"][0]["ContactID"] == buyer
    balances = get(api, f"/Contacts/{buyer}").json()["Contacts"][0]["Balances"]
    assert balances["AccountsReceivable"]["Outstanding"] == 23.0  # two invoices of 11.50 (15% tax)


def test_if_modified_since_is_strictly_after_to_the_second(sandbox, api, tenant, clock):
    sandbox.create_contact(tenant, Name="Old")  # at 09:00:00
    clock.advance(10.5)
    sandbox.create_contact(tenant, Name="New")  # at 09:00:10.5
    names = lambda since: [c["Name"] for c in get(api, "/Contacts", headers={"If-Modified-Since": since}).json()["Contacts"]]
    assert names("2026-01-05T09:00:05") == ["New"]
    assert names("2026-01-05T20:00:05+11:00") == ["New"]
    assert names("2026-01-05T09:00:05.123Z") == ["New"]
    assert names("Mon, 05 Jan 2026 09:00:05 GMT") == ["New"]
    assert names("2026-01-05T09:00:10.900") == []  # same second as the change: not after it
    assert names("2026-01-05T08:59:59") == ["Old", "New"]


def test_where_order_archive_and_search(sandbox, api, tenant):
    alpha = sandbox.create_contact(tenant, Name="Alpha Ltd", EmailAddress="x@alpha.com")
    sandbox.create_contact(tenant, Name="Beta Ltd")
    gone = sandbox.create_contact(tenant, Name="Gamma Ltd")
    sandbox.archive_contact(tenant, gone["ContactID"])
    sandbox.create_invoice(tenant, alpha["ContactID"], [{"Description": "x", "UnitAmount": 10}])

    listed = lambda **params: [c["Name"] for c in get(api, "/Contacts", params=params).json()["Contacts"]]
    assert listed(order="Name DESC") == ["Beta Ltd", "Alpha Ltd"]
    assert listed(includeArchived="true", order="Name ASC") == ["Alpha Ltd", "Beta Ltd", "Gamma Ltd"]
    assert listed(where='Name=="beta ltd"') == ["Beta Ltd"]
    assert listed(where="IsCustomer==true") == ["Alpha Ltd"]
    assert listed(where='ContactStatus=="ARCHIVED" && Name=="Gamma Ltd"', includeArchived="True") == ["Gamma Ltd"]
    assert listed(searchTerm="ALPHA.com") == ["Alpha Ltd"]
    assert "Balances" not in get(api, "/Contacts", params={"summaryOnly": "true"}).json()["Contacts"][0]


# ---------------------------------------------------------------- writes


def test_put_duplicate_name_fails_with_validation_exception_and_post_updates(sandbox, api, tenant):
    created = api.put(api.base + "/Contacts", json={"Contacts": [{"Name": "Acme", "EmailAddress": "a@acme.io"}]})
    assert created.status_code == 200
    contact_id = created.json()["Contacts"][0]["ContactID"]

    duplicate = api.put(api.base + "/Contacts", json={"Contacts": [{"Name": "Other"}, {"Name": "acme"}]})
    assert duplicate.status_code == 400
    error = duplicate.json()
    assert (error["ErrorNumber"], error["Type"]) == (10, "ValidationException")
    assert [e["Name"] for e in error["Elements"]] == ["acme"]
    assert "must be unique across all active contacts" in error["Elements"][0]["ValidationErrors"][0]["Message"]
    assert sandbox.contact(tenant, contact_id)["Name"] == "Acme"

    per_element = api.put(api.base + "/Contacts", params={"summarizeErrors": "false"},
                          json={"Contacts": [{"Name": "Fresh"}, {"Name": "Acme"}]})
    assert per_element.status_code == 200
    assert [c["StatusAttributeString"] for c in per_element.json()["Contacts"]] == ["OK", "ERROR"]

    updated = api.post(api.base + "/Contacts", json={"Contacts": [{"ContactID": contact_id, "FirstName": "Ada"}]})
    assert updated.status_code == 200
    contact = updated.json()["Contacts"][0]
    assert (contact["FirstName"], contact["EmailAddress"]) == ("Ada", "a@acme.io")  # omitted fields kept
    events = [(e["eventCategory"], e["eventType"]) for e in sandbox.pending_events()]
    assert events == [("CONTACT", "CREATE"), ("CONTACT", "CREATE"), ("CONTACT", "CREATE"), ("CONTACT", "UPDATE")]


def test_idempotency_key_replays_without_writing_again(sandbox, api, tenant):
    headers = {"Idempotency-Key": "create-acme-1"}
    first = api.put(api.base + "/Contacts", json={"Name": "Acme"}, headers=headers)
    second = api.put(api.base + "/Contacts", json={"Name": "Acme"}, headers=headers)
    assert second.status_code == first.status_code == 200
    assert second.json()["Contacts"][0]["ContactID"] == first.json()["Contacts"][0]["ContactID"]
    assert len(get(api, "/Contacts").json()["Contacts"]) == 1
    assert len(sandbox.pending_events()) == 1
    too_long = api.put(api.base + "/Contacts", json={"Name": "B"}, headers={"Idempotency-Key": "k" * 129})
    assert too_long.status_code == 400


def test_invoice_totals_follow_xero_arithmetic(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Buyer")
    exclusive = api.put(api.base + "/Invoices", json={"Invoices": [{
        "Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "Status": "AUTHORISED",
        "LineItems": [{"Description": "Widgets", "Quantity": 3, "UnitAmount": 19.99, "DiscountRate": 10,
                       "TaxType": "OUTPUT"},
                      {"Description": "Exempt", "Quantity": 1, "UnitAmount": 5, "TaxType": "NONE"}]}]})
    assert exclusive.status_code == 200, exclusive.text
    invoice = exclusive.json(parse_float=Decimal)["Invoices"][0]
    # 3 × 19.99 × 90% = 53.973 → 53.97; tax 15% = 8.0955 → 8.10 (half up)
    assert [line["LineAmount"] for line in invoice["LineItems"]] == [Decimal("53.97"), Decimal("5.00")]
    assert (invoice["SubTotal"], invoice["TotalTax"], invoice["Total"]) == (
        Decimal("58.97"), Decimal("8.10"), Decimal("67.07"))
    assert invoice["AmountDue"] == Decimal("67.07") and invoice["InvoiceNumber"] == "INV-0001"
    assert '"Quantity":3.0000' in exclusive.text

    inclusive = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "Gift", "UnitAmount": "115.00"}],
                                       LineAmountTypes="Inclusive")
    assert (inclusive["SubTotal"], inclusive["TotalTax"], inclusive["Total"]) == (
        Decimal("100.00"), Decimal("15.00"), Decimal("115.00"))
    no_tax = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}],
                                    LineAmountTypes="NoTax")
    assert (no_tax["TotalTax"], no_tax["Total"]) == (Decimal("0.00"), Decimal("10.00"))

    listed = get(api, "/Invoices", params={"page": 1, "where": 'Type=="ACCREC"', "order": "Total DESC"}).json()
    assert [i["Total"] for i in listed["Invoices"]] == [115.0, 67.07, 10.0]


def test_payments_partial_full_and_reversed(sandbox, api, tenant, clock):
    contact = sandbox.create_contact(tenant, Name="Payer")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 100}])
    sandbox.pending_events()  # drop nothing, just make sure reading does not consume
    events_before = len(sandbox.pending_events())
    clock.advance(60)

    def pay(amount):
        return api.put(api.base + "/Payments", json={"Payments": [{
            "Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Account": {"Code": "090"},
            "Amount": amount, "Date": "2026-01-05"}]})

    assert pay(40).status_code == 200
    partial = get(api, f"/Invoices/{invoice['InvoiceID']}").json(parse_float=Decimal)["Invoices"][0]
    assert (partial["AmountPaid"], partial["AmountDue"], partial["Status"]) == (Decimal("40.00"), Decimal("75.00"), "AUTHORISED")
    assert partial["UpdatedDateUTC"] != invoice["UpdatedDateUTC"]  # applying a payment bumps the invoice

    over = pay(75.01)
    assert over.status_code == 400
    assert over.json()["Elements"][0]["ValidationErrors"][0]["Message"] == (
        "Payment amount exceeds the amount outstanding on this document")

    final = pay(75).json()["Payments"][0]
    paid = sandbox.invoice(tenant, invoice["InvoiceID"])
    assert (paid["Status"], paid["AmountDue"]) == ("PAID", Decimal("0.00"))
    assert MS_DATE.match(paid["FullyPaidOnDate"])
    balances = sandbox.contact(tenant, contact["ContactID"])
    assert balances["Balances"]["AccountsReceivable"]["Outstanding"] == Decimal("0.00")
    assert balances["UpdatedDateUTC"] == contact["UpdatedDateUTC"]  # balances do not bump the contact
    assert len(sandbox.pending_events()) == events_before  # payments have no webhooks

    deleted = api.post(api.base + f"/Payments/{final['PaymentID']}", json={"Status": "DELETED"})
    assert deleted.status_code == 200 and deleted.json()["Payments"][0]["Status"] == "DELETED"
    reopened = sandbox.invoice(tenant, invoice["InvoiceID"])
    assert (reopened["Status"], reopened["AmountDue"]) == ("AUTHORISED", Decimal("75.00"))
    assert "FullyPaidOnDate" not in reopened
    assert sandbox.contact(tenant, contact["ContactID"])["Balances"]["AccountsReceivable"]["Outstanding"] == Decimal("75.00")
    listed = get(api, "/Payments", params={"where": 'Status=="DELETED"'}).json()["Payments"]
    assert [p["PaymentID"] for p in listed] == [final["PaymentID"]]


def test_credit_note_allocation_reduces_amount_due(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Credited")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 100}])
    credit = api.put(api.base + "/CreditNotes", json={"CreditNotes": [{
        "Type": "ACCRECCREDIT", "Status": "AUTHORISED", "Contact": {"ContactID": contact["ContactID"]},
        "LineItems": [{"Description": "refund", "UnitAmount": 20}]}]}).json()["CreditNotes"][0]
    assert credit["Total"] == 23.0 and credit["RemainingCredit"] == 23.0
    allocated = api.put(api.base + f"/CreditNotes/{credit['CreditNoteID']}/Allocations",
                        json={"Allocations": [{"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": 23,
                                               "Date": "2026-01-05"}]})
    assert allocated.status_code == 200, allocated.text
    after = sandbox.invoice(tenant, invoice["InvoiceID"])
    assert (after["AmountCredited"], after["AmountDue"]) == (Decimal("23.00"), Decimal("92.00"))
    assert sandbox.credit_note(tenant, credit["CreditNoteID"])["Status"] == "PAID"
    with pytest.raises(XeroValidationError):
        sandbox.allocate_credit_note(tenant, credit["CreditNoteID"], invoice["InvoiceID"], 1)
    creditnote_events = [e for e in sandbox.pending_events() if e["eventCategory"] == "CREDITNOTE"]
    assert creditnote_events[0]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}


def test_void_requires_no_payments(sandbox, tenant):
    contact = sandbox.create_contact(tenant, Name="V")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}])
    sandbox.add_payment(tenant, invoice["InvoiceID"], Decimal("1.00"))
    with pytest.raises(XeroValidationError, match="payment or credit note allocated"):
        sandbox.void_invoice(tenant, invoice["InvoiceID"])
    other = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}])
    assert sandbox.void_invoice(tenant, other["InvoiceID"])["Status"] == "VOIDED"



# ---------------------------------------------------------------- currencies, overpayments, prepayments


def test_foreign_documents_and_payments_carry_their_rate_and_balances_stay_unconverted(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Abroad")
    sandbox.set_day_rate(tenant, "USD", "0.6")

    def put_invoice(**fields):
        return api.put(api.base + "/Invoices", json={"Invoices": [{
            "Type": "ACCREC", "Status": "AUTHORISED", "Contact": {"ContactID": contact["ContactID"]},
            "LineAmountTypes": "NoTax", "LineItems": [{"Description": "x", "UnitAmount": 100}], **fields}]})

    named = put_invoice(CurrencyCode="USD", CurrencyRate=0.75).json()["Invoices"][0]
    assert (named["CurrencyCode"], named["CurrencyRate"]) == ("USD", 0.75)
    assert put_invoice(CurrencyCode="USD").json()["Invoices"][0]["CurrencyRate"] == 0.6  # the day rate
    home = put_invoice().json()["Invoices"][0]
    assert (home["CurrencyCode"], home["CurrencyRate"]) == ("NZD", 1.0)
    refused = put_invoice(CurrencyCode="GBP")
    assert refused.status_code == 400 and "No exchange rate" in refused.text

    paid = api.put(api.base + "/Payments", json={"Payments": [{
        "Invoice": {"InvoiceID": named["InvoiceID"]}, "Account": {"Code": "090"}, "Amount": 40,
        "CurrencyRate": 0.8}]}).json()["Payments"][0]
    assert (paid["Amount"], paid["CurrencyRate"], paid["BankAmount"]) == (40.0, 0.8, 50.0)  # 40 USD / 0.8
    embedded = sandbox.invoice(tenant, named["InvoiceID"])["Payments"][0]
    assert embedded["CurrencyRate"] == Decimal("0.800000")
    # Balances add each document's own amount: 60 + 100 USD and 100 NZD, "not converted to base currency".
    balances = sandbox.contact(tenant, contact["ContactID"])["Balances"]["AccountsReceivable"]
    assert balances["Outstanding"] == Decimal("260.00")


def test_a_paid_invoice_in_a_foreign_currency_cannot_change_its_rate(sandbox, tenant):
    contact = sandbox.create_contact(tenant, Name="Locked rate")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}],
                                     CurrencyCode="AUD", CurrencyRate="0.9")
    sandbox.add_payment(tenant, invoice["InvoiceID"], Decimal("1.00"))
    with pytest.raises(XeroValidationError, match="payment or credit note allocated"):
        sandbox.update_invoice(tenant, invoice["InvoiceID"], CurrencyRate="0.95")


def receive(api, contact_id, credit_type, amount, **fields):
    return api.put(api.base + "/BankTransactions", json={"BankTransactions": [{
        "Type": credit_type, "Contact": {"ContactID": contact_id}, "BankAccount": {"Code": "090"},
        "LineAmountTypes": "NoTax", "LineItems": [{"Description": "received", "UnitAmount": amount}], **fields}]})


def test_overpayments_and_prepayments_come_from_bank_transactions_and_allocate_to_invoices(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Prepaid")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 100}],
                                     LineAmountTypes="NoTax")
    created = receive(api, contact["ContactID"], "RECEIVE-OVERPAYMENT", 30)
    assert created.status_code == 200, created.text
    overpayment_id = created.json()["BankTransactions"][0]["OverpaymentID"]
    prepayment_id = receive(api, contact["ContactID"], "RECEIVE-PREPAYMENT", 50).json()["BankTransactions"][0][
        "PrepaymentID"]
    overpayment = get(api, f"/Overpayments/{overpayment_id}").json()["Overpayments"][0]
    assert (overpayment["Type"], overpayment["Status"], overpayment["Total"], overpayment["RemainingCredit"],
            overpayment["Contact"]["ContactID"]) == ("RECEIVE-OVERPAYMENT", "AUTHORISED", 30.0, 30.0,
                                                     contact["ContactID"])
    balances = sandbox.contact(tenant, contact["ContactID"])["Balances"]["AccountsReceivable"]
    assert balances["Outstanding"] == Decimal("20.00")  # 100 due - 30 - 50 unallocated credit

    allocated = api.put(api.base + f"/Overpayments/{overpayment_id}/Allocations", json={"Allocations": [
        {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": 30, "Date": "2026-01-05"}]})
    assert allocated.status_code == 200, allocated.text
    sandbox.allocate_credit(tenant, "Prepayment", prepayment_id, invoice["InvoiceID"], Decimal("20.00"))
    after = sandbox.invoice(tenant, invoice["InvoiceID"])
    assert (after["AmountCredited"], after["AmountDue"]) == (Decimal("50.00"), Decimal("50.00"))
    assert [o["AppliedAmount"] for o in after["Overpayments"]] == [Decimal("30.00")]
    assert [p["AppliedAmount"] for p in after["Prepayments"]] == [Decimal("20.00")]
    assert after["CreditNotes"] == []
    assert sandbox.overpayment(tenant, overpayment_id)["Status"] == "PAID"
    prepayment = sandbox.prepayment(tenant, prepayment_id)
    assert (prepayment["Status"], prepayment["RemainingCredit"]) == ("AUTHORISED", Decimal("30.00"))
    too_much = api.put(api.base + f"/Prepayments/{prepayment_id}/Allocations", json={"Allocations": [
        {"Invoice": {"InvoiceID": invoice["InvoiceID"]}, "Amount": 31}]})
    assert too_much.status_code == 400 and "remaining credit on the prepayment" in too_much.text
    # The outstanding amount is the same however the credit was spent.
    balances = sandbox.contact(tenant, contact["ContactID"])["Balances"]["AccountsReceivable"]
    assert balances["Outstanding"] == Decimal("20.00")
    assert not [e for e in sandbox.pending_events() if e["eventCategory"] not in ("CONTACT", "INVOICE")]


def test_credit_in_one_currency_does_not_allocate_to_an_invoice_in_another(sandbox, tenant):
    contact = sandbox.create_contact(tenant, Name="Two currencies")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}])
    credit = sandbox.receive_overpayment(tenant, contact["ContactID"], 5, CurrencyCode="USD", CurrencyRate="0.5")
    assert (credit["CurrencyCode"], credit["CurrencyRate"]) == ("USD", Decimal("0.500000"))
    with pytest.raises(XeroValidationError, match="same currency"):
        sandbox.allocate_credit(tenant, "Overpayment", credit["OverpaymentID"], invoice["InvoiceID"], 5)


def test_overpayments_list_with_if_modified_since_and_pages(sandbox, api, tenant, clock):
    contact = sandbox.create_contact(tenant, Name="Lists")
    first = sandbox.receive_prepayment(tenant, contact["ContactID"], 1)
    clock.advance(10)
    ids = [sandbox.receive_overpayment(tenant, contact["ContactID"], n)["OverpaymentID"] for n in (1, 2, 3)]
    assert [p["PrepaymentID"] for p in get(api, "/Prepayments").json()["Prepayments"]] == [first["PrepaymentID"]]
    since = {"If-Modified-Since": "2026-01-05T09:00:05"}
    assert get(api, "/Prepayments", headers=since).json()["Prepayments"] == []
    pages = [get(api, "/Overpayments", headers=since,
                 params={"page": n, "pageSize": 2, "order": "UpdatedDateUTC ASC"}).json() for n in (1, 2)]
    assert [o["OverpaymentID"] for page in pages for o in page["Overpayments"]] == ids
    assert pages[0]["pagination"]["itemCount"] == 3
    assert get(api, "/BankTransactions").status_code == 404  # only written, not listed, by the sandbox


# ---------------------------------------------------------------- rate limits


def test_minute_and_day_limits_answer_429_with_headers(clock, served_switch):
    sandbox = XeroSandbox(clock, minute_limit=3, day_limit=5, seed=1)
    tenant = sandbox.add_tenant("Limited")
    token = sandbox.issue_grant()["access_token"]
    server = mount(served_switch, sandbox)
    call = lambda: requests.get(server.url + API + "/Contacts",
                                headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant})
    answers = [call() for _ in range(3)]
    assert [a.headers["X-MinLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[-1].headers["X-AppMinLimit-Remaining"] == str(10000 - 3)
    limited = call()
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Problem"] == "minute"
    wait = int(limited.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert limited.headers["X-DayLimit-Remaining"] == "2"  # the rejected call did not count
    clock.advance(wait)
    assert call().status_code == 200
    assert call().status_code == 200
    day = call()
    assert (day.status_code, day.headers["X-Rate-Limit-Problem"]) == (429, "day")
    assert int(day.headers["Retry-After"]) <= 86400


def test_minute_windows_start_at_a_different_offset_per_tenant(clock, served_switch):
    sandbox = XeroSandbox(clock, minute_limit=1, seed=3)
    tenants = [sandbox.add_tenant("A"), sandbox.add_tenant("B")]
    token = sandbox.issue_grant()["access_token"]
    server = mount(served_switch, sandbox)
    waits = []
    for tenant in tenants:
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant}
        assert requests.get(server.url + API + "/Contacts", headers=headers).status_code == 200
        waits.append(requests.get(server.url + API + "/Contacts", headers=headers).headers["Retry-After"])
    assert waits[0] != waits[1]


def test_concurrent_calls_beyond_the_limit_get_429(served_switch):
    sandbox = XeroSandbox(Clock(), concurrent_limit=2)
    tenant = sandbox.add_tenant("Busy")
    token = sandbox.issue_grant()["access_token"]
    sandbox.latency = 0.3
    statuses, problems = [], []
    server = mount(served_switch, sandbox)

    def call():
        answer = requests.get(server.url + API + "/Contacts",
                              headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant})
        statuses.append(answer.status_code)
        problems.append((answer.headers.get("X-Rate-Limit-Problem"), answer.headers.get("Retry-After")))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    assert ("concurrent", "1") in problems
    accepted = [r for r in sandbox.calls(tenant=tenant) if r.status == 200]
    peak = max(sum(1 for o in accepted if o.started <= r.started < o.finished) for r in accepted)
    assert peak <= 2


# ---------------------------------------------------------------- webhooks


def receiver(key: str, *, always_200: bool = False, with_body: bool = False, fail: bool = False):
    """A tiny WSGI webhook receiver; records what it got."""
    seen: list[tuple[bytes, str]] = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        signature = environ.get("HTTP_X_XERO_SIGNATURE", "")
        seen.append((body, signature))
        expected = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        good = hmac.compare_digest(expected, signature)
        status = "500 Error" if fail else ("200 OK" if good or always_200 else "401 Unauthorized")
        start_response(status, [("Content-Length", "2" if with_body else "0")])
        return [b"ok" if with_body else b""]

    return app, seen


def test_webhook_delivery_is_signed_over_the_exact_bytes(sandbox, tenant, server, hook_switch):
    contact = sandbox.create_contact(tenant, Name="Hooked")
    sandbox.update_contact(tenant, contact["ContactID"], EmailAddress="x@hooked.io")
    app, seen = receiver(sandbox.webhook_key)
    hook = mount(hook_switch, app)
    assert sandbox.deliver_webhooks(hook.url + "/hook", bad_signature=True) == [401]
    assert len(sandbox.pending_events()) == 2  # kept for redelivery
    assert sandbox.deliver_webhooks(hook.url + "/hook", max_events_per_post=1) == [200, 200]
    assert sandbox.pending_events() == []
    body, signature = seen[1]
    expected = base64.b64encode(hmac.new(sandbox.webhook_key.encode(), body, hashlib.sha256).digest()).decode()
    assert signature == expected == sandbox.sign(body)
    payload = json.loads(body)
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    event = payload["events"][0]
    assert event["resourceUrl"] == f"{server.url}{API}/Contacts/{contact['ContactID']}"
    assert (event["eventCategory"], event["eventType"], event["tenantId"], event["tenantType"]) == (
        "CONTACT", "CREATE", tenant, "ORGANISATION")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", event["eventDateUtc"])
    assert payload["firstEventSequence"] == payload["lastEventSequence"] == 1


def test_failed_delivery_keeps_events(sandbox, tenant, hook_switch):
    sandbox.create_contact(tenant, Name="Retry me")
    app, _ = receiver(sandbox.webhook_key, fail=True)
    hook = mount(hook_switch, app)
    assert sandbox.deliver_webhooks(hook.url) == [500]
    assert len(sandbox.pending_events()) == 1


def test_intent_to_receive_grades_the_receiver(sandbox, hook_switch):
    correct, seen = receiver(sandbox.webhook_key)
    hook = mount(hook_switch, correct)
    result = sandbox.intent_to_receive(hook.url)
    assert result.ok, result.problems
    assert {p.correctly_signed for p in result.probes} == {True, False}
    assert b'"firstEventSequence": 0' in seen[0][0]  # Xero's non-canonical spacing

    lenient, _ = receiver(sandbox.webhook_key, always_200=True)
    hook = mount(hook_switch, lenient)
    result = sandbox.intent_to_receive(hook.url)
    assert not result.ok
    assert any("incorrectly signed payload not 401" in p for p in result.problems)

    chatty, _ = receiver(sandbox.webhook_key, with_body=True)
    hook = mount(hook_switch, chatty)
    assert not sandbox.intent_to_receive(hook.url).ok


# ---------------------------------------------------------------- seed


def test_seed_is_deterministic_and_realistic(clock):
    def build():
        sandbox = XeroSandbox(clock)
        tenant = sandbox.add_tenant("Seeded")
        ids = seed_demo_org(sandbox, tenant)
        invoices = seed_invoices(sandbox, tenant, ids)
        strip = lambda c: {k: v for k, v in c.items() if k not in ("ContactID",)}
        return [strip(sandbox.contact(tenant, i)) for i in ids], len(invoices)

    first, second = build(), build()
    assert first == second
    contacts, invoice_count = first
    names = {c["Name"] for c in contacts}
    assert {"Müller & Söhne GmbH", "株式会社さくら商事", "Ñandú Importaciones", "Café Ōtaki"} <= names
    assert sum(c["ContactStatus"] == "ARCHIVED" for c in contacts) >= 2
    assert len({c["Addresses"][0]["Country"] for c in contacts}) >= 5
    persons = [p for c in contacts for p in c["ContactPersons"]]
    assert any(p["FirstName"] and not p["EmailAddress"] for p in persons)
    assert any(p["EmailAddress"] and not p["FirstName"] for p in persons)
    assert invoice_count > 0


def test_large_org_seed_spreads_invoices_of_one_to_five_lines_over_active_contacts(sandbox, tenant):
    contact_ids, invoice_ids = seed_large_org(sandbox, tenant, contacts=60, invoices=400)
    assert len(set(contact_ids)) == 60 and len(set(invoice_ids)) == 400
    invoices = sandbox.invoices(tenant)
    archived = {c["ContactID"] for c in sandbox.contacts(tenant) if c["ContactStatus"] == "ARCHIVED"}
    assert archived and not archived & {i["Contact"]["ContactID"] for i in invoices}
    assert {len(i["LineItems"]) for i in invoices} == {1, 2, 3, 4, 5}
    assert {i["Status"] for i in invoices} == {"AUTHORISED", "DRAFT"}
    assert len({i["Reference"] for i in invoices}) == 400


def test_invoice_lists_carry_line_items_only_when_paged(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Lines")
    invoice = sandbox.create_invoice(tenant, contact["ContactID"], [{"Description": "x", "UnitAmount": 10}])
    unpaged = get(api, "/Invoices", params={"IDs": invoice["InvoiceID"]}).json()
    assert "pagination" not in unpaged and "LineItems" not in unpaged["Invoices"][0]
    paged = get(api, "/Invoices", params={"IDs": invoice["InvoiceID"], "page": 1}).json()
    assert len(paged["Invoices"][0]["LineItems"]) == 1
    by_contact = get(api, "/Invoices", params={"where": f'Contact.ContactID==Guid("{contact["ContactID"]}")'})
    assert [i["InvoiceID"] for i in by_contact.json()["Invoices"]] == [invoice["InvoiceID"]]


def test_fast_json_writes_exactly_what_the_exact_encoder_writes(sandbox, tenant):
    from connector.sandbox.xero import _to_json_exact, to_json

    buyer = sandbox.create_contact(tenant, Name="Buyer", ContactNumber="/Date(1)/")["ContactID"]
    invoice = sandbox.create_invoice(tenant, buyer, [
        {"Description": "Widgets", "Quantity": 3, "UnitAmount": "19.99", "DiscountRate": 10},
        {"Description": 'say "/Date(5)/" and \\"/Date(6)/', "UnitAmount": "0.10"}], Reference="\x000\x00")
    tricky = [
        sandbox.contact(tenant, buyer), invoice,
        {"a": Decimal("40.00"), "b": ["\x000\x00", Decimal("1E+2"), Decimal("-0.5")], "/Date(1)/": "/Date(1)/"},
        {"x": "\x001\x00", "y": Decimal("2.50")}, {"x": Decimal("2.50"), "y": "\x000\x00"},
        {"name": "Café /Date(3)/", "when": "/Date(3+0000)/", "n": None, "t": True, "f": 1.5, "i": 7},
        [], {}, "/Date(9)/", Decimal("3.0000"),
    ]
    for value in tricky:
        assert to_json(value) == _to_json_exact(value), value
    assert '"UnitAmount":19.99' in to_json(invoice) and '"\\/Date(' in to_json(invoice)


def test_a_clock_swapped_on_the_sandbox_keeps_time_for_every_part_of_it(sandbox, clock):
    """Tests move a served sandbox onto another clock (e.g. a backfill test's day): records, tokens and
    limits all keep time by the clock the sandbox has now, not the one it was built with."""
    tenant = sandbox.add_tenant("Clockwork Ltd")
    later = ManualClock(clock.time() + 10 * 86400)
    sandbox.clock = later
    contact = sandbox.create_contact(tenant, Name="Swapped")
    assert contact["UpdatedDateUTC"] == f"/Date({int(later.time() * 1000)}+0000)/"
    assert all(part.clock is later for part in (sandbox.identity, sandbox.limits, sandbox.webhooks, sandbox.books))


def test_refunds_of_a_credit_note_an_overpayment_and_a_prepayment_are_payments_naming_them(sandbox, api, tenant):
    contact = sandbox.create_contact(tenant, Name="Refunded")
    credit = api.put(api.base + "/CreditNotes", json={"CreditNotes": [{
        "Type": "ACCRECCREDIT", "Status": "AUTHORISED", "Contact": {"ContactID": contact["ContactID"]},
        "LineAmountTypes": "NoTax", "LineItems": [{"Description": "returned", "UnitAmount": 40}]}]}).json()["CreditNotes"][0]
    refunded = api.put(api.base + "/Payments", json={"Payments": [{
        "CreditNote": {"CreditNoteID": credit["CreditNoteID"]}, "Account": {"Code": "090"}, "Date": "2026-01-06",
        "Amount": 15, "Reference": "REF-1"}]})
    assert refunded.status_code == 200, refunded.text
    refund = refunded.json()["Payments"][0]
    assert (refund["PaymentType"], refund["Amount"], refund["Reference"], refund["Status"]) == (
        "ARCREDITPAYMENT", 15.0, "REF-1", "AUTHORISED")
    assert refund["CreditNote"]["CreditNoteID"] == credit["CreditNoteID"] and "Invoice" not in refund
    assert refund["CreditNote"]["Contact"]["ContactID"] == contact["ContactID"]
    note = sandbox.credit_note(tenant, credit["CreditNoteID"])
    assert (note["RemainingCredit"], [p["PaymentID"] for p in note["Payments"]]) == (
        Decimal("25.00"), [refund["PaymentID"]])
    too_much = api.put(api.base + "/Payments", json={"Payments": [{
        "CreditNote": {"CreditNoteID": credit["CreditNoteID"]}, "Account": {"Code": "090"}, "Amount": 26}]})
    assert too_much.status_code == 400 and "exceeds the amount outstanding" in too_much.text
    rest = sandbox.refund(tenant, "CreditNote", credit["CreditNoteID"], Decimal("25.00"))
    assert sandbox.credit_note(tenant, credit["CreditNoteID"])["Status"] == "PAID"
    # A refund reversed (deleted) gives the credit back.
    sandbox.reverse_payment(tenant, rest["PaymentID"])
    note = sandbox.credit_note(tenant, credit["CreditNoteID"])
    assert (note["Status"], note["RemainingCredit"]) == ("AUTHORISED", Decimal("25.00"))
    assert get(api, f"/Payments/{rest['PaymentID']}").json()["Payments"][0]["Status"] == "DELETED"

    overpayment_id = receive(api, contact["ContactID"], "RECEIVE-OVERPAYMENT", 30).json()["BankTransactions"][0][
        "OverpaymentID"]
    prepayment_id = receive(api, contact["ContactID"], "RECEIVE-PREPAYMENT", 50).json()["BankTransactions"][0][
        "PrepaymentID"]
    over = sandbox.refund(tenant, "Overpayment", overpayment_id, Decimal("30.00"))
    pre = sandbox.refund(tenant, "Prepayment", prepayment_id, Decimal("10.00"))
    assert (over["PaymentType"], over["Overpayment"]["OverpaymentID"]) == ("AROVERPAYMENTPAYMENT", overpayment_id)
    assert (pre["PaymentType"], pre["Prepayment"]["PrepaymentID"]) == ("ARPREPAYMENTPAYMENT", prepayment_id)
    assert sandbox.overpayment(tenant, overpayment_id)["Status"] == "PAID"
    prepayment = get(api, f"/Prepayments/{prepayment_id}").json()["Prepayments"][0]
    assert (prepayment["RemainingCredit"], [p["PaymentID"] for p in prepayment["Payments"]]) == (40.0, [pre["PaymentID"]])
    listed = {p["PaymentID"]: p["PaymentType"] for p in get(api, "/Payments").json()["Payments"]}
    assert listed[over["PaymentID"]] == "AROVERPAYMENTPAYMENT" and listed[refund["PaymentID"]] == "ARCREDITPAYMENT"
