"""A realistic demo organisation for the Xero sandbox: deterministic for a given seed.

Companies across several countries, with contact people (some with only a first name or only an
email), street and PO box addresses, phones with country/area codes, tax and account numbers, a
few archived, and names that exercise non-ASCII handling end to end.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from connector.sandbox.xero import XeroSandbox

# (name, country, city, region, postal code, phone country code, area code, email domain, tax number)
_COMPANIES = [
    ("Müller & Söhne GmbH", "Germany", "München", "Bayern", "80331", "49", "89", "mueller-soehne.de", "DE123456789"),
    ("Łódź Logistyka Sp. z o.o.", "Poland", "Łódź", "Łódzkie", "90-001", "48", "42", "lodz-logistyka.pl", "PL7251234567"),
    ("Ærøskøbing Design ApS", "Denmark", "Ærøskøbing", "", "5970", "45", "62", "aeroe-design.dk", "DK12345678"),
    ("Café Ōtaki", "New Zealand", "Ōtaki", "Wellington", "5512", "64", "6", "cafeotaki.co.nz", "123-456-789"),
    ("株式会社さくら商事", "Japan", "東京都", "千代田区", "100-0001", "81", "3", "sakura-shoji.jp", "T1234567890123"),
    ("Ñandú Importaciones", "Argentina", "Buenos Aires", "CABA", "C1002", "54", "11", "nandu.com.ar", "30-71234567-1"),
    ("Kiwi Plumbing Ltd", "New Zealand", "Auckland", "Auckland", "1010", "64", "9", "kiwiplumbing.co.nz", "98-765-432"),
    ("Harbour Bridge Consulting Pty Ltd", "Australia", "Sydney", "NSW", "2000", "61", "2", "harbourbridge.com.au", "51 824 753 556"),
    ("Thames Valley Print Co", "United Kingdom", "Reading", "Berkshire", "RG1 1AA", "44", "118", "tvprint.co.uk", "GB123456789"),
    ("Maple Leaf Outfitters Inc.", "Canada", "Toronto", "ON", "M5H 2N2", "1", "416", "mapleleaf.ca", "123456789RT0001"),
    ("Golden Gate Analytics LLC", "United States", "San Francisco", "CA", "94105", "1", "415", "gganalytics.com", "12-3456789"),
    ("Fjord & Fell AS", "Norway", "Bergen", "Vestland", "5003", "47", "55", "fjordfell.no", "NO987654321MVA"),
    ("Boulangerie Étoile SARL", "France", "Lyon", "Auvergne-Rhône-Alpes", "69001", "33", "4", "etoile.fr", "FR12345678901"),
    ("Zürich Präzision AG", "Switzerland", "Zürich", "ZH", "8001", "41", "44", "praezision.ch", "CHE-123.456.789"),
    ("Southern Cross Freight", "Australia", "Melbourne", "VIC", "3000", "61", "3", "scfreight.com.au", "33 102 417 032"),
    ("Pōneke Web Studio", "New Zealand", "Wellington", "Wellington", "6011", "64", "4", "poneke.studio", "111-222-333"),
    ("Dublin Bay Seafoods Ltd", "Ireland", "Dublin", "Leinster", "D02 XY45", "353", "1", "dublinbay.ie", "IE1234567T"),
    ("Van der Berg Bouw B.V.", "Netherlands", "Utrecht", "Utrecht", "3511", "31", "30", "vdberg-bouw.nl", "NL123456789B01"),
    ("São Paulo Café Exportação", "Brazil", "São Paulo", "SP", "01310-100", "55", "11", "spcafe.com.br", "12.345.678/0001-90"),
    ("Cape Point Vineyards", "South Africa", "Cape Town", "Western Cape", "8001", "27", "21", "capepointvines.co.za", "4123456789"),
    ("Singapura Trading Pte Ltd", "Singapore", "Singapore", "", "018956", "65", "", "singapura.sg", "201912345K"),
    ("Rocky Mountain Timber", "United States", "Denver", "CO", "80202", "1", "303", "rmtimber.com", "84-1234567"),
    ("Göteborg Möbler AB", "Sweden", "Göteborg", "Västra Götaland", "411 04", "46", "31", "gbgmobler.se", "SE556677889901"),
    ("Ōamaru Stone Works", "New Zealand", "Ōamaru", "Otago", "9400", "64", "3", "oamarustone.nz", "444-555-666"),
    ("Wiener Kaffeehaus GmbH", "Austria", "Wien", "Wien", "1010", "43", "1", "kaffeehaus.at", "ATU12345678"),
]
_FIRST = ["Anna", "Jürgen", "Zofia", "Søren", "Aroha", "Haruto", "Lucía", "Tama", "Olivia", "Émile", "Ngaio", "Priya"]
_LAST = ["Schmidt", "Kowalska", "Jørgensen", "Ngata", "Sato", "Fernández", "Brown", "Dubois", "Müller", "Patel"]
_STREETS = ["Hauptstraße", "Main Street", "Queen Street", "Rue de la République", "High Street", "Station Road"]
_PRODUCTS = [("Consulting hours", "200", Decimal("150.00")), ("Design retainer", "200", Decimal("1200.00")),
             ("Freight (pallet)", "200", Decimal("85.50")), ("Coffee beans 1 kg", "200", Decimal("32.95")),
             ("Support subscription", "200", Decimal("49.00"))]


def seed_demo_org(sandbox: XeroSandbox, tenant_id: str, *, contacts: int = 25, seed: int = 7) -> list[str]:
    """Create ``contacts`` contacts (the list repeats with numbered names beyond 25); returns their ids."""
    rng = random.Random(seed)
    ids: list[str] = []
    for index in range(contacts):
        name, country, city, region, postcode, cc, area, domain, tax = _COMPANIES[index % len(_COMPANIES)]
        if index >= len(_COMPANIES):
            name = f"{name} ({index // len(_COMPANIES) + 1})"
        fields = {
            "Name": name,
            "ContactNumber": f"CUST-{index + 1:04d}",
            "AccountNumber": f"AR{rng.randint(10000, 99999)}",
            "EmailAddress": f"accounts@{domain}",
            "TaxNumber": tax,
            "Addresses": [
                {"AddressType": "STREET", "AddressLine1": f"{rng.randint(1, 250)} {rng.choice(_STREETS)}",
                 "City": city, "Region": region, "PostalCode": postcode, "Country": country},
                {"AddressType": "POBOX", "AddressLine1": f"PO Box {rng.randint(100, 9999)}",
                 "City": city, "Region": region, "PostalCode": postcode, "Country": country,
                 "AttentionTo": "Accounts Payable"},
            ],
            "Phones": [
                {"PhoneType": "DEFAULT", "PhoneCountryCode": cc, "PhoneAreaCode": area,
                 "PhoneNumber": f"{rng.randint(200, 999)} {rng.randint(1000, 9999)}"},
                {"PhoneType": "MOBILE", "PhoneCountryCode": cc, "PhoneAreaCode": "",
                 "PhoneNumber": f"{rng.randint(20, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"},
            ],
            "ContactPersons": _people(rng, domain),
        }
        if index % 3 == 0:  # some contacts are people-named companies with a primary first/last name
            fields["FirstName"], fields["LastName"] = rng.choice(_FIRST), rng.choice(_LAST)
        contact = sandbox.create_contact(tenant_id, **fields)
        ids.append(contact["ContactID"])
    for contact_id in ids[5::9]:  # a few archived
        sandbox.archive_contact(tenant_id, contact_id)
    return ids


def _people(rng: random.Random, domain: str) -> list[dict]:
    people = []
    for slot in range(rng.randint(0, 3)):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        shape = rng.randint(0, 3)
        if shape == 0:  # only a first name
            people.append({"FirstName": first, "IncludeInEmails": False})
        elif shape == 1:  # only an email address
            people.append({"EmailAddress": f"office{slot}@{domain}", "IncludeInEmails": True})
        else:
            people.append({"FirstName": first, "LastName": last,
                           "EmailAddress": f"{first.lower()}.{last.lower()}@{domain}", "IncludeInEmails": slot == 0})
    return people


def seed_invoices(
    sandbox: XeroSandbox, tenant_id: str, contact_ids: list[str], *, per_contact: int = 2, seed: int = 7,
    reference: str | None = None,
) -> list[str]:
    """AUTHORISED sales invoices for active contacts, some part- or fully paid; returns invoice ids.
    ``reference``: every invoice's Reference (e.g. naming a Zoho deal), else a random purchase order."""
    rng = random.Random(seed)
    today = sandbox.clock.now().date()
    invoice_ids: list[str] = []
    for contact_id in contact_ids:
        if sandbox.contact(tenant_id, contact_id)["ContactStatus"] != "ACTIVE":
            continue
        for _ in range(per_contact):
            lines = _invoice_lines(rng, rng.randint(1, 3))
            issued = today - timedelta(days=rng.randint(0, 60))
            invoice = sandbox.create_invoice(tenant_id, contact_id, lines, Date=issued.isoformat(),
                                             DueDate=(issued + timedelta(days=20)).isoformat(),
                                             Reference=reference or f"PO-{rng.randint(1000, 9999)}")
            invoice_ids.append(invoice["InvoiceID"])
            roll = rng.random()
            if roll < 0.3:
                sandbox.add_payment(tenant_id, invoice["InvoiceID"], invoice["AmountDue"])
            elif roll < 0.5:
                sandbox.add_payment(tenant_id, invoice["InvoiceID"], (invoice["AmountDue"] / 2).quantize(Decimal("0.01")))
    return invoice_ids


