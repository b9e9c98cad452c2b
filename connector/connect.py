"""OAuth connect flows and token upkeep, as plain functions with their collaborators injected.

- Xero (https://developer.xero.com/documentation/guides/oauth2/auth-flow): authorize at
  ``{login}/identity/connect/authorize``, swap the code, list ``GET /connections`` and link the
  chosen tenants. One consent covers every chosen tenant with one rotating refresh token, so the
  token set is stored once (under the first tenant's connection) and the others share it
  (``CredentialStore.share``): it is refreshed once, never raced.
- Zoho (https://www.zoho.com/crm/developer/docs/api/multi-dc.html): the user's data centre picks
  the accounts server; the redirect names the account's ``accounts-server`` (trusted only if it is a
  known Zoho server or the one we are configured with: the client secret goes there); the token
  response's ``api_domain`` is used for every call. One Zoho org may receive several tenants: they
  share one token set.
- ``state`` is a single-use random value kept in Redis for ten minutes with what the flow needs to
  finish, so the callback can run in another process (the receiver) and cannot be replayed (GETDEL
  takes it atomically: of two callbacks racing with one state, one wins). A flow started in a
  browser also keeps a ``browser`` binding (a hash of the nonce in that browser's signed cookie):
  its callback finishes only in the browser that started it (RFC 6749 §10.12, login CSRF).
- A Xero flow started with ``pick`` (the console's) whose consent reached several organisations links none
  yet: the grant waits, sealed by the vault, in Redis as long as a state (``HeldGrants``), and the person's
  choice (``Connector.choose_tenants``, same browser, once) links the ticked ones.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from connector.clock import SYSTEM_CLOCK, Clock
from connector.errors import ConfigError, ConnectorError, NeedsReauth, TransientError, reconnect_command
from connector.http import RequestPipeline
from connector.secret import Secret
from connector.settings import XERO_DEFAULT_SCOPES, ZOHO_ACCOUNTS_SERVERS, Settings
from connector.store import Store
from connector.store.connections import ConnectionInfo
from connector.store.credentials import CredentialStore, TokenSet
from connector.xero.auth import XeroTokenManager
from connector.xero.client import XeroClient
from connector.zoho.auth import ZohoTokenManager
from connector.zoho.hooks import ZohoApiHooks

log = logging.getLogger(__name__)

SYSTEMS = ("xero", "zoho")
STATE_TTL_SECONDS = 600
# Xero apps made on or after 2 March 2026 must use the granular scopes
# (https://developer.xero.com/documentation/oauth2/scopes).
XERO_SCOPE_PRESETS = {
    "broad": XERO_DEFAULT_SCOPES,
    "granular": "offline_access accounting.contacts accounting.invoices accounting.payments accounting.settings.read",
}
# Records, field metadata, notification channels, and the org's id (GET /crm/v8/org)
# (https://www.zoho.com/crm/developer/docs/api/v8/scopes.html).
ZOHO_SCOPES = "ZohoCRM.modules.ALL,ZohoCRM.settings.ALL,ZohoCRM.notifications.ALL,ZohoCRM.org.READ"
# Beat runs every 5 minutes; refreshing anything within 10 minutes of expiry means no call waits.
BEAT_REFRESH_MARGIN_SECONDS = 600.0


class ConnectFailed(ConnectorError):
    """The connect flow cannot finish; the message says what the person should do."""


class StateRejected(ConnectFailed):
    """The callback's ``state`` is unknown, expired, used, or was issued to another browser."""


class ConsentDeclined(ConnectFailed):
    """The person (or the vendor) declined the consent: the callback carries an error, not a code."""


# -- state ---------------------------------------------------------------------------------------


