"""The behavior handbook over HTTP (aiohttp), so agents in other processes or languages share one store.

``agentkit serve --store PATH`` runs it. The embedded store is single-process; this service is how several
processes use one: the service process owns the store and every client goes through it (the Python client
is ``agentkit.memory.client.HandbookClient``, with the store's method names).

Rules: every ``/v1`` route needs ``Authorization: Bearer <token>`` (401 otherwise; ``/health`` and
``/openapi.json`` are open); request bodies above ``max_body`` bytes get 413; invalid input gets 422 with
``{"error": ..., "fields": [{"field": ..., "reason": ...}]}``; an unknown behavior gets 404. All writes go
through the store's own methods, so the same validation, dedup, capacity and versioning apply as in-process.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import BehaviorNotFound, ConfigError, StoreError, validation_problems
from agentkit.log import get_logger
from agentkit.memory import Behavior, PrunePolicy, QdrantBehaviorStore
from agentkit.memory.behavior import USAGE_EVENTS

__all__ = ["DEFAULT_MAX_BODY", "create_app", "generate_token", "openapi_spec"]

_log = get_logger(__name__)
DEFAULT_MAX_BODY = 1 << 20
STORE_KEY: web.AppKey[QdrantBehaviorStore] = web.AppKey("store", QdrantBehaviorStore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def generate_token() -> str:
    return secrets.token_urlsafe(32)


class _Search(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=200)
    topics: list[str] | None = None
    min_score: float | None = None
    include_inactive: bool = False


class _Add(BaseModel):
    model_config = ConfigDict(extra="forbid")
    behavior: Behavior
    dedup: bool = True


class _Update(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: str | None = None
    topics: list[str] | None = None
    status: str | None = None
    note: str | None = None


class _UsageEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    event: str
    count: int = Field(default=1, ge=1, le=1_000_000)


class _Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[_UsageEvent] = Field(max_length=10_000)


class _Prune(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: PrunePolicy
    dry_run: bool = True


class _Import(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jsonl: str | None = None
    """An ``export`` (JSON Lines): imported exactly."""
    behaviors: dict[str, Any] | None = None
    """The paper's ``{"behavior_name": "instruction"}`` JSON: added with dedup."""
    topics: list[str] = []


class _Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)


class _Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""


def _fields(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": field, "reason": reason} for field, reason in validation_problems(exc, root="body")]


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    try:
        data = json.loads(raw or b"{}")
    except json.JSONDecodeError as exc:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": "body is not JSON", "fields": [{"field": "body", "reason": str(exc)}]}),
            content_type="application/json") from None
    return model.model_validate(data)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return _json({"error": "invalid input", "fields": _fields(exc)}, 422)
    except BehaviorNotFound as exc:
        return _json({"error": str(exc)}, 404)
    except ConfigError as exc:
        return _json({"error": str(exc), "fields": []}, 422)
    except StoreError as exc:
        _log.error("store error", error=str(exc))
        return _json({"error": str(exc)}, 503)


def _auth(token: str) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            given = request.headers.get("Authorization", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())):
                return _json({"error": "missing or wrong bearer token (Authorization: Bearer <token>)"}, 401)
        return await handler(request)

    return check


def _store(request: web.Request) -> QdrantBehaviorStore:
    return request.app[STORE_KEY]


def _dump(behavior: Behavior) -> dict[str, Any]:
    return behavior.model_dump(mode="json")


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "behaviors": await _store(request).count()})


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_spec())


async def _search(request: web.Request) -> web.Response:
    body: _Search = await _body(request, _Search)
    hits = await _store(request).search(body.query, body.k, topics=body.topics, min_score=body.min_score,
                                        include_inactive=body.include_inactive)
    return _json({"hits": [{"behavior": _dump(h.behavior), "score": h.score} for h in hits]})


async def _list(request: web.Request) -> web.Response:
    status = request.query.get("status", "active")
    behaviors = await _store(request).list_behaviors(status=None if status == "all" else status)
    return _json({"behaviors": [_dump(b) for b in behaviors]})


async def _get(request: web.Request) -> web.Response:
    version = request.query.get("version")
    try:
        number = int(version) if version is not None else None
    except ValueError:
        raise ConfigError("version must be an integer") from None
    return _json(_dump(await _store(request).get(request.match_info["name"], number)))


async def _history(request: web.Request) -> web.Response:
    return _json({"versions": [_dump(b) for b in await _store(request).history(request.match_info["name"])]})


async def _add(request: web.Request) -> web.Response:
    body: _Add = await _body(request, _Add)
    return _json(_dump(await _store(request).add(body.behavior, dedup=body.dedup)), 201)


async def _update(request: web.Request) -> web.Response:
    body: _Update = await _body(request, _Update)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise ConfigError("nothing to change: give instruction, topics, status or note")
    return _json(_dump(await _store(request).update(request.match_info["name"], **changes)))


async def _rollback(request: web.Request) -> web.Response:
    body: _Rollback = await _body(request, _Rollback)
    return _json(_dump(await _store(request).rollback(request.match_info["name"], body.version)))


async def _deprecate(request: web.Request) -> web.Response:
    body: _Reason = await _body(request, _Reason)
    return _json(_dump(await _store(request).deprecate(request.match_info["name"], body.reason)))


async def _restore(request: web.Request) -> web.Response:
    return _json(_dump(await _store(request).restore(request.match_info["name"])))


async def _topic(request: web.Request) -> web.Response:
    k = int(request.query.get("k", "40"))
    return _json({"behaviors": [_dump(b) for b in await _store(request).by_topic(request.match_info["topic"], k)]})