def _invoice_lines(rng: random.Random, count: int) -> list[dict]:
    return [{"Description": description, "AccountCode": account, "UnitAmount": price,
             "Quantity": Decimal(rng.randint(1, 10)), "TaxType": rng.choice(["OUTPUT", "OUTPUT", "NONE"])}
            for description, account, price in rng.sample(_PRODUCTS, count)]


def seed_large_org(sandbox: XeroSandbox, tenant_id: str, *, contacts: int, invoices: int,
                   seed: int = 7) -> tuple[list[str], list[str]]:
    """A large organisation for imports: the demo org's contacts, then ``invoices`` sales invoices with
    1-5 lines spread over the active ones (a few still DRAFT). Returns (contact ids, invoice ids).

    No payments or credit notes: every listed invoice renders its payments and allocations, so an
    org with tens of thousands of both would be slow to list in the sandbox without telling us more."""
    contact_ids = seed_demo_org(sandbox, tenant_id, contacts=contacts, seed=seed)
    active = [c for c in contact_ids if sandbox.contact(tenant_id, c)["ContactStatus"] == "ACTIVE"]
    rng = random.Random(seed)
    today = sandbox.clock.now().date()
    invoice_ids = []
    for n in range(invoices):
        issued = today - timedelta(days=rng.randint(0, 365))
        invoice = sandbox.create_invoice(tenant_id, active[n % len(active)],
                                         _invoice_lines(rng, rng.randint(1, len(_PRODUCTS))),
                                         Status="DRAFT" if rng.random() < 0.05 else "AUTHORISED",
                                         Date=issued.isoformat(), DueDate=(issued + timedelta(days=30)).isoformat(),
                                         Reference=f"PO-{n + 1:06d}")
        invoice_ids.append(invoice["InvoiceID"])
    return contact_ids, invoice_ids