class ConnectStates:
    """Single-use ``state`` values in Redis, each carrying what its callback needs."""

    def __init__(self, redis: Any, *, ttl: int = STATE_TTL_SECONDS) -> None:
        self._redis = redis
        self._ttl = ttl

    def issue(self, system: str, context: Mapping[str, Any]) -> str:
        state = secrets.token_urlsafe(32)
        self._redis.set(self._key(state), json.dumps({"system": system, **context}), ex=self._ttl)
        return state

    def consume(self, system: str, state: str | None) -> dict:
        raw = self._redis.getdel(self._key(state)) if state else None
        data = json.loads(raw) if raw else None
        if not data or data.get("system") != system:
            raise StateRejected("unknown, expired or already used state; start the connect flow again")
        return data

    @staticmethod
    def _key(state: str) -> str:
        return f"connector:oauth-state:{state}"


@dataclass(frozen=True)
class TenantChoice:
    """The consent reached several Xero organisations and the flow was started to let the person pick: the
    grant is held (sealed, in Redis, as long as a state) under ``pending`` until ``Connector.choose_tenants``."""

    pending: str
    organisations: list[dict]  # {"tenantId", "tenantName"} each


class HeldGrants:
    """Xero grants waiting for the person's choice of organisations: single-use, sealed by the vault (the
    tokens never sit in Redis in the clear), bound to the browser that consented, gone after STATE_TTL_SECONDS."""

    def __init__(self, redis: Any, credentials: CredentialStore, *, ttl: int = STATE_TTL_SECONDS) -> None:
        self._redis = redis
        self._credentials = credentials
        self._ttl = ttl

    def hold(self, tokens: TokenSet, organisations: list[dict], *, browser: str | None, zoho_from: int | None) -> str:
        pending = secrets.token_urlsafe(32)
        held = {"tokens": self._credentials.seal(tokens.to_json()), "organisations": organisations,
                "browser": browser, "zoho_from": zoho_from}
        self._redis.set(self._key(pending), json.dumps(held), ex=self._ttl)
        return pending

    def peek(self, pending: str | None) -> dict:
        raw = self._redis.get(self._key(pending)) if pending else None
        if not raw:
            raise StateRejected("this choice of organisations expired or was made already; start the connect "
                                "flow again")
        return json.loads(raw)

    def take(self, pending: str) -> dict:
        raw = self._redis.getdel(self._key(pending))  # of two submissions racing, one wins
        if not raw:
            raise StateRejected("this choice of organisations was made already; see the connections")
        return json.loads(raw)

    def tokens_of(self, held: dict) -> TokenSet:
        return TokenSet.from_json(self._credentials.unseal(held["tokens"]))

    @staticmethod
    def _key(pending: str) -> str:
        return f"connector:oauth-held-grant:{pending}"


def _same_browser(bound: str | None, browser: str | None) -> bool:
    return (bound is None) == (browser is None) and (bound is None or hmac.compare_digest(str(bound), str(browser)))


# -- authorize URLs ------------------------------------------------------------------------------


def xero_scopes(choice: str | None, settings: Settings) -> str:
    """A preset name ("broad", "granular") or a scope string; offline_access is always asked for."""
    scopes = XERO_SCOPE_PRESETS.get(choice or "", choice or settings.xero_scopes).split()
    return " ".join(dict.fromkeys(["offline_access", *scopes]))


def xero_authorize_url(settings: Settings, *, state: str, redirect_uri: str, scopes: str | None = None) -> str:
    query = {"response_type": "code", "client_id": settings.xero_client_id, "redirect_uri": redirect_uri,
             "scope": xero_scopes(scopes, settings), "state": state}
    return f"{settings.xero_login_url}/identity/connect/authorize?{urlencode(query)}"


def zoho_accounts_server(settings: Settings, dc: str | None) -> str:
    """The accounts server of data centre ``dc``; an explicit ZOHO_ACCOUNTS_URL (sandbox, proxy) serves all."""
    configured = settings.zoho_accounts_url.rstrip("/")
    if configured not in ZOHO_ACCOUNTS_SERVERS.values():
        return configured
    dc = (dc or settings.zoho_dc).lower()
    if dc not in ZOHO_ACCOUNTS_SERVERS:
        raise ConfigError(f"{dc!r} is not a Zoho data centre; use one of {', '.join(sorted(ZOHO_ACCOUNTS_SERVERS))}")
    return ZOHO_ACCOUNTS_SERVERS[dc]


