"""The Zoho sandbox's notification channels: watch (enable), PUT/PATCH renewal, list, disable,
expiry, and the callbacks each record change queues and ``deliver_notifications`` sends.

Zoho: https://www.zoho.com/crm/developer/docs/api/v8/notifications/overview.html (a channel lives one
hour when its expiry is missing or over a week away; its retries of failed callbacks are UNVERIFIED).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import requests
from werkzeug.wrappers import Request, Response

from connector.sandbox.zoho.render import _error, _item_error, _json, _plain, _Rejected, _stamp

CHANNEL_DEFAULT = timedelta(hours=1)  # v4+: missing or too-far expiry silently becomes 1 hour
CHANNEL_MAX = timedelta(weeks=1)
MAX_CHANNEL_TOKEN = 50
EVENT_OPERATIONS = {"create": "insert", "edit": "update", "delete": "delete"}


class NotificationChannels:
    """The /actions/watch routes and the channel hooks of ZohoSandbox (which holds the channels)."""

    def channels(self) -> list[dict]:
        """Live channels only, in the shape GET /actions/watch lists them."""
        with self._lock:
            return [self._channel_view(c) for c in self._live_channels()]

    def lapse_channel(self, channel_id: str) -> None:
        with self._lock:
            self._channels[str(channel_id)]["expires_at"] = self.clock.now()

    def pending_notifications(self) -> list[dict]:
        with self._lock:
            return [dict(payload) for _, payload in self._outbox]

    def deliver_notifications(self, timeout: float = 5.0) -> list[int]:
        """POST queued callbacks to their notify_url; returns HTTP statuses (0 = unreachable).

        Zoho's retry behaviour on failure is UNVERIFIED, so a failed callback is simply lost
        (the connector must reconcile by Modified_Time anyway).
        """
        with self._lock:
            outbox, self._outbox = self._outbox, []
        statuses = []
        for url, payload in outbox:
            try:
                statuses.append(requests.post(url, json=payload, timeout=timeout).status_code)
            except requests.RequestException:
                statuses.append(0)
        return statuses

    def _live_channels(self) -> list[dict]:
        now = self.clock.now()
        return [c for c in self._channels.values() if c["expires_at"] > now]

    def _resource_uri(self, module: str) -> str:
        return f"{self.base_url}/crm/v2/{module}"  # Zoho's samples say /crm/v2/ even on v7+

    def _channel_view(self, channel: dict) -> dict:
        return {
            "channel_id": channel["channel_id"], "events": list(channel["events"]),
            "channel_expiry": _stamp(channel["expires_at"]), "token": channel["token"],
            "notify_url": channel["notify_url"],
            "return_affected_field_values": channel["return_affected_field_values"],
            "notify_on_related_action": channel["notify_on_related_action"],
        }

    def _channel_events(self, channel: dict) -> list[dict]:
        modules = dict.fromkeys(e.split(".")[0] for e in channel["events"])
        return [{"channel_id": channel["channel_id"], "resource_name": m, "resource_id": self.modules[m].id,
                 "resource_uri": self._resource_uri(m), "channel_expiry": _stamp(channel["expires_at"]),
                 "notification_condition": []} for m in modules]

    def _expiry(self, raw, path: str) -> datetime:
        """channel_expiry: missing or beyond one week silently becomes one hour (Zoho v4+);
        fractional seconds are refused with INVALID_DATA (3P reports)."""
        now = self.clock.now().replace(microsecond=0)
        if raw in (None, ""):
            return now + CHANNEL_DEFAULT
        try:
            moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or moment.microsecond or "." in raw or moment <= now:
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "channel_expiry", f"{path}.channel_expiry"))
        return moment if moment - now <= CHANNEL_MAX else now + CHANNEL_DEFAULT

    def _channel_settings(self, item, path: str, base: dict | None) -> dict:
        """Validates one watch item; ``base`` is the channel being patched (keys not sent stay)."""
        if not isinstance(item, dict):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "watch", path))
        channel = dict(base or {"token": None, "return_affected_field_values": False,
                                "notify_on_related_action": True})
        for key in ("channel_id", "events", "notify_url"):
            if base is None and item.get(key) in (None, "", []):
                raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", key, f"{path}.{key}"))
        channel["channel_id"] = str(item.get("channel_id", channel.get("channel_id")))
        if "events" in item:
            events = item["events"]
            for event in events if isinstance(events, list) else [None]:
                module, _, action = str(event).partition(".")
                if module not in self.modules or action not in ("create", "edit", "delete", "all"):
                    raise _Rejected(_item_error("INVALID_DATA", "invalid data", "events", f"{path}.events"))
            if item.get("_delete_events") is True and base is not None:
                events = [e for e in channel["events"] if e not in events]
            channel["events"] = list(events)
        if "notify_url" in item:
            if not str(item["notify_url"]).startswith(("http://", "https://")):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "notify_url", f"{path}.notify_url"))
            channel["notify_url"] = item["notify_url"]
        if "token" in item:
            if item["token"] is not None and (not isinstance(item["token"], str) or len(item["token"]) > MAX_CHANNEL_TOKEN):
                raise _Rejected(_item_error("INVALID_DATA", "invalid data", "token", f"{path}.token"))
            channel["token"] = item["token"]
        for key in ("return_affected_field_values", "notify_on_related_action"):
            if key in item:
                channel[key] = bool(item[key])
        if base is None or "channel_expiry" in item:
            channel["expires_at"] = self._expiry(item.get("channel_expiry"), path)
        return channel

    def _watch_items(self, body) -> list | None:
        items = body.get("watch") if isinstance(body, dict) else None
        return items if isinstance(items, list) and items else None

    def _watch_write(self, body, *, existing_only: bool, patch: bool, message: str, ok_status: int) -> Response:
        items = self._watch_items(body)
        if items is None:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "watch", "json_path": "$.watch"})
        results = []
        with self._lock:
            for n, item in enumerate(items):
                path = f"$.watch[{n}]"
                channel_id = str(item.get("channel_id")) if isinstance(item, dict) else None
                live = {c["channel_id"]: c for c in self._live_channels()}
                if existing_only and channel_id not in live:
                    results.append({"code": "NOT_SUBSCRIBED", "details": {},
                                    "message": "Not subscribed for actions-watch of the given channel",
                                    "status": "error"})
                    continue
                try:
                    channel = self._channel_settings(item, path, live[channel_id] if patch else None)
                except _Rejected as exc:
                    results.append(exc.error)
                    continue
                self._channels[channel["channel_id"]] = channel
                results.append({"code": "SUCCESS", "details": {"events": self._channel_events(channel)},
                                "message": message, "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        status = ok_status if ok == len(results) else 202 if ok else 400  # 202 = partly failed (OAS)
        return _json({"watch": results}, status)

    def _watch_enable(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=False, patch=False, ok_status=201,
                                 message="Successfully subscribed for actions-watch of the given module")

    def _watch_replace(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=True, patch=False, ok_status=200,
                                 message="Successfully updated the subscribe details")

    def _watch_patch(self, request: Request, body) -> Response:
        return self._watch_write(body, existing_only=True, patch=True, ok_status=200,
                                 message="Successfully updated the subscribe details")

    def _watch_list(self, request: Request, body) -> Response:
        with self._lock:
            rows = self._live_channels()
            if request.args.get("channel_id"):
                rows = [c for c in rows if c["channel_id"] == request.args["channel_id"]]
            if request.args.get("module"):
                rows = [c for c in rows if any(e.startswith(request.args["module"] + ".") for e in c["events"])]
            if not rows:
                return Response(status=204)
            watch = [self._channel_view(c) for c in rows]
        return _json({"watch": watch, "info": {"per_page": 200, "page": 1, "count": len(watch), "more_records": False}})

    def _watch_disable(self, request: Request, body) -> Response:
        ids = [i for i in request.args.get("channel_ids", "").split(",") if i]
        if not ids:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "channel_ids"})
        results = []
        with self._lock:
            for channel_id in ids:
                if self._channels.pop(channel_id, None) is None:
                    results.append({"code": "NOT_SUBSCRIBED", "details": {},
                                    "message": "Not subscribed for actions-watch of the given channel",
                                    "status": "error"})
                else:
                    results.append({"code": "SUCCESS", "details": {"channel_id": channel_id},
                                    "message": "Successfully un-subscribed from actions-watch", "status": "success"})
        ok = sum(r["status"] == "success" for r in results)
        return _json({"watch": results}, 200 if ok == len(results) else 202 if ok else 400)

    def _notify(self, module: str, operation: str, ids: list[str], changed: dict[str, list[str]]) -> None:
        """Queues one callback per live channel watching this module and operation (caller holds the lock)."""
        for channel in self._live_channels():
            events = channel["events"]
            action = next((a for a, op in EVENT_OPERATIONS.items() if op == operation), "")
            if f"{module}.all" not in events and f"{module}.{action}" not in events:
                continue
            # affected_fields shape per record id is UNVERIFIED (Zoho: "changed fields", values on request)
            affected = [{i: changed[i]} for i in ids if i in changed]
            payload = {
                "server_time": int(self.clock.time() * 1000),
                "query_params": dict(parse_qsl(urlsplit(channel["notify_url"]).query)),
                "module": module,
                "resource_uri": self._resource_uri(module),
                "ids": list(ids),
                "affected_fields": affected,
                "operation": operation,
                "channel_id": channel["channel_id"],
                "token": channel["token"],
            }
            if channel["return_affected_field_values"] and operation == "update":
                payload["affected_values"] = [
                    {"record_id": i, "values": {f: _plain(self._records[module][i].get(f)) for f in changed[i]}}
                    for i in ids if i in changed
                ]
            self._outbox.append((channel["notify_url"], payload))
