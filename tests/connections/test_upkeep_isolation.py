"""Scheduled upkeep goes org by org: one revoked or failing org is recorded and skipped, never a reason to
leave every org after it unrefreshed or unrenewed."""

from __future__ import annotations

from datetime import timedelta

from connector.connect import refresh_expiring_tokens
from connector.store import audit as stages
from tests.connections.test_zoho_channels import renew


def connect_tenants(world, names: list[str]) -> list:
    """Xero tenants under one consent, each with a Zoho org of its own: one Zoho token set per connection."""
    for name in names:
        world.xero.add_tenant(name)
    connections = sorted(world.consent("xero"), key=lambda c: c.id)
    for number, connection in enumerate(connections):
        world.zoho.org_id = f"48768760000000{number:05d}"  # each consent lands in another Zoho org
        world.consent("zoho", connection_ids=[connection.id])
    return connections


def test_a_failing_token_refresh_is_recorded_and_the_orgs_after_it_are_refreshed(world):
    connect_tenants(world, ["Kea Ltd", "Tui Ltd", "Weka Ltd"])
    owners = world.credentials.owners("zoho")
    assert len(owners) == 3  # three Zoho consents: three token sets to refresh
    before = {o: world.credentials.load(o, "zoho").tokens.access_token.reveal() for o in owners}
    world.clock.advance(timedelta(minutes=55))  # every Zoho token within the beat's refresh margin
    # The first org's refresh gets an answer nothing expects (not a grant error, not a 5xx).
    world.zoho.faults.fail_next(1, status=400, body="<html>Bad Request</html>", path_prefix="/oauth/v2/token")

    report = refresh_expiring_tokens(store=world.store, credentials=world.credentials,
                                     token_manager=lambda system, owner: world.token_manager(
                                         system, owner, refresh_margin=600))

    after = {o: world.credentials.load(o, "zoho").tokens.access_token.reveal() for o in owners}
    failed_owner = owners[0]
    assert report.failed == [failed_owner]
    assert [o for o in owners if after[o] != before[o]] == owners[1:]  # the others were refreshed
    trail = world.store.audit.trail(failed_owner, "connection", str(failed_owner))
    assert [e.stage for e in trail] == [stages.FAILED]
    assert trail[0].detail["job"] == "zoho_token_refresh" and "400" in trail[0].detail["reason"]


def test_a_revoked_org_does_not_stop_the_renewal_of_the_channels_after_it(world):
    revoked, healthy = connect_tenants(world, ["Kea Ltd", "Tui Ltd"])
    [revoked_channel] = world.store.channels.for_connection(world.credentials.owner_of(revoked.id, "zoho"))
    [healthy_channel] = world.store.channels.for_connection(world.credentials.owner_of(healthy.id, "zoho"))
    assert revoked_channel.connection_id < healthy_channel.connection_id  # the revoked org comes first
    # Someone revokes the first org's grant in Zoho; both channels near their expiry.
    world.zoho.revoke(world.credentials.load(revoked_channel.connection_id, "zoho").tokens.refresh_token.reveal())
    world.zoho.expire_access_tokens()
    world.clock.advance(timedelta(days=5))

    outcomes = renew(world, [])

    by_channel = {o.channel_id: o for o in outcomes}
    assert by_channel[revoked_channel.channel_id].action == "failed"
    assert "NeedsReauth" in by_channel[revoked_channel.channel_id].error
    assert by_channel[healthy_channel.channel_id].action == "renewed"
    assert world.store.channels.get(healthy_channel.channel_id).expires_at > world.clock.now() + timedelta(days=5)
