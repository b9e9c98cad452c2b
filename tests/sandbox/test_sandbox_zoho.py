"""The Zoho CRM simulator, exercised over real HTTP the way the connector will call it."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connector.clock import ManualClock
from connector.sandbox.common import serve
from connector.sandbox.zoho import ZohoSandbox
from workers.embedded import wait_until

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    return ManualClock(START)


class Switchboard:
    """One server for the whole module (each shutdown waits a poll interval); tests plug in a fresh sandbox."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)

    def plug(self, sandbox: ZohoSandbox) -> ZohoSandbox:
        self.app = sandbox
        sandbox.base_url = self.url
        return sandbox


@pytest.fixture(scope="module")
def switchboard():
    board = Switchboard()
    with serve(board) as served:
        board.url = served.url
        yield board


@pytest.fixture
def make_zoho(switchboard, clock):
    return lambda **options: switchboard.plug(ZohoSandbox(clock, **options))


@pytest.fixture
def zoho(make_zoho):
    return make_zoho()


def token_for(zoho: ZohoSandbox, refresh_token: str | None = None) -> str:
    refresh_token = refresh_token or zoho.issue_refresh_token()
    answer = requests.post(f"{zoho.base_url}/oauth/v2/token", data={
        "grant_type": "refresh_token", "client_id": "sandbox-zoho-client",
        "client_secret": "sandbox-zoho-secret", "refresh_token": refresh_token}).json()
    return answer["access_token"]


class Api:
    """requests with the Zoho auth header and base URL filled in."""

    def __init__(self, zoho: ZohoSandbox, token: str | None = None) -> None:
        self.base = f"{zoho.base_url}/crm/v8"
        self.headers = {"Authorization": f"Zoho-oauthtoken {token or token_for(zoho)}"}

    def __getattr__(self, method):
        def call(path, **kw):
            return requests.request(method.upper(), self.base + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)
        return call


@pytest.fixture
def api(zoho):
    return Api(zoho)


def add(api: Api, module: str, *records: dict) -> list[str]:
    answer = api.post(f"/{module}", json={"data": list(records), "trigger": []})
    assert answer.status_code == 201, answer.text
    return [item["details"]["id"] for item in answer.json()["data"]]


# ------------------------------------------------------------------ OAuth


