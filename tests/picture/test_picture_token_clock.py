"""The workers' token managers read the same clock as everything else the deps build: on a simulated clock
(the budget bench, the day-long tests) a token past its expiry is refreshed before it is used, as the beat does
in production, instead of being sent, refused with a 401 and refreshed then."""

from __future__ import annotations

from datetime import timedelta

from connector.clock import ManualClock
from connector.sandbox.xero_seed import seed_demo_org


def test_a_token_expired_on_the_simulated_clock_is_refreshed_before_the_call_not_after_a_401(make_system):
    clock = ManualClock()
    picture = make_system(clock=clock)
    contacts = seed_demo_org(picture.xero, picture.tenant_id, contacts=2)
    assert picture.fetch("contacts", contacts[:1])
    clock.advance(timedelta(minutes=31))  # Xero's access tokens live 30 minutes

    calls_before = len(picture.xero.requests)
    assert picture.fetch("contacts", contacts[1:])
    answered = [(r.path, r.status) for r in list(picture.xero.requests)[calls_before:]]
    assert answered == [("/connect/token", 200), ("/api.xro/2.0/Contacts", 200)]