def zoho_authorize_url(settings: Settings, *, state: str, redirect_uri: str, dc: str | None = None) -> str:
    query = {"scope": ZOHO_SCOPES, "client_id": settings.zoho_client_id, "response_type": "code",
             "access_type": "offline", "prompt": "consent", "redirect_uri": redirect_uri, "state": state}
    return f"{zoho_accounts_server(settings, dc)}/oauth/v2/auth?{urlencode(query)}"


def _trusted_accounts_server(settings: Settings, named: str | None, dc: str | None) -> str:
    """The redirect's ``accounts-server`` if it is one we trust, else the one we chose; never a stranger."""
    expected = zoho_accounts_server(settings, dc)
    if not named:
        return expected
    named = named.rstrip("/")
    if named == expected or named in ZOHO_ACCOUNTS_SERVERS.values():
        return named
    raise ConnectFailed(f"the redirect named {named!r} as the Zoho accounts server, which is not a Zoho "
                        "data centre; refusing to send the client secret there")


# -- finishing the flows -------------------------------------------------------------------------


class _GivenToken:
    """A token source for the one call made with a just-issued access token."""

    def __init__(self, token: Secret, api_domain: str = "") -> None:
        self._token = token
        self._api_domain = api_domain

    def access_token(self) -> str:
        return self._token.reveal()

    def api_domain(self) -> str:
        return self._api_domain

    def refresh(self, force: bool = False) -> str:
        raise NeedsReauth("the access token from the consent was refused; start the connect flow again")

    def __repr__(self) -> str:
        return "_GivenToken(***)"


@dataclass
class Connector:
    """Everything the connect flows touch, injected (workers/deps.py builds the real ones)."""

    settings: Settings
    store: Store
    credentials: CredentialStore
    redis: Any
    session: requests.Session
    clock: Clock = SYSTEM_CLOCK
    # Called with the Zoho token-owning connection id once its tokens are stored (channel set-up).
    on_zoho_connected: Callable[[int], None] | None = None
    # Called with every connection made active again, so its parked work resumes.
    on_connected: Callable[[list[int]], None] | None = None
    states: ConnectStates = field(init=False)
    held: HeldGrants = field(init=False)

    def __post_init__(self) -> None:
        self.states = ConnectStates(self.redis)
        self.held = HeldGrants(self.redis, self.credentials)

    def __repr__(self) -> str:
        return "Connector()"

    # The two entry points both the CLI and the receiver's /oauth routes use.

    def start(self, system: str, *, redirect_uri: str, **options: Any) -> str:
        """The URL to send the person to; ``options`` are kept with the state for the callback."""
        if system not in SYSTEMS:
            raise ConnectFailed(f"system must be one of {SYSTEMS}")
        if system == "zoho" and not options.get("connection_ids"):
            raise ConnectFailed("say which connections (Xero tenants) this Zoho org is for")
        state = self.states.issue(system, {"redirect_uri": redirect_uri, **options})
        if system == "xero":
            return xero_authorize_url(self.settings, state=state, redirect_uri=redirect_uri,
                                      scopes=options.get("scopes"))
        return zoho_authorize_url(self.settings, state=state, redirect_uri=redirect_uri, dc=options.get("dc"))

    def finish(self, system: str, params: Mapping[str, str], *, browser: str | None = None
               ) -> list[ConnectionInfo] | TenantChoice:
        """Complete the flow from the callback's query parameters (state checked and used up); a TenantChoice
        when it was started with ``pick`` and the consent reached several organisations.

        ``browser`` is the binding of the browser the callback reached; a state issued with a
        binding finishes only with the same one, and one issued without (the CLI) only without.
        """
        context = self.states.consume(system, params.get("state"))
        if not _same_browser(context.get("browser"), browser):
            raise StateRejected("this connect flow was started in another browser (or not in a browser); "
                                "start it again where you mean to finish it")
        if params.get("error"):
            raise ConsentDeclined(f"the consent was declined at {system.title()} ({params['error']}); "
                                  "start the connect flow again to connect")
        if not params.get("code"):
            raise ConnectFailed("the callback carries no authorization code")
        if system == "xero":
            return complete_xero_connect(self, code=params["code"], redirect_uri=context["redirect_uri"],
                                         tenant_ids=context.get("tenant_ids"), zoho_from=context.get("zoho_from"),
                                         pick=bool(context.get("pick")), browser=browser)
        return complete_zoho_connect(self, code=params["code"], redirect_uri=context["redirect_uri"],
                                     connection_ids=context["connection_ids"], dc=context.get("dc"),
                                     accounts_server=params.get("accounts-server"))

    def choose_tenants(self, pending: str, tenant_ids: Iterable[str], *, browser: str | None = None
                       ) -> list[ConnectionInfo]:
        """Link the organisations the person ticked from a held grant (``TenantChoice``); the others are not
        linked. Only in the browser that consented; once."""
        held = self.held.peek(pending)
        if not _same_browser(held.get("browser"), browser):
            raise StateRejected("this choice of organisations belongs to another browser; start the connect flow "
                                "again where you mean to finish it")
        wanted = set(tenant_ids)
        chosen = [o for o in held["organisations"] if o["tenantId"] in wanted]
        if not chosen:
            raise ConnectFailed("tick at least one organisation to connect")
        held = self.held.take(pending)
        return link_xero_tenants(self, self.held.tokens_of(held), chosen, held.get("zoho_from"))

    def finish_from_url(self, system: str, url: str) -> list[ConnectionInfo]:
        """Complete the flow from the full redirect URL (pasted by a person, or caught on loopback)."""
        return self.finish(system, dict(parse_qsl(urlsplit(url).query)))


