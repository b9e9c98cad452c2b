"""The Zoho sandbox's Records API: list, get, insert, update, upsert (duplicate check) and delete.

Per-record validation against the field metadata is validation.py's; each write notifies the
channels watching its module (channels.py). Zoho: https://www.zoho.com/crm/developer/docs/api/v8/
(get-records, insert-records, update-records, upsert-records, delete-records).
"""

from __future__ import annotations

from datetime import datetime

from werkzeug.wrappers import Request, Response

from connector.sandbox.zoho.render import _error, _item_error, _json, _plain, _Rejected, _same

MAX_WRITE_RECORDS = 100  # insert/update/upsert
MAX_LIST_FIELDS = 50
MAX_PER_PAGE = 200
API_USER = {"id": "4876876000000390001", "name": "Sandbox API User"}
PERSON_USER = {"id": "4876876000000390002", "name": "Sandbox Sales Person"}


class RecordsApi:
    """The records routes and the record hooks of ZohoSandbox (which holds the records)."""

    def records(self, module: str) -> list[dict]:
        with self._lock:
            return [self._render(module, r) for r in self._records[module].values()]

    def record(self, module: str, record_id: str) -> dict | None:
        with self._lock:
            rec = self._records[module].get(record_id)
            return self._render(module, rec) if rec else None

    def writes(self, module: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(w) for w in self._writes if module is None or w["module"] == module]

    def person_create(self, module: str, **fields) -> dict:
        """A person adds a record in the CRM UI: validated like the API, notifies channels."""
        with self._lock:
            try:
                clean = self._validate(module, fields, "$", existing=None)
            except _Rejected as exc:
                raise ValueError(exc.error) from None
            rec = self._insert(module, clean, PERSON_USER)
            self._notify(module, "insert", [rec["id"]], {})
            return self._render(module, rec)

    def person_edit(self, module: str, record_id: str, **changes) -> dict:
        with self._lock:
            existing = self._records[module][record_id]
            try:
                clean = self._validate(module, changes, "$", existing=existing)
            except _Rejected as exc:
                raise ValueError(exc.error) from None
            changed = self._update(module, existing, clean, PERSON_USER)
            self._notify(module, "update", [record_id], {record_id: changed})
            return self._render(module, existing)

    def person_delete(self, module: str, record_id: str) -> None:
        with self._lock:
            self._unindex(module, self._records[module].pop(record_id))
            self._forget_references(module, [record_id])
            self._notify(module, "delete", [record_id], {})

    def relate(self, module: str, record_id: str, related: str, related_id: str) -> None:
        """A person adds a record to another's many-to-many related list, as a product to a deal (Zoho "Update
        Related Records", https://www.zoho.com/crm/developer/docs/api/v8/update-related-records.html; a
        quantity on the relation is not modelled: UNVERIFIED)."""
        with self._lock:
            if record_id not in self._records[module] or related_id not in self._records[related]:
                raise ValueError(f"no {module} {record_id} or {related} {related_id}")
            listed = self._relations.setdefault((module, record_id, related), [])
            if related_id not in listed:
                listed.append(related_id)

    def _forget_references(self, module: str, ids: list[str]) -> None:
        """A deleted record's notes go with it and lookups to it become empty (Zoho moves the record to the
        recycle bin; what its lookups and notes show meanwhile is UNVERIFIED: this is what a person sees)."""
        gone = set(ids)
        for other, specs in self.fields.items():
            for spec in specs.values():
                if spec.lookup != module and spec.data_type != "parent":
                    continue
                for rec in list(self._records[other].values()):
                    value = rec.get(spec.api_name)
                    if not isinstance(value, dict) or value.get("id") not in gone:
                        continue
                    if spec.data_type == "parent" and value["module"]["api_name"] == module:
                        self._unindex(other, self._records[other].pop(rec["id"]))
                    elif spec.lookup == module:
                        rec[spec.api_name] = None

    # ----------------------------------------------------------------- related lists

    def _get_related(self, module: str, record_id: str, related: str, request: Request) -> Response:
        """GET /{module}/{id}/{related_list}: the records of ``related`` whose lookup points at this record
        (Zoho "Get Related Records", https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html).
        A custom lookup's related list is named here after the module holding the lookup (the real
        api_name comes from GET /settings/related_lists: UNVERIFIED); Notes lists the record's notes.
        ``fields`` is required as on the list route; 204 when nothing is related."""
        wanted = [f for f in request.args.get("fields", "").split(",") if f.strip()]
        if not wanted:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "fields"})
        with self._lock:
            if record_id not in self._records[module]:
                return _error(400, "INVALID_DATA", "the related id given seems to be invalid", {"id": record_id})
            if related not in self.modules:
                return _error(400, "INVALID_DATA", "the relation name given seems to be invalid",
                              {"param_name": "related_list"})
            if related == "Notes":
                keys = [s.api_name for s in self.fields["Notes"].values() if s.data_type == "parent"]
            else:
                keys = [s.api_name for s in self.fields[related].values() if s.lookup == module]
            rows = [rec for rec in self._records[related].values()
                    if any(isinstance(rec.get(k), dict) and rec[k].get("id") == record_id
                           and rec[k].get("module", {"api_name": module})["api_name"] == module for k in keys)]
            rows += [self._records[related][i] for i in self._relations.get((module, record_id, related), [])
                     if i in self._records[related]]
            if not rows:
                return Response(status=204)
            rows.sort(key=lambda r: int(r["id"]))
            data = [self._render(related, r, wanted) for r in rows[:MAX_PER_PAGE]]
        return _json({"data": data, "info": {"per_page": MAX_PER_PAGE, "count": len(data), "page": 1,
                                             "more_records": len(rows) > MAX_PER_PAGE}})

    # ----------------------------------------------------------------- GET

    def _get_list(self, module: str, request: Request) -> Response:
        args = request.args
        wanted = [f for f in args.get("fields", "").split(",") if f.strip()]
        if not wanted:  # mandatory since v3
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "fields"})
        if len(wanted) > MAX_LIST_FIELDS:
            return _error(400, "LIMIT_EXCEEDED", "Maximum number of fields exceeded",  # message UNVERIFIED
                          {"param_name": "fields", "limit": MAX_LIST_FIELDS})
        try:
            per_page = int(args.get("per_page", MAX_PER_PAGE))
            page = int(args.get("page", 1))
        except ValueError:
            return _error(400, "INVALID_DATA", "invalid data", {"param_name": "page"})
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return _error(400, "INVALID_DATA", "invalid data", {"param_name": "per_page" if page >= 1 else "page"})
        sort_by = args.get("sort_by", "id")
        sort_order = args.get("sort_order", "desc")  # Zoho's default order is desc
        if sort_by not in ("id", "Created_Time", "Modified_Time") or sort_order not in ("asc", "desc"):
            return _error(400, "INVALID_DATA", "invalid data",
                          {"param_name": "sort_by" if sort_order in ("asc", "desc") else "sort_order"})
        with self._lock:
            records = self._records[module]
            if args.get("ids"):
                rows = [records[i] for i in set(args["ids"].split(",")) if i in records]
            else:
                rows = list(records.values())
            since = request.headers.get("If-Modified-Since")
            if since:
                try:
                    cutoff = datetime.fromisoformat(since)
                except ValueError:
                    return _error(400, "INVALID_DATA", "invalid data", {"param_name": "If-Modified-Since"})
                rows = [r for r in rows if r["Modified_Time"] > cutoff]
                if not rows:
                    return Response(status=304)
            key = (lambda r: int(r["id"])) if sort_by == "id" else (lambda r: (r[sort_by], int(r["id"])))
            rows.sort(key=key, reverse=sort_order == "desc")
            chunk = rows[(page - 1) * per_page: page * per_page]
            if not chunk:
                return Response(status=204)
            data = [self._render(module, r, wanted) for r in chunk]
        return _json({"data": data, "info": {
            "per_page": per_page, "count": len(data), "page": page, "sort_by": sort_by, "sort_order": sort_order,
            "more_records": page * per_page < len(rows), "next_page_token": None, "previous_page_token": None,
            "page_token_expiry": None,
        }})

    def _get_one(self, module: str, record_id: str, request: Request) -> Response:
        wanted = [f for f in request.args.get("fields", "").split(",") if f.strip()] or None
        with self._lock:
            rec = self._records[module].get(record_id)
            if rec is None:
                return Response(status=204)  # Zoho's exact answer for an unknown id is UNVERIFIED
            return _json({"data": [self._render(module, rec, wanted)]})

    def _render(self, module: str, rec: dict, wanted: list[str] | None = None) -> dict:
        out = {}
        for key, value in rec.items():
            if wanted is not None and key != "id" and key not in wanted:
                continue
            spec = self.fields[module].get(key)
            if spec is not None and spec.lookup and value is not None:
                value = self._lookup_view(spec.lookup, value["id"])
            elif spec is not None and spec.data_type == "parent" and value is not None:
                module = value["module"]["api_name"]
                value = {"module": {"api_name": module, "id": self.modules[module].id},
                         **self._lookup_view(module, value["id"])}
            elif spec is not None and spec.data_type == "lineitem" and value:
                value = [{**line, "Product_Name": self._lookup_view("Products", line["Product_Name"]["id"])}
                         for line in value]
            out[key] = _plain(value)
        return out

    def _lookup_view(self, module: str, record_id: str) -> dict:
        target = self._records.get(module, {}).get(record_id, {})
        return {"id": record_id, "name": target.get(self.modules[module].display_field)}

    # ----------------------------------------------------------------- insert, update, upsert, delete

    def _write_request(self, module: str, body, op: str, record_id: str | None = None) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("data"), list) or not body["data"]:
            return _error(400, "MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "data", "json_path": "$.data"})
        items = body["data"]
        if len(items) > MAX_WRITE_RECORDS:
            return _error(400, "LIMIT_EXCEEDED", "Record count exceeded", {"limit": MAX_WRITE_RECORDS})
        trigger = body.get("trigger")  # None = omitted = workflows, approvals and blueprints run
        dup_fields = body.get("duplicate_check_fields") if op == "upsert" else None
        if record_id is not None:
            items = [{**items[0], "id": record_id}]
        results = []
        touched: dict[str, list[str]] = {"insert": [], "update": []}
        changed_fields: dict[str, list[str]] = {}
        with self._lock:
            partial = self._partial_writes > 0 and len(items) > 1
            self._partial_writes -= partial
            for index, item in enumerate(items):
                if partial and index % 2:
                    results.append(_item_error("INTERNAL_ERROR", "internal error", "data", f"$.data[{index}]"))
                    continue
                try:
                    result = self._write_one(module, item, index, op, dup_fields)
                except _Rejected as exc:
                    results.append(exc.error)
                    continue
                rec, action, changed, dup_field = result
                touched[action].append(rec["id"])
                if action == "update":
                    changed_fields[rec["id"]] = changed
                item_result = {
                    "code": "SUCCESS",
                    "details": {"Modified_Time": rec["Modified_Time"], "Modified_By": rec["Modified_By"],
                                "Created_Time": rec["Created_Time"], "id": rec["id"], "Created_By": rec["Created_By"]},
                    "message": "record added" if action == "insert" else "record updated",
                    "status": "success",
                }
                if op == "upsert":
                    item_result.update(action=action, duplicate_field=dup_field)
                results.append(item_result)
            self._writes.append({"module": module, "op": op, "count": len(items),
                                 "trigger": None if trigger is None else list(trigger)})
            for action, ids in touched.items():
                if ids:  # our own writes notify too, as on Zoho; echo suppression is the connector's job
                    self._notify(module, action, ids, changed_fields)
        ok = sum(r["status"] == "success" for r in results)
        # 201 all-ok / 207 mixed per Zoho's v8 status page; 400 when all fail is UNVERIFIED.
        status = (201 if op != "update" else 200) if ok == len(results) else 207 if ok else 400
        return _json({"data": results}, status)

    def _write_one(self, module: str, item, index: int, op: str, dup_fields) -> tuple[dict, str, list[str], str | None]:
        path = f"$.data[{index}]"
        if not isinstance(item, dict):
            raise _Rejected(_item_error("INVALID_DATA", "invalid data", "data", path))
        if op == "update":
            existing = self._existing(module, item.get("id"), path)
            clean = self._validate(module, item, path, existing=existing)
            return existing, "update", self._update(module, existing, clean, API_USER), None
        if op == "upsert":
            dup_field, existing = self._match(module, item, path, dup_fields)
            if existing is not None:
                clean = self._validate(module, item, path, existing=existing)
                return existing, "update", self._update(module, existing, clean, API_USER), dup_field
        clean = self._validate(module, item, path, existing=None)
        return self._insert(module, clean, API_USER), "insert", [], None

    def _existing(self, module: str, record_id, path: str) -> dict:
        if record_id in (None, ""):
            raise _Rejected(_item_error("MANDATORY_NOT_FOUND", "required field not found", "id", f"{path}.id"))
        rec = self._records[module].get(str(record_id))
        if rec is None:
            raise _Rejected(_item_error("INVALID_DATA", "the id given seems to be invalid", "id", f"{path}.id"))
        return rec

    def _match(self, module: str, item: dict, path: str, dup_fields) -> tuple[str | None, dict | None]:
        """Upsert matching: the listed fields in order, else the system field then unique fields."""
        system = self.modules[module].duplicate_field
        unique = [f.api_name for f in self.fields[module].values() if f.unique]
        if dup_fields:
            for name in dup_fields:
                if name != system and name not in unique:
                    raise _Rejected(_item_error("INVALID_DATA", "invalid data", str(name),
                                                "$.duplicate_check_fields"))
            order = list(dup_fields)
        else:
            order = [system, *unique]
        for name in order:
            value = item.get(name)
            if value in (None, ""):
                continue
            # several records can share a system field (plain inserts allow it); the oldest wins (UNVERIFIED)
            holders = self._holders(module, name, value)
            if holders:
                return name, holders[0]
        return None, None

    def _holders(self, module: str, name: str, value) -> list[dict]:
        """The records of ``module`` whose ``name`` equals ``value`` as ``_same`` compares, oldest first."""
        records = self._records[module]
        if not isinstance(value, str):  # numbers and the like are rare here: compare them one by one
            return [rec for rec in records.values() if _same(rec.get(name), value)]
        index = self._by_value.get((module, name))
        if index is None:
            index = self._by_value[(module, name)] = {}
            for rec in records.values():
                self._index_value(index, rec, name)
        ids = index.get(value.casefold(), ())
        return [records[i] for i in sorted(ids, key=int)]  # ids grow with time: the smallest is the oldest

    @staticmethod
    def _index_value(index: dict[str, set[str]], rec: dict, name: str) -> None:
        value = rec.get(name)
        if isinstance(value, str):
            index.setdefault(value.casefold(), set()).add(rec["id"])

    def _index(self, module: str, rec: dict) -> None:
        for (indexed_module, name), index in self._by_value.items():
            if indexed_module == module:
                self._index_value(index, rec, name)

    def _unindex(self, module: str, rec: dict) -> None:
        for (indexed_module, name), index in self._by_value.items():
            value = rec.get(name)
            if indexed_module == module and isinstance(value, str):
                ids = index.get(value.casefold())
                if ids is not None:
                    ids.discard(rec["id"])
                    if not ids:
                        del index[value.casefold()]

    def _insert(self, module: str, clean: dict, user: dict) -> dict:
        now = self.clock.now().replace(microsecond=0)
        rec = {"id": str(next(self._ids)), **{k: v for k, v in clean.items()},
               "Created_Time": now, "Modified_Time": now, "Created_By": dict(user), "Modified_By": dict(user)}
        self._derive(module, rec)
        self._records[module][rec["id"]] = rec
        self._index(module, rec)
        return rec

    def _update(self, module: str, rec: dict, clean: dict, user: dict) -> list[str]:
        changed = [k for k, v in clean.items() if rec.get(k) != v]
        self._unindex(module, rec)
        rec.update(clean)
        rec["Modified_Time"] = self.clock.now().replace(microsecond=0)
        rec["Modified_By"] = dict(user)
        self._derive(module, rec)
        self._index(module, rec)
        return changed

    def _delete(self, module: str, ids: str) -> Response:
        wanted = [i for i in ids.split(",") if i]
        if not wanted:
            return _error(400, "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                          {"param_name": "ids"})
        results, deleted = [], []
        with self._lock:
            for record_id in wanted:
                rec = self._records[module].pop(record_id, None)
                if rec is None:
                    results.append({"code": "INVALID_DATA", "details": {"id": record_id},
                                    "message": "the id given seems to be invalid", "status": "error"})
                else:
                    self._unindex(module, rec)
                    self._forget_references(module, [record_id])
                    deleted.append(record_id)
                    results.append({"code": "SUCCESS", "details": {"id": record_id},
                                    "message": "record deleted", "status": "success"})
            self._writes.append({"module": module, "op": "delete", "count": len(wanted), "trigger": None})
            if deleted:
                self._notify(module, "delete", deleted, {})
        return _json({"data": results}, 200 if deleted else 400)