async def _usage(request: web.Request) -> web.Response:
    body: _Usage = await _body(request, _Usage)
    bad = [e.event for e in body.events if e.event not in USAGE_EVENTS]
    if bad:
        raise ConfigError(f"unknown usage event(s) {sorted(set(bad))}; use {', '.join(USAGE_EVENTS)}")
    store = _store(request)
    for e in body.events:
        await store.record_usage(e.name, e.event, e.count)
    await store.flush_usage()  # visible to every client at once
    return _json({"recorded": sum(e.count for e in body.events)}, 202)


async def _prune(request: web.Request) -> web.Response:
    body: _Prune = await _body(request, _Prune)
    decisions = await _store(request).prune(body.policy, dry_run=body.dry_run)
    return _json({"dry_run": body.dry_run, "decisions": [d.model_dump() for d in decisions]})


async def _compact(request: web.Request) -> web.Response:
    return _json({"deleted": await _store(request).compact()})


async def _export(request: web.Request) -> web.Response:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.jsonl"
        await _store(request).export_jsonl(path)
        text = path.read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/x-ndjson")


async def _import(request: web.Request) -> web.Response:
    import tempfile
    from pathlib import Path

    body: _Import = await _body(request, _Import)
    if (body.jsonl is None) == (body.behaviors is None):
        raise ConfigError("give exactly one of jsonl (an export) or behaviors ({name: instruction})")
    store = _store(request)
    if body.behaviors is not None:
        report = await store.import_behavior_json(body.behaviors, topics=body.topics)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "import.jsonl"
            path.write_text(body.jsonl or "", encoding="utf-8")
            report = await store.import_jsonl(path)
    return _json(report.model_dump())


async def _stats(request: web.Request) -> web.Response:
    store = _store(request)
    counts = {s: await store.count(status=s) for s in ("active", "deprecated", "pruned")}
    return _json({"counts": counts, "embedder": store.embedder.name, "dim": store.embedder.dim})


_ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", "/health", _health, "Liveness and the number of active behaviors (no auth)."),
    ("GET", "/openapi.json", _openapi, "This API's OpenAPI description (no auth)."),
    ("POST", "/v1/search", _search, "Behaviors closest to a query: {query, k, topics, min_score, include_inactive}."),
    ("GET", "/v1/behaviors", _list, "Latest versions; ?status=active|deprecated|pruned|all."),
    ("POST", "/v1/behaviors", _add, "Add a behavior (merged into a near-duplicate unless dedup is false): {behavior, dedup}."),
    ("GET", "/v1/behaviors/{name}", _get, "One behavior; ?version=N for an older version."),
    ("PATCH", "/v1/behaviors/{name}", _update, "A new version with {instruction, topics, status, note}."),
    ("GET", "/v1/behaviors/{name}/history", _history, "Every version, oldest first."),
    ("POST", "/v1/behaviors/{name}/rollback", _rollback, "A new version equal to {version}."),
    ("POST", "/v1/behaviors/{name}/deprecate", _deprecate, "Deprecate: {reason}."),
    ("POST", "/v1/behaviors/{name}/restore", _restore, "Undo a prune or deprecation."),
    ("GET", "/v1/topics/{topic}", _topic, "Active behaviors with a topic, most useful first; ?k=40."),
    ("POST", "/v1/usage", _usage, "Usage events {events: [{name, event, count}]}; event in retrieved, cited, cited_correct, cited_wrong."),
    ("POST", "/v1/prune", _prune, "Prune by {policy, dry_run}; returns the decisions and reasons."),
    ("POST", "/v1/compact", _compact, "Delete pruned behaviors for real."),
    ("GET", "/v1/export", _export, "Every version as JSON Lines."),
    ("POST", "/v1/import", _import, "Import {jsonl} (an export, exactly) or {behaviors, topics} (the paper's JSON)."),
    ("GET", "/v1/stats", _stats, "Counts by status and the embedder."),
]


def openapi_spec() -> dict[str, Any]:
    """A minimal OpenAPI 3.1 description of the routes (request schemas from the pydantic models)."""
    bodies: dict[str, type[BaseModel]] = {"/v1/search": _Search, "/v1/behaviors": _Add, "/v1/usage": _Usage,
                                          "/v1/prune": _Prune, "/v1/import": _Import}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, _, summary in _ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {"200": {"description": "OK"}}}
        if path.startswith("/v1/"):
            op["security"] = [{"bearer": []}]
            op["responses"].update({"401": {"description": "missing or wrong token"},
                                    "413": {"description": "body too large"},
                                    "422": {"description": "invalid input, with fields and reasons"}})
        model: type[BaseModel] | None = bodies.get(path) if method == "POST" else (_Update if method == "PATCH" else None)
        if model is not None:
            op["requestBody"] = {"content": {"application/json": {"schema": model.model_json_schema()}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "agentkit behavior handbook", "version": "1"}, "paths": paths,
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}


def create_app(store: QdrantBehaviorStore, *, token: str, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application serving ``store``; it opens the store on start-up and closes it on clean-up."""
    if not token:
        raise ConfigError("the handbook service needs a bearer token")
    app = web.Application(middlewares=[_auth(token), _errors], client_max_size=max_body)
    app[STORE_KEY] = store
    for method, path, handler, _ in _ROUTES:
        app.router.add_route(method, path, handler)

    async def on_startup(app: web.Application) -> None:
        await app[STORE_KEY].open()

    async def on_cleanup(app: web.Application) -> None:
        await app[STORE_KEY].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