def complete_xero_connect(
    ctx: Connector, *, code: str, redirect_uri: str, tenant_ids: Iterable[str] | None = None,
    zoho_from: int | None = None, pick: bool = False, browser: str | None = None,
) -> list[ConnectionInfo] | TenantChoice:
    """Swap the code, list the tenants the consent reached, link the chosen ones (all by default). With
    ``pick`` and no tenants named, a consent reaching several organisations links none yet: the grant is held
    and the person chooses (``TenantChoice``, then ``Connector.choose_tenants``)."""
    settings = ctx.settings
    exchanger = XeroTokenManager(
        connection_id=0, credentials=ctx.credentials, redis=ctx.redis, session=ctx.session, clock=ctx.clock,
        token_url=f"{settings.xero_identity_url}/connect/token", client_id=settings.xero_client_id,
        client_secret=settings.xero_client_secret,
    )
    tokens = exchanger.exchange_code(code, redirect_uri)
    listing = XeroClient(session=ctx.session, tokens=_GivenToken(tokens.access_token), tenant_id="",
                         api_url=settings.xero_api_url).get_connections()
    organisations = [c for c in listing if c.get("tenantType", "ORGANISATION") == "ORGANISATION"]
    wanted = list(tenant_ids or [])
    if wanted:
        missing = sorted(set(wanted) - {c["tenantId"] for c in organisations})
        if missing:
            raise ConnectFailed(f"the consent did not include tenant(s) {', '.join(missing)}; choose them in Xero")
        organisations = [c for c in organisations if c["tenantId"] in wanted]
    if not organisations:
        raise ConnectFailed("the consent reached no Xero organisation; choose at least one in Xero")
    if pick and not wanted and len(organisations) > 1:
        shown = [{"tenantId": c["tenantId"], "tenantName": c.get("tenantName") or c["tenantId"]} for c in organisations]
        return TenantChoice(ctx.held.hold(tokens, shown, browser=browser, zoho_from=zoho_from), shown)
    return link_xero_tenants(ctx, tokens, organisations, zoho_from)