def test_code_grant_redirects_with_dc_then_exchanges_once(zoho):
    consent = requests.get(f"{zoho.base_url}/oauth/v2/auth", allow_redirects=False, params={
        "response_type": "code", "client_id": "sandbox-zoho-client", "scope": "ZohoCRM.modules.ALL",
        "redirect_uri": "http://app.example/cb", "access_type": "offline", "state": "s1"})
    assert consent.status_code == 302
    location = urlsplit(consent.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert location.netloc == "app.example"
    assert query["location"] == "us" and query["accounts-server"] == zoho.base_url and query["state"] == "s1"

    form = {"grant_type": "authorization_code", "client_id": "sandbox-zoho-client",
            "client_secret": "sandbox-zoho-secret", "redirect_uri": "http://app.example/cb", "code": query["code"]}
    tokens = requests.post(f"{zoho.base_url}/oauth/v2/token", data=form).json()
    assert tokens["api_domain"] == zoho.base_url
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_token"] and tokens["scope"] == "ZohoCRM.modules.ALL"

    reused = requests.post(f"{zoho.base_url}/oauth/v2/token", data=form)
    assert (reused.status_code, reused.json()) == (200, {"error": "invalid_code"})

    # params in the query string work too, and the refresh grant returns no new refresh token
    refreshed = requests.post(f"{zoho.base_url}/oauth/v2/token", params={
        "grant_type": "refresh_token", "client_id": "sandbox-zoho-client",
        "client_secret": "sandbox-zoho-secret", "refresh_token": tokens["refresh_token"]}).json()
    assert refreshed["access_token"] != tokens["access_token"] and "refresh_token" not in refreshed
    assert zoho.token_requests() == 3


def test_token_errors_are_http_200(zoho):
    refresh = zoho.issue_refresh_token()
    url = f"{zoho.base_url}/oauth/v2/token"
    wrong_secret = requests.post(url, data={"grant_type": "refresh_token", "client_id": "sandbox-zoho-client",
                                            "client_secret": "nope", "refresh_token": refresh})
    assert (wrong_secret.status_code, wrong_secret.json()) == (200, {"error": "invalid_client"})
    zoho.revoke(refresh)
    revoked = requests.post(url, data={"grant_type": "refresh_token", "client_id": "sandbox-zoho-client",
                                       "client_secret": "sandbox-zoho-secret", "refresh_token": refresh})
    assert (revoked.status_code, revoked.json()) == (200, {"error": "invalid_code"})


def test_ten_token_requests_per_ten_minutes_then_access_denied(zoho, clock):
    refresh = zoho.issue_refresh_token()
    for _ in range(10):
        token_for(zoho, refresh)
    eleventh = requests.post(f"{zoho.base_url}/oauth/v2/token", data={
        "grant_type": "refresh_token", "client_id": "sandbox-zoho-client",
        "client_secret": "sandbox-zoho-secret", "refresh_token": refresh})
    assert eleventh.status_code == 200
    assert eleventh.json() == {"error_description": "You have made too many requests continuously. "
                               "Please try again after some time.", "error": "Access Denied", "status": "failure"}
    clock.advance(601)
    assert token_for(zoho, refresh)


def test_sixteenth_access_token_evicts_the_oldest(zoho, clock):
    refresh = zoho.issue_refresh_token()
    tokens = []
    for n in range(16):
        if n == 10:
            clock.advance(601)  # stay under the 10-per-10-minutes throttle
        tokens.append(token_for(zoho, refresh))
    assert Api(zoho, tokens[0]).get("/settings/modules").status_code == 401
    assert Api(zoho, tokens[1]).get("/settings/modules").status_code == 200


def test_invalid_token_shape_and_expiry(zoho, clock):
    token = token_for(zoho)
    assert requests.get(f"{zoho.base_url}/crm/v8/settings/modules",
                        headers={"Authorization": f"Bearer {token}"}).status_code == 200
    missing = requests.get(f"{zoho.base_url}/crm/v8/Contacts?fields=Email")
    assert missing.status_code == 401
    assert missing.json() == {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}
    clock.advance(3601)
    assert Api(zoho, token).get("/settings/modules").status_code == 401
    fresh = token_for(zoho)
    zoho.expire_access_tokens()
    assert Api(zoho, fresh).get("/settings/modules").json()["code"] == "INVALID_TOKEN"


def test_scope_and_url_errors(zoho):
    reader = Api(zoho, token_for(zoho, zoho.issue_refresh_token("ZohoCRM.settings.ALL")))
    assert reader.get("/settings/modules").status_code == 200
    assert reader.get("/Contacts?fields=Email").json()["code"] == "OAUTH_SCOPE_MISMATCH"
    api = Api(zoho)
    assert api.get("/Leads?fields=Email").json()["code"] == "INVALID_MODULE"
    wrong = api.get("/Contacts/1/2/3")
    assert (wrong.status_code, wrong.json()["code"]) == (404, "INVALID_URL_PATTERN")


# ------------------------------------------------------------------ records


def test_upsert_by_unique_custom_field_inserts_then_updates(api, zoho):
    body = {"data": [{"Account_Name": "Acme", "Xero_Contact_ID": "x-1"}],
            "duplicate_check_fields": ["Xero_Contact_ID"], "trigger": []}
    first = api.post("/Accounts/upsert", json=body)
    assert first.status_code == 201
    created = first.json()["data"][0]
    assert (created["action"], created["duplicate_field"], created["message"]) == ("insert", None, "record added")
    record_id = created["details"]["id"]
    assert record_id.isdigit() and 18 <= len(record_id) <= 19

    body["data"][0]["Account_Name"] = "Acme Ltd"
    second = api.post("/Accounts/upsert", json=body).json()["data"][0]
    assert (second["action"], second["duplicate_field"], second["message"]) == ("update", "Xero_Contact_ID", "record updated")
    assert second["details"]["id"] == record_id
    assert [r["Account_Name"] for r in zoho.records("Accounts")] == ["Acme Ltd"]
    assert zoho.writes("Accounts")[-1] == {"module": "Accounts", "op": "upsert", "count": 1, "trigger": []}


def test_upsert_by_system_field_and_rejects_non_unique_check_field(api, zoho):
    add(api, "Contacts", {"Last_Name": "Lovelace", "Email": "ada@example.com"})
    updated = api.post("/Contacts/upsert", json={"data": [{"Last_Name": "King", "Email": "ADA@example.com"}]})
    item = updated.json()["data"][0]
    assert (item["action"], item["duplicate_field"]) == ("update", "Email")
    assert zoho.records("Contacts")[0]["Full_Name"] == "King"
    assert zoho.writes("Contacts")[-1]["trigger"] is None  # trigger omitted: workflows would run

    bad = api.post("/Contacts/upsert", json={"data": [{"Last_Name": "X"}], "duplicate_check_fields": ["Last_Name"]})
    assert bad.status_code == 400
    assert bad.json()["data"][0]["code"] == "INVALID_DATA"
    assert bad.json()["data"][0]["details"]["api_name"] == "Last_Name"


def test_upsert_matching_and_unique_checks_follow_changed_and_deleted_values(api, zoho):
    first, second = add(api, "Accounts", {"Account_Name": "Twin", "Xero_Contact_ID": "x-1"},
                        {"Account_Name": "twin", "Xero_Contact_ID": "x-2"})
    # several records share the system field: the oldest is the one matched
    matched = api.post("/Accounts/upsert", json={"data": [{"Account_Name": "TWIN", "Phone": "1"}]}).json()["data"][0]
    assert (matched["action"], matched["details"]["id"]) == ("update", first)

    assert api.put(f"/Accounts/{first}", json={"data": [{"Xero_Contact_ID": "x-9"}]}).status_code == 200
    taken = api.post("/Accounts", json={"data": [{"Account_Name": "New", "Xero_Contact_ID": "X-9"}]}).json()
    assert taken["data"][0]["code"] == "DUPLICATE_DATA"
    freed = api.post("/Accounts/upsert", json={"data": [{"Account_Name": "Again", "Xero_Contact_ID": "x-1"}],
                                               "duplicate_check_fields": ["Xero_Contact_ID"]}).json()["data"][0]
    assert freed["action"] == "insert"

    assert api.delete("/Accounts", params={"ids": second}).status_code == 200
    reused = api.post("/Accounts", json={"data": [{"Account_Name": "Later", "Xero_Contact_ID": "x-2"}]})
    assert reused.status_code == 201, reused.text
    listed = api.get("/Accounts", params={"fields": "Xero_Contact_ID", "ids": f"{second},{first}"}).json()
    assert [r["id"] for r in listed["data"]] == [first]


def test_mixed_batch_answers_207_with_errors_in_input_order(api):
    add(api, "Accounts", {"Account_Name": "Taken", "Xero_Contact_ID": "dup"})
    answer = api.post("/Accounts", json={"data": [
        {"Account_Name": "Fine"},
        {"Phone": "123"},
        {"Account_Name": "Clash", "Xero_Contact_ID": "DUP"},
        {"Account_Name": "x" * 201},
    ]})
    assert answer.status_code == 207
    items = answer.json()["data"]
    assert items[0]["code"] == "SUCCESS" and set(items[0]["details"]) == {
        "Modified_Time", "Modified_By", "Created_Time", "id", "Created_By"}
    assert items[1] == {"code": "MANDATORY_NOT_FOUND", "status": "error", "message": "required field not found",
                        "details": {"api_name": "Account_Name", "json_path": "$.data[1].Account_Name"}}
    assert (items[2]["code"], items[2]["details"]["api_name"]) == ("DUPLICATE_DATA", "Xero_Contact_ID")
    assert (items[3]["code"], items[3]["details"]["maximum_length"]) == ("INVALID_DATA", 200)
    assert items[0]["details"]["Created_Time"] == "2026-01-05T09:00:00+00:00"

    all_bad = api.post("/Accounts", json={"data": [{"Phone": "1"}]})
    assert all_bad.status_code == 400


def test_more_than_100_records_is_refused(api, zoho):
    answer = api.post("/Products", json={"data": [{"Product_Name": f"P{n}"} for n in range(101)]})
    assert answer.status_code == 400
    assert answer.json()["code"] == "LIMIT_EXCEEDED" and answer.json()["status"] == "error"
    assert zoho.records("Products") == []


def test_lookups_must_exist_and_come_back_with_names(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [contact] = add(api, "Contacts", {"Last_Name": "Doe", "First_Name": "Jo", "Account_Name": {"id": account}})
    got = api.get(f"/Contacts/{contact}").json()["data"][0]
    assert got["Account_Name"] == {"id": account, "name": "Acme"}
    assert got["Created_By"] == got["Modified_By"] and set(got["Created_By"]) == {"id", "name"}
    broken = api.post("/Contacts", json={"data": [{"Last_Name": "X", "Account_Name": {"id": "999999999999999999"}}]})
    assert broken.json()["data"][0]["details"]["api_name"] == "Account_Name"
    assert broken.json()["data"][0]["code"] == "INVALID_DATA"


def test_update_by_id_and_bulk_update_need_ids(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    one = api.put(f"/Accounts/{account}", json={"data": [{"Phone": "555"}]})
    assert one.status_code == 200 and one.json()["data"][0]["message"] == "record updated"
    many = api.put("/Accounts", json={"data": [{"id": account, "Website": "https://acme.example"}, {"Phone": "1"}]})
    assert many.status_code == 207
    assert many.json()["data"][1]["code"] == "MANDATORY_NOT_FOUND"
    assert zoho.record("Accounts", account)["Phone"] == "555"


def test_list_reads_need_fields_and_follow_zoho_paging(api, zoho, clock):
    missing = api.get("/Accounts")
    assert (missing.status_code, missing.json()["code"]) == (400, "REQUIRED_PARAM_MISSING")
    assert api.get("/Accounts?fields=Account_Name").status_code == 204
    ids = []
    for n in range(3):
        ids += add(api, "Accounts", {"Account_Name": f"A{n}", "Phone": "1"})
        clock.advance(10)
    page = api.get("/Accounts", params={"fields": "Account_Name", "per_page": 2, "sort_by": "Created_Time",
                                        "sort_order": "asc"}).json()
    assert [r["Account_Name"] for r in page["data"]] == ["A0", "A1"]
    assert set(page["data"][0]) == {"id", "Account_Name"}
    assert page["info"]["more_records"] is True and page["info"]["count"] == 2
    assert api.get("/Accounts", params={"fields": "Account_Name", "ids": ids[2]}).json()["data"][0]["id"] == ids[2]
    assert api.get("/Accounts?fields=Account_Name&per_page=201").status_code == 400

    since = {"If-Modified-Since": "2026-01-05T09:00:15+00:00"}
    assert [r["Account_Name"] for r in api.get("/Accounts?fields=Account_Name", headers=since).json()["data"]] == ["A2"]
    assert api.get("/Accounts?fields=Account_Name", headers={"If-Modified-Since": "2026-01-05T10:00:00+00:00"}).status_code == 304
    assert api.get("/Accounts/4876876000099999999").status_code == 204


def test_invoice_totals_to_the_cent(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [widget, gadget] = add(api, "Products", {"Product_Name": "Widget", "Unit_Price": 9.99}, {"Product_Name": "Gadget"})
    answer = api.post("/Invoices", json={"data": [{
        "Subject": "INV-0001", "Account_Name": {"id": account}, "Status": "Created", "Discount": 1.5,
        "Adjustment": "0.10", "Invoiced_Items": [
            {"Product_Name": {"id": widget}, "Quantity": 3, "Discount": 0.97, "Tax": 2.90},
            {"Product_Name": {"id": gadget}, "Quantity": 0.5, "List_Price": "20.05", "Tax": "3.75"},
        ]}]})
    assert answer.status_code == 201, answer.text
    invoice_id = answer.json()["data"][0]["details"]["id"]
    raw = api.get(f"/Invoices/{invoice_id}").content
    invoice = json.loads(raw, parse_float=Decimal)["data"][0]
    first, second = invoice["Invoiced_Items"]
    assert (first["Total"], first["Total_After_Discount"], first["Net_Total"]) == (
        Decimal("29.97"), Decimal("29.00"), Decimal("31.90"))
    assert first["Product_Name"] == {"id": widget, "name": "Widget"} and first["List_Price"] == Decimal("9.99")
    assert second["Total"] == Decimal("10.03")  # 0.5 x 20.05 = 10.025, half-up (half-even would give 10.02)
    assert invoice["Sub_Total"] == Decimal("39.03")
    assert invoice["Tax"] == Decimal("6.65")
    assert invoice["Grand_Total"] == Decimal("44.28")  # 39.03 - 1.50 + 6.65 + 0.10

    # editing one line by id keeps the other; a line with _delete goes away
    api.put(f"/Invoices/{invoice_id}", json={"data": [{"Invoiced_Items": [
        {"id": first["id"], "Quantity": 1}, {"id": second["id"], "_delete": None}]}]})
    assert zoho.record("Invoices", invoice_id)["Grand_Total"] == 10.52  # 9.02 - 1.50 + 2.90 + 0.10


def test_invoice_validation(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [product] = add(api, "Products", {"Product_Name": "Widget"})
    base = {"Subject": "S", "Account_Name": {"id": account}, "Invoiced_Items": [{"Product_Name": {"id": product}}]}
    answer = api.post("/Invoices", json={"data": [
        {**base, "Status": "Overdue"},
        {**base, "Invoiced_Items": [{"Quantity": 1}]},
        {k: v for k, v in base.items() if k != "Invoiced_Items"},
        {**base, "Invoiced_Items": [{"Product_Name": {"id": account}}]},
        {**base, "Status": "Partially Paid", "Xero_Amount_Due": "12.345"},
    ]}).json()["data"]
    assert [(i["code"], i["details"].get("api_name")) for i in answer] == [
        ("INVALID_DATA", "Status"), ("MANDATORY_NOT_FOUND", "Product_Name"),
        ("MANDATORY_NOT_FOUND", "Invoiced_Items"), ("INVALID_DATA", "Product_Name"), ("SUCCESS", None)]
    assert answer[1]["details"]["json_path"] == "$.data[1].Invoiced_Items[0].Product_Name"
    assert zoho.record("Invoices", answer[4]["details"]["id"])["Xero_Amount_Due"] == 12.35


# ------------------------------------------------------------------ metadata and editions


def test_metadata_lists_custom_fields(api):
    modules = api.get("/settings/modules").json()["modules"]
    assert {m["api_name"] for m in modules} == {"Accounts", "Contacts", "Products", "Invoices", "Deals",
                                                "Sales_Orders", "Notes", "Quotes"}
    assert all(m["api_supported"] and m["id"].isdigit() for m in modules)
    fields = {f["api_name"]: f for f in api.get("/settings/fields?module=Invoices").json()["fields"]}
    assert fields["Xero_Invoice_ID"]["unique"] == {"casesensitive": "false"}
    assert fields["Xero_Invoice_ID"]["custom_field"] and fields["Xero_Invoice_ID"]["length"] == 255
    assert fields["Xero_Amount_Due"]["data_type"] == "currency" and fields["Xero_Url"]["data_type"] == "website"
    assert fields["Subject"]["system_mandatory"] and not fields["Subject"]["custom_field"]
    assert fields["Account_Name"]["lookup"]["module"]["api_name"] == "Accounts"
    assert "Paid" in [v["actual_value"] for v in fields["Status"]["pick_list_values"]]
    assert api.get("/settings/fields").json()["code"] == "REQUIRED_PARAM_MISSING"


def test_without_xero_fields_they_are_absent_and_rejected(make_zoho):
    zoho = make_zoho(xero_fields=False)
    api = Api(zoho)
    names = {f["api_name"] for f in api.get("/settings/fields?module=Accounts").json()["fields"]}
    assert "Account_Name" in names and "Xero_Contact_ID" not in names
    item = api.post("/Accounts", json={"data": [{"Account_Name": "A", "Xero_Contact_ID": "x"}]}).json()["data"][0]
    assert (item["code"], item["details"]["api_name"]) == ("INVALID_DATA", "Xero_Contact_ID")


def test_standard_edition_has_no_invoices(make_zoho):
    zoho = make_zoho(edition="standard")
    api = Api(zoho)
    assert "Invoices" not in {m["api_name"] for m in api.get("/settings/modules").json()["modules"]}
    answer = api.post("/Invoices", json={"data": [{"Subject": "S"}]})
    assert answer.status_code == 400
    assert answer.json() == {"code": "INVALID_MODULE", "details": {},
                             "message": "The module name given seems to be invalid", "status": "error"}


# ------------------------------------------------------------------ notification channels


def watch_item(channel_id="1000000068001", **extra) -> dict:
    return {"channel_id": channel_id, "events": ["Contacts.all"], "notify_url": "http://receiver.invalid/cb?tenant=42",
            "token": "t" * 50, **extra}


def test_channel_expiry_defaults_and_limits(api, zoho):
    missing = api.post("/actions/watch", json={"watch": [watch_item()]})
    assert missing.status_code == 201
    event = missing.json()["watch"][0]["details"]["events"][0]
    assert missing.json()["watch"][0]["message"] == "Successfully subscribed for actions-watch of the given module"
    assert event["channel_expiry"] == "2026-01-05T10:00:00+00:00" and event["resource_name"] == "Contacts"

    too_far = api.post("/actions/watch", json={"watch": [watch_item("2", channel_expiry="2026-01-13T09:00:00+00:00")]})
    assert too_far.json()["watch"][0]["details"]["events"][0]["channel_expiry"] == "2026-01-05T10:00:00+00:00"
    six_days = api.post("/actions/watch", json={"watch": [watch_item("3", channel_expiry="2026-01-11T09:00:00+00:00")]})
    assert six_days.json()["watch"][0]["details"]["events"][0]["channel_expiry"] == "2026-01-11T09:00:00+00:00"

    fraction = api.post("/actions/watch", json={"watch": [watch_item("4", channel_expiry="2026-01-06T09:00:00.123+00:00")]})
    assert fraction.status_code == 400
    assert (fraction.json()["watch"][0]["code"], fraction.json()["watch"][0]["details"]["api_name"]) == (
        "INVALID_DATA", "channel_expiry")
    long_token = api.post("/actions/watch", json={"watch": [watch_item("5", token="t" * 51)]})
    assert long_token.json()["watch"][0]["details"]["api_name"] == "token"
    assert sorted(c["channel_id"] for c in zoho.channels()) == ["1000000068001", "2", "3"]


def test_patch_renews_and_lapse_stops_notifications(api, zoho, clock):
    assert api.get("/actions/watch").status_code == 204
    api.post("/actions/watch", json={"watch": [watch_item()]})
    renewed = api.patch("/actions/watch", json={"watch": [
        {"channel_id": "1000000068001", "channel_expiry": "2026-01-12T08:00:00+00:00"}]})
    assert renewed.status_code == 200
    assert renewed.json()["watch"][0]["details"]["events"][0]["channel_expiry"] == "2026-01-12T08:00:00+00:00"
    assert api.get("/actions/watch").json()["watch"][0]["token"] == "t" * 50  # keys not sent stay

    unknown = api.patch("/actions/watch", json={"watch": [{"channel_id": "404", "channel_expiry": None}]})
    assert unknown.status_code == 400
    assert unknown.json() == {"watch": [{"code": "NOT_SUBSCRIBED", "details": {},
                                         "message": "Not subscribed for actions-watch of the given channel",
                                         "status": "error"}]}

    clock.advance(timedelta(days=6))
    zoho.person_create("Contacts", Last_Name="Live")
    assert len(zoho.pending_notifications()) == 1
    zoho.lapse_channel("1000000068001")
    zoho.person_create("Contacts", Last_Name="Nobody hears this")
    assert len(zoho.pending_notifications()) == 1
    api = Api(zoho)  # six days on, the first access token has long expired
    assert api.get("/actions/watch").status_code == 204
    assert api.patch("/actions/watch", json={"watch": [{"channel_id": "1000000068001"}]}).status_code == 400


def test_disable_channel(api, zoho):
    api.post("/actions/watch", json={"watch": [watch_item()]})
    gone = api.delete("/actions/watch", params={"channel_ids": "1000000068001"})
    assert gone.json()["watch"][0]["message"] == "Successfully un-subscribed from actions-watch"
    assert zoho.channels() == []


def test_notifications_reach_the_receiver_with_token_and_query_params(api, zoho):
    received = []

    def receiver(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        received.append(json.loads(environ["wsgi.input"].read(length)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with serve(receiver) as inbox:
        api.post("/actions/watch", json={"watch": [watch_item(
            notify_url=f"{inbox.url}/zoho/callback?tenant=42", events=["Contacts.create", "Contacts.edit"],
            return_affected_field_values=True)]})
        [contact] = add(api, "Contacts", {"Last_Name": "Doe"})
        zoho.person_edit("Contacts", contact, Email="doe@example.com")
        add(api, "Accounts", {"Account_Name": "Not watched"})
        assert zoho.deliver_notifications() == [200, 200]

    created, edited = received
    assert created["operation"] == "insert" and created["ids"] == [contact]
    assert created["token"] == "t" * 50 and created["channel_id"] == "1000000068001"
    assert created["query_params"] == {"tenant": "42"} and created["module"] == "Contacts"
    assert created["server_time"] == int(START.timestamp() * 1000)
    assert edited["operation"] == "update" and edited["affected_fields"] == [{contact: ["Email"]}]
    assert edited["affected_values"] == [{"record_id": contact, "values": {"Email": "doe@example.com"}}]
    assert zoho.record("Contacts", contact)["Modified_By"]["name"] == "Sandbox Sales Person"


# ------------------------------------------------------------------ concurrency


def test_concurrency_limit_answers_429(make_zoho):
    zoho = make_zoho(concurrency_limit=1)
    api = Api(zoho)
    zoho.hold_requests()
    held = []
    worker = threading.Thread(target=lambda: held.append(api.get("/settings/modules").status_code))
    worker.start()
    assert wait_until(lambda: zoho.in_flight() == 1, timeout=5)
    refused = api.get("/settings/modules")
    assert refused.status_code == 429 and refused.json()["code"] == "TOO_MANY_REQUESTS"
    zoho.release_requests()
    worker.join(5)
    assert held == [200]
    assert api.get("/settings/modules").status_code == 200


def test_writes_of_more_than_ten_records_share_the_sub_concurrency_limit(make_zoho):
    zoho = make_zoho(sub_concurrency_limit=1)
    api = Api(zoho)
    eleven = {"data": [{"Product_Name": f"P{n}"} for n in range(11)]}
    zoho.hold_requests()
    held = []
    worker = threading.Thread(target=lambda: held.append(api.post("/Products", json=eleven).status_code))
    worker.start()
    assert wait_until(lambda: zoho.in_flight() == 1, timeout=5)
    assert api.post("/Products/upsert", json={"data": [{"Product_Name": f"Q{n}"} for n in range(11)]}).status_code == 429
    small = threading.Thread(target=lambda: held.append(
        api.post("/Products", json={"data": [{"Product_Name": "small"}]}).status_code))
    small.start()
    assert wait_until(lambda: zoho.in_flight() == 2, timeout=5)  # a one-record write is admitted alongside
    zoho.release_requests()
    worker.join(5)
    small.join(5)
    assert held == [201, 201] and len(zoho.records("Products")) == 12


# ------------------------------------------------------------------ deals, custom lookups, related lists, notes


def deal(account: str, name: str = "Big deal", **extra) -> dict:
    return {"Deal_Name": name, "Account_Name": {"id": account}, "Closing_Date": "2026-03-31",
            "Stage": "Qualification", **extra}


@pytest.mark.parametrize("missing", ["Deal_Name", "Account_Name", "Closing_Date", "Stage"])
def test_a_deal_needs_its_four_mandatory_fields(api, missing):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    body = deal(account)
    del body[missing]
    item = api.post("/Deals", json={"data": [body]}).json()["data"][0]
    assert (item["code"], item["details"]["api_name"]) == ("MANDATORY_NOT_FOUND", missing)


def test_a_deal_is_stored_with_its_stage_and_expected_revenue(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [deal_id] = add(api, "Deals", deal(account, Amount=1000, Probability=25))
    stored = zoho.record("Deals", deal_id)
    assert stored["Account_Name"] == {"id": account, "name": "Acme"}
    assert (stored["Stage"], stored["Expected_Revenue"]) == ("Qualification", 250.0)
    item = api.post("/Deals", json={"data": [deal(account, Stage="Won")]}).json()["data"][0]
    assert (item["code"], item["details"]["api_name"]) == ("INVALID_DATA", "Stage")


def test_setup_creates_a_lookup_and_the_deal_lists_the_invoices_pointing_at_it(make_zoho):
    zoho = make_zoho(xero_fields=False)
    api = Api(zoho)
    created = api.post("/settings/fields?module=Invoices", json={"fields": [
        {"field_label": "Deal", "data_type": "lookup", "lookup": {"module": {"api_name": "Deals"}}}]})
    assert created.status_code == 201, created.text
    fields = {f["api_name"]: f for f in api.get("/settings/fields?module=Invoices").json()["fields"]}
    assert fields["Deal"]["lookup"]["module"]["api_name"] == "Deals" and fields["Deal"]["custom_field"]
    refused = api.post("/settings/fields?module=Invoices", json={"fields": [
        {"field_label": "Elsewhere", "data_type": "lookup", "lookup": {"module": {"api_name": "Nowhere"}}}]})
    assert refused.status_code == 400 and refused.json()["fields"][0]["details"]["api_name"] == "lookup"

    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [product] = add(api, "Products", {"Product_Name": "Widget"})
    [deal_id, other] = add(api, "Deals", deal(account), deal(account, "Other"))
    line = [{"Product_Name": {"id": product}, "List_Price": 10}]
    [first, second, third] = add(api, "Invoices", *[
        {"Subject": f"INV-{n}", "Account_Name": {"id": account}, "Invoiced_Items": line, "Deal": {"id": d}}
        for n, d in ((1, deal_id), (2, deal_id), (3, other))])
    related = api.get(f"/Deals/{deal_id}/Invoices", params={"fields": "Subject,Deal"})
    assert [r["Subject"] for r in related.json()["data"]] == ["INV-1", "INV-2"]
    assert related.json()["data"][0]["Deal"] == {"id": deal_id, "name": "Big deal"}
    assert api.get(f"/Deals/{deal_id}/Invoices").json()["code"] == "REQUIRED_PARAM_MISSING"
    api.put(f"/Invoices/{second}", json={"data": [{"Deal": None}]})
    assert [r["id"] for r in api.get(f"/Deals/{deal_id}/Invoices?fields=Subject").json()["data"]] == [first]
    assert [r["id"] for r in api.get(f"/Deals/{other}/Invoices?fields=Subject").json()["data"]] == [third]


def test_notes_attach_to_an_invoice_and_are_edited_in_place(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [note_id] = add(api, "Notes", {"Note_Title": "Payment", "Note_Content": "100.00 on 2026-01-05",
                                   "Parent_Id": {"module": {"api_name": "Accounts"}, "id": account}})
    notes = api.get(f"/Accounts/{account}/Notes?fields=Note_Title,Note_Content,Parent_Id").json()["data"]
    assert [(n["id"], n["Note_Content"]) for n in notes] == [(note_id, "100.00 on 2026-01-05")]
    assert notes[0]["Parent_Id"]["module"]["api_name"] == "Accounts" and notes[0]["Parent_Id"]["id"] == account
    assert api.put(f"/Notes/{note_id}", json={"data": [{"Note_Title": "Payment (deleted in Xero)"}]}).status_code == 200
    assert zoho.record("Notes", note_id)["Note_Title"] == "Payment (deleted in Xero)"
    item = api.post("/Notes", json={"data": [{"Note_Content": "x", "Parent_Id": {
        "module": {"api_name": "Accounts"}, "id": "4876876000099999999"}}]}).json()["data"][0]
    assert (item["code"], item["details"]["api_name"]) == ("INVALID_DATA", "Parent_Id")


def test_a_deleted_deal_leaves_its_invoices_unlinked_and_takes_its_notes(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [product] = add(api, "Products", {"Product_Name": "Widget"})
    [deal_id] = add(api, "Deals", deal(account))
    [invoice] = add(api, "Invoices", {"Subject": "INV-1", "Account_Name": {"id": account}, "Deal": {"id": deal_id},
                                      "Invoiced_Items": [{"Product_Name": {"id": product}}]})
    add(api, "Notes", {"Note_Content": "call back", "Parent_Id": {"module": {"api_name": "Deals"}, "id": deal_id}})
    zoho.person_delete("Deals", deal_id)
    assert zoho.record("Invoices", invoice)["Deal"] is None
    assert zoho.records("Notes") == []


def test_a_sales_order_names_its_deal(api, zoho):
    [account] = add(api, "Accounts", {"Account_Name": "Acme"})
    [deal_id] = add(api, "Deals", deal(account))
    [order] = add(api, "Sales_Orders", {"Subject": "SO-1", "Account_Name": {"id": account}, "Deal_Name": {"id": deal_id}})
    assert zoho.record("Sales_Orders", order)["Deal_Name"] == {"id": deal_id, "name": "Big deal"}
