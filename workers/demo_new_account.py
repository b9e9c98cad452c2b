"""The demo's new customer: a salesperson adds an Account in Zoho; it becomes one Xero contact even though
Zoho's notification arrives twice, and Xero's webhook for that create writes nothing back to Zoho
(connector/pipeline/to_xero/contacts.py)."""

from __future__ import annotations

import dataclasses


from connector.channels import channel_events
from connector.mapping import zoho_fields
from workers.demo_zoho import deliver_twice, enable_channel
from workers.embedded import wait_until

CHANNEL_ID = "1000000068004"
TOKEN = "demo-create-token"


def new_account_to_xero(deps, xero, zoho, connection_id: int, tenant_id: str, zoho_hook_url: str,
                        xero_hook_url: str, idle, timeout: float) -> tuple[bool, list[str]]:
    xero.deliver_webhooks(xero_hook_url)  # what earlier scenes left in Xero's queue: not counted as ours below
    wait_until(idle, timeout=timeout)
    # mapping.yaml: create_in_xero: {modules: [Accounts], account_types: [Customer]}
    deps.sync_config = dataclasses.replace(deps.sync_config, create_modules=("Accounts",),
                                           create_account_types=("Customer",))
    events = channel_events(("Accounts",), deps.sync_config.create_modules)
    enable_channel(deps, connection_id, CHANNEL_ID, TOKEN, events, zoho_hook_url)
    zoho._outbox.clear()  # only this scene's notifications
    account = zoho.person_create("Accounts", Account_Name="Kauri Coffee Roasters", Account_Type="Customer",
                                 Phone="+64 9 555 0199", Billing_City="Whangarei")["id"]
    zoho.person_create("Contacts", First_Name="Hemi", Last_Name="Walker", Email="hemi@kauricoffee.example",
                       Account_Name={"id": account})
    notifications = [n for n in zoho.pending_notifications() if n["module"] == "Accounts"]
    deliver_twice(zoho, notifications, zoho_hook_url)  # Zoho delivers it a second time

    def numbered() -> list[dict]:
        return [c for c in xero.contacts(tenant_id) if c.get("ContactNumber") == account]

    def settled() -> bool:
        return bool(numbered()) and (zoho.record("Accounts", account) or {}).get(zoho_fields.ACCOUNT_XERO_ID) \
            is not None and idle()

    if not wait_until(settled, timeout=timeout) or not wait_until(idle, timeout=timeout):
        return False, ["new account: FAILED: 'Kauri Coffee Roasters' did not reach Xero"]
    zoho_writes = len(zoho.writes())
    xero.deliver_webhooks(xero_hook_url)  # Xero's event for our create
    wait_until(idle, timeout=timeout)
    contacts, echoed = numbered(), len(zoho.writes()) - zoho_writes
    creates = len(xero.calls(path_prefix="/api.xro/2.0/Contacts", method="PUT"))
    contact = contacts[0]
    line = (f"new account: Zoho Account 'Kauri Coffee Roasters' (notified {len(notifications) * 2} times) -> "
            f"{len(contacts)} Xero contact '{contact['Name']}' {contact['ContactID']} (ContactNumber {account}, "
            f"primary person {contact.get('EmailAddress')}); Xero creates: {creates}; echo writes back to Zoho: {echoed}")
    return len(contacts) == 1 and creates == 1 and echoed == 0, [line]