def link_xero_tenants(ctx: Connector, tokens: TokenSet, organisations: list[dict], zoho_from: int | None
                      ) -> list[ConnectionInfo]:
    """One connection per organisation, all on one stored token set (the first's; the others share it)."""
    connections = [
        ctx.store.connections.create(name=c.get("tenantName") or c["tenantId"], xero_tenant_id=c["tenantId"],
                                     xero_tenant_name=c.get("tenantName") or "")
        for c in organisations
    ]
    owner = connections[0]
    # A person's fresh grant replaces whatever was stored (no CAS), then the others point at it.
    ctx.credentials.save(owner.id, "xero", tokens)
    for connection in connections:
        ctx.credentials.share(connection.id, "xero", owner.id)
    if zoho_from is not None:
        link_zoho(ctx, [c.id for c in connections], zoho_from)
    log.info("connected %d Xero tenant(s): connections %s", len(connections), [c.id for c in connections])
    return _reactivate(ctx, [c.id for c in connections])


def complete_zoho_connect(
    ctx: Connector, *, code: str, redirect_uri: str, connection_ids: Iterable[int], dc: str | None = None,
    accounts_server: str | None = None,
) -> list[ConnectionInfo]:
    """Swap the code at the account's accounts server, learn api_domain and the org, link the connections."""
    settings = ctx.settings
    server = _trusted_accounts_server(settings, accounts_server, dc)
    exchanger = ZohoTokenManager(
        connection_id=0, credentials=ctx.credentials, redis=ctx.redis, session=ctx.session, clock=ctx.clock,
        accounts_url=server, client_id=settings.zoho_client_id, client_secret=settings.zoho_client_secret,
    )
    tokens = exchanger.exchange_code(code, redirect_uri)
    api_domain = str(tokens.extra.get("api_domain") or "").rstrip("/")
    if not api_domain:
        raise ConnectFailed("Zoho's token response carried no api_domain; try again")
    org_id = zoho_org_id(ctx.session, api_domain, tokens.access_token)

    targets = [int(i) for i in connection_ids]
    unknown = [i for i in targets if ctx.store.connections.get(i) is None]
    if unknown:
        raise ConnectFailed(f"no connection(s) {unknown}; connect the Xero tenants first (`connector connections`)")
    # Tenants already on this org keep one token set; its current holder stays the owner, so the
    # org's notification channel (kept under the owner) does not move.
    on_org = [c.id for c in ctx.store.connections.all() if c.zoho_org_id == org_id]
    holders = [i for i in on_org if ctx.credentials.owner_of(i, "zoho") == i and ctx.credentials.load(i, "zoho")]
    owner_id = holders[0] if holders else targets[0]
    ctx.credentials.save(owner_id, "zoho", tokens)
    everyone = list(dict.fromkeys([owner_id, *targets, *on_org]))
    for connection_id in everyone:
        ctx.credentials.share(connection_id, "zoho", owner_id)
        ctx.store.connections.set_zoho(connection_id, org_id=org_id, api_domain=api_domain, accounts_url=server)
    log.info("connected Zoho org %s (%s) to connections %s", org_id, api_domain, everyone)
    if ctx.on_zoho_connected is not None:
        ctx.on_zoho_connected(owner_id)
    return _reactivate(ctx, everyone)


def link_zoho(ctx: Connector, connection_ids: Iterable[int], zoho_from: int) -> None:
    """Send these tenants to the Zoho org ``zoho_from`` already receives (no new Zoho consent)."""
    source = ctx.store.connections.get(zoho_from)
    owner_id = ctx.credentials.owner_of(zoho_from, "zoho")
    if source is None or ctx.credentials.load(owner_id, "zoho") is None:
        raise ConnectFailed(f"connection {zoho_from} has no Zoho org connected; run `connector connect zoho` first")
    for connection_id in connection_ids:
        ctx.credentials.share(connection_id, "zoho", owner_id)
        ctx.store.connections.set_zoho(connection_id, org_id=source.zoho_org_id, api_domain=source.zoho_api_domain,
                                       accounts_url=source.zoho_accounts_url)


def zoho_org_id(session: requests.Session, api_domain: str, access_token: Secret) -> str:
    """GET /crm/v8/org → the org's id (Zoho v8 OAS org.json: ``{"org": [{"id": ...}]}``)."""
    token = access_token.reveal()
    pipeline = RequestPipeline(session, ZohoApiHooks())  # a just-issued token: refused means start again
    _, body = pipeline.send("GET", f"{api_domain}/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {token}"},
                            secrets=(token,))
    orgs = (body or {}).get("org") or []
    if not orgs or not orgs[0].get("id"):
        raise ConnectFailed("Zoho returned no org for this account")
    return str(orgs[0]["id"])


def _reactivate(ctx: Connector, connection_ids: list[int]) -> list[ConnectionInfo]:
    """A fresh consent makes the connections active again; their parked work then resumes."""
    for connection_id in connection_ids:
        connection = ctx.store.connections.get(connection_id)
        if connection is not None and connection.state == "needs_reauth":
            ctx.store.connections.set_state(connection_id, "active")
            log.warning("connection %s reconnected: active again, parked work resumes", connection_id)
    if ctx.on_connected is not None:
        ctx.on_connected(connection_ids)
    return [c for c in (ctx.store.connections.get(i) for i in connection_ids) if c is not None]


# -- token upkeep --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshReport:
    refreshed: int
    needs_reauth: list[int]
    deferred: list[int]
    failed: list[int] = field(default_factory=list)  # owners whose refresh broke unexpectedly (logged, audited)


def refresh_expiring_tokens(
    *,
    store: Store,
    credentials: CredentialStore,
    token_manager: Callable[[str, int], Any],
) -> RefreshReport:
    """Refresh every stored token set near expiry, once per token set however many tenants share it.

    ``token_manager(system, owner_connection_id)`` gives a manager with the beat's refresh margin;
    it skips fresh tokens and single-flights the rest. A lost grant marks every connection using
    it ``needs_reauth`` and logs once (per connection) what to do.
    """
    refreshed, lost, deferred, failed = 0, [], [], []
    connections = store.connections.all()
    for system in SYSTEMS:
        shares = credentials.share_map(system)
        for owner_id in credentials.owners(system):
            users = [c for c in connections if shares.get(c.id, c.id) == owner_id]
            if not any(c.state == "active" for c in users):
                continue
            try:
                token_manager(system, owner_id).access_token()
                refreshed += 1
            except NeedsReauth as exc:
                for connection in users:
                    mark_needs_reauth(store, connection.id, str(exc), system, [c.id for c in users])
                lost.extend(c.id for c in users)
            except TransientError as exc:  # a lost answer is retried next run, inside Xero's 30-minute grace
                log.warning("%s token refresh for connection %s deferred: %s", system, owner_id, exc)
                deferred.append(owner_id)
            except Exception as exc:  # one org's failure must not stop the refresh of every org after it
                log.exception("%s token refresh for connection %s failed; the others go on", system, owner_id)
                record_upkeep_failure(store, owner_id, f"{system}_token_refresh", exc)
                failed.append(owner_id)
    return RefreshReport(refreshed, lost, deferred, failed)


def record_upkeep_failure(store: Store, connection_id: int, job: str, exc: BaseException) -> None:
    """Audit a scheduled job's failure for one connection (best effort: the log line is already out)."""
    from connector.store import audit as stages

    try:
        store.audit.record(connection_id=connection_id, record_type="connection", record_id=str(connection_id),
                           stage=stages.FAILED, detail={"job": job, "error": type(exc).__name__, "reason": str(exc)})
    except Exception:  # the store itself may be what failed
        log.warning("could not audit the %s failure of connection %s", job, connection_id)


def mark_needs_reauth(store: Store, connection_id: int, reason: str, system: str | None = None,
                      sharing: Iterable[int] = ()) -> bool:
    """Mark the connection and log the error once, with what to do for the ``system`` whose grant is
    gone (both when unknown; ``sharing``: every connection that one consent serves); True if it was
    active until now."""
    changed = store.connections.mark_needs_reauth(connection_id, reason)
    if changed:
        systems = [system] if system in SYSTEMS else list(SYSTEMS)
        todo = " or ".join(f"`{reconnect_command(s, sorted(sharing) or [connection_id])}`" for s in systems)
        where = " or ".join(f"/oauth/{s}/start" for s in systems)
        log.error("connection %s needs a person: %s. Its work is parked, not lost. Run %s or open %s on the "
                  "receiver; parked work resumes by itself afterwards.", connection_id, reason, todo, where)
    return changed
