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

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from agentkit.errors import BehaviorNotFound, ConfigError, StoreError, validation_problems
from agentkit.faces.web import (
    BodyError,
    FaceError,
    agentkit_error,
    agentkit_errors,
    face_middleware,
    generate_token,
    read_json,
)
from agentkit.faces.web import json_response as _json
from agentkit.log import get_logger
from agentkit.memory import Behavior, ImportReport, Provenance, PruneDecision, PrunePolicy, QdrantBehaviorStore
from agentkit.memory.behavior import MAX_INSTRUCTION_CHARS, MAX_NAME_CHARS, NAME_PATTERN, is_behavior_name

__all__ = ["DEFAULT_MAX_BODY", "create_app", "generate_token", "openapi_spec"]

_log = get_logger(__name__)
DEFAULT_MAX_BODY = 1 << 20
STORE_KEY: web.AppKey[QdrantBehaviorStore] = web.AppKey("store", QdrantBehaviorStore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
B = TypeVar("B", bound=BaseModel)


def _not_null(schema: dict[str, Any]) -> None:
    """An optional field of a request body may be left out, not sent as null: its schema loses the null branch
    (pydantic writes ``anyOf: [T, null]`` for ``T | None``)."""
    for spec in schema.get("properties", {}).values():
        branches = spec.get("anyOf")
        if isinstance(branches, list) and {"type": "null"} in branches and len(branches) == 2:
            [kept] = [b for b in branches if b != {"type": "null"}]
            spec.pop("anyOf")
            spec.pop("default", None)
            spec.update(kept)


def _at_least_one(schema: dict[str, Any]) -> None:
    _not_null(schema)
    schema["minProperties"] = 1


def _exactly_one_source(schema: dict[str, Any]) -> None:
    _not_null(schema)
    schema["oneOf"] = [{"required": ["jsonl"]}, {"required": ["behaviors"]}]


_STRICT = ConfigDict(extra="forbid")
"""Request bodies: unknown fields refused. Types are checked by the OpenAPI document itself (``_body`` validates
every body against it before the model reads it), so what the document accepts is what the service accepts."""
Topic = Annotated[str, Field(max_length=100, description="a topic (at most 100 characters, as the store keeps them)")]
Name = Annotated[str, Field(pattern=NAME_PATTERN.pattern, max_length=MAX_NAME_CHARS,
                            description="behavior_ followed by lowercase letters, digits and underscores")]


class _Search(BaseModel):
    model_config = _STRICT
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=200)
    topics: list[Topic] | None = Field(default=None, max_length=32)
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    include_inactive: bool = False


class _NewBehavior(BaseModel):
    """What a caller may set on a new behavior; version, status, statistics and timestamps are the store's."""

    model_config = _STRICT
    name: Name
    instruction: str = Field(min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    topics: list[Topic] = Field(default_factory=list, max_length=32)
    provenance: list[Provenance] = Field(default_factory=list, max_length=100)


class _Add(BaseModel):
    model_config = _STRICT
    behavior: _NewBehavior
    dedup: bool = True


class _Update(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_at_least_one)
    instruction: str | None = Field(default=None, min_length=1, max_length=MAX_INSTRUCTION_CHARS)
    topics: list[Topic] | None = Field(default=None, max_length=32)
    status: Literal["active", "deprecated", "pruned"] | None = None
    note: str | None = Field(default=None, max_length=2000)


class _UsageEvent(BaseModel):
    model_config = _STRICT
    name: Name
    event: Literal["retrieved", "cited", "cited_correct", "cited_wrong"]
    count: int = Field(default=1, ge=1, le=1_000_000)


class _Usage(BaseModel):
    model_config = _STRICT
    events: list[_UsageEvent] = Field(max_length=10_000)


class _Prune(BaseModel):
    model_config = _STRICT
    policy: PrunePolicy
    dry_run: bool = True


class _Import(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_source)
    jsonl: str | None = Field(default=None, description="An export (JSON Lines), imported exactly.")
    behaviors: dict[str, str] | None = Field(default=None,
                                             description="The paper's {behavior_name: instruction} JSON, with dedup.")
    topics: list[Topic] = Field(default_factory=list, max_length=32)


class _Rollback(BaseModel):
    model_config = _STRICT
    version: int = Field(ge=1, le=1_000_000)


class _Reason(BaseModel):
    model_config = _STRICT
    reason: str = Field(default="", max_length=2000)


class _Empty(BaseModel):
    model_config = _STRICT


class _GetQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1, le=1_000_000)


class _ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "deprecated", "pruned", "all"] = "active"


class _TopicQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=40, ge=1, le=1000)


class _Error(BaseModel):
    error: str
    fields: list[dict[str, str]] = []


class _BehaviorList(BaseModel):
    behaviors: list[Behavior]


class _Versions(BaseModel):
    versions: list[Behavior]


class _Hit(BaseModel):
    behavior: Behavior
    score: float


class _Hits(BaseModel):
    hits: list[_Hit]


class _Recorded(BaseModel):
    recorded: int


class _Decisions(BaseModel):
    dry_run: bool
    decisions: list[PruneDecision]


class _Deleted(BaseModel):
    deleted: int


class _Stats(BaseModel):
    counts: dict[str, int]
    embedder: str
    dim: int


class _Health(BaseModel):
    status: str
    behaviors: int


@functools.cache
def _document_validator(model: type[BaseModel]) -> Any:
    """A JSON Schema validator of ``model``'s schema as the OpenAPI document publishes it (its references
    resolved in the document)."""
    from jsonschema import Draft202012Validator

    document = openapi_spec()
    return Draft202012Validator({**document, "$ref": f"#/components/schemas/{model.__name__}"})


def _field(path: Any) -> str:
    return ".".join(str(p) for p in path) or "body"


async def _body(request: web.Request, model: type[B]) -> B:
    """The request body validated against the OpenAPI document (the same schema the document publishes: what
    it accepts is accepted, what it refuses is a 422 naming each field), then read into ``model``. No body is
    ``{}``; invalid UTF-8 and invalid JSON are 422 too."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    try:
        data = read_json(raw)
    except BodyError as exc:
        raise FaceError(422, "invalid input", fields=[{"field": "body", "reason": str(exc)}]) from None
    errors = sorted(_document_validator(model).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise FaceError(422, "invalid input", fields=[{"field": _field(e.absolute_path), "reason": e.message[:300]}
                                                      for e in errors[:20]])
    return model.model_validate(data)


def _query(request: web.Request, model: type[B]) -> B:
    """The query string validated into ``model`` (a 422 naming ``query.<param>``)."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise FaceError(422, "invalid input", fields=[
            {"field": f"query.{field.removeprefix('query.')}", "reason": reason}
            for field, reason in validation_problems(exc, root="query")]) from None


def _name(request: web.Request) -> str:
    """The ``{name}`` path parameter, which must be a valid behavior name (else 404: no such behavior)."""
    name = request.match_info["name"]
    if not is_behavior_name(name):
        raise BehaviorNotFound(f"no behavior named {name!r} (names match behavior_[a-z0-9_]+)")
    return name


def _errors(exc: BaseException) -> web.StreamResponse | None:
    """The service's errors in agentkit's shape: a missing behavior 404, a store that cannot answer 503 (logged),
    the rest as every agentkit face maps them (``agentkit_errors``)."""
    if isinstance(exc, BehaviorNotFound):
        return agentkit_error(404, str(exc))
    if isinstance(exc, StoreError):
        _log.error("store error", error=str(exc))
        return agentkit_error(503, str(exc))
    return agentkit_errors(exc)


def _store(request: web.Request) -> QdrantBehaviorStore:
    return request.app[STORE_KEY]


def _dump(behavior: Behavior) -> dict[str, Any]:
    return behavior.model_dump(mode="json")


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok", "behaviors": await _store(request).count()})


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_spec())


async def _search(request: web.Request) -> web.Response:
    body = await _body(request, _Search)
    hits = await _store(request).search(body.query, body.k, topics=body.topics, min_score=body.min_score,
                                        include_inactive=body.include_inactive)
    return _json({"hits": [{"behavior": _dump(h.behavior), "score": h.score} for h in hits]})


async def _list(request: web.Request) -> web.Response:
    status = _query(request, _ListQuery).status
    behaviors = await _store(request).list_behaviors(status=None if status == "all" else status)
    return _json({"behaviors": [_dump(b) for b in behaviors]})


async def _get(request: web.Request) -> web.Response:
    name, version = _name(request), _query(request, _GetQuery).version
    return _json(_dump(await _store(request).get(name, version)))


async def _history(request: web.Request) -> web.Response:
    name = _name(request)
    versions = await _store(request).history(name)
    if not versions:
        raise BehaviorNotFound(f"no behavior named {name!r}")
    return _json({"versions": [_dump(b) for b in versions]})


async def _add(request: web.Request) -> web.Response:
    body = await _body(request, _Add)
    new = body.behavior
    behavior = Behavior(name=new.name, instruction=new.instruction, topics=tuple(new.topics),
                        provenance=tuple(new.provenance))
    return _json(_dump(await _store(request).add(behavior, dedup=body.dedup)), 201)


async def _update(request: web.Request) -> web.Response:
    name = _name(request)
    body = await _body(request, _Update)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise ConfigError("nothing to change: give instruction, topics, status or note")
    return _json(_dump(await _store(request).update(name, **changes)))


async def _rollback(request: web.Request) -> web.Response:
    name = _name(request)
    body = await _body(request, _Rollback)
    store = _store(request)
    await store.get(name)  # no such behavior: 404
    try:
        return _json(_dump(await store.rollback(name, body.version)))
    except BehaviorNotFound as exc:  # the behavior exists, without that version: a conflict with its state
        raise FaceError(409, str(exc), fields=[{"field": "version", "reason": str(exc)}]) from None


async def _deprecate(request: web.Request) -> web.Response:
    name = _name(request)
    body = await _body(request, _Reason)
    return _json(_dump(await _store(request).deprecate(name, body.reason)))


async def _restore(request: web.Request) -> web.Response:
    name = _name(request)
    await _body(request, _Empty)
    return _json(_dump(await _store(request).restore(name)))


async def _topic(request: web.Request) -> web.Response:
    k = _query(request, _TopicQuery).k
    return _json({"behaviors": [_dump(b) for b in await _store(request).by_topic(request.match_info["topic"], k)]})


async def _usage(request: web.Request) -> web.Response:
    body = await _body(request, _Usage)
    store = _store(request)
    for name in dict.fromkeys(e.name for e in body.events):  # all or nothing: every name must exist
        await store.get(name)
    for e in body.events:
        await store.record_usage(e.name, e.event, e.count)
    await store.flush_usage()  # visible to every client at once
    return _json({"recorded": sum(e.count for e in body.events)}, 202)


async def _prune(request: web.Request) -> web.Response:
    body = await _body(request, _Prune)
    decisions = await _store(request).prune(body.policy, dry_run=body.dry_run)
    return _json({"dry_run": body.dry_run, "decisions": [d.model_dump() for d in decisions]})


async def _compact(request: web.Request) -> web.Response:
    await _body(request, _Empty)
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

    body = await _body(request, _Import)
    if (body.jsonl is None) == (body.behaviors is None):
        raise ConfigError("give exactly one of jsonl (an export) or behaviors ({name: instruction})")
    store = _store(request)
    if body.behaviors is not None:
        report = await store.import_behavior_json(body.behaviors, topics=body.topics)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "import.jsonl"
            path.write_text(body.jsonl or "", encoding="utf-8")
            try:
                report = await store.import_jsonl(path)
            except ConfigError as exc:  # its message names the server's temporary file: name the field instead
                raise ConfigError(str(exc).replace(str(path), "jsonl")) from None
    return _json(report.model_dump())


async def _stats(request: web.Request) -> web.Response:
    store = _store(request)
    counts = {s: await store.count(status=s) for s in ("active", "deprecated", "pruned")}
    return _json({"counts": counts, "embedder": store.embedder.name, "dim": store.embedder.dim})


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    reply: type[BaseModel] | None = None
    status: int = 200


_NAME_ROUTE = "/v1/behaviors/{name}"
_ROUTES: list[_Route] = [
    _Route("GET", "/health", _health, "Liveness and the number of active behaviors (no auth).", reply=_Health),
    _Route("GET", "/openapi.json", _openapi, "This API's OpenAPI description (no auth)."),
    _Route("POST", "/v1/search", _search, "Behaviors closest to a query.", body=_Search, reply=_Hits),
    _Route("GET", "/v1/behaviors", _list, "Latest versions of one status (or all).", query=_ListQuery,
           reply=_BehaviorList),
    _Route("POST", "/v1/behaviors", _add, "Add a behavior (merged into a near-duplicate unless dedup is false); "
           "version, status, statistics and timestamps are the store's.", body=_Add, reply=Behavior, status=201),
    _Route("GET", _NAME_ROUTE, _get, "One behavior; ?version=N for an older version.", query=_GetQuery,
           reply=Behavior),
    _Route("PATCH", _NAME_ROUTE, _update, "A new version with the given changes.", body=_Update, reply=Behavior),
    _Route("GET", _NAME_ROUTE + "/history", _history, "Every version, oldest first.", reply=_Versions),
    _Route("POST", _NAME_ROUTE + "/rollback", _rollback, "A new version equal to an older one.", body=_Rollback,
           reply=Behavior),
    _Route("POST", _NAME_ROUTE + "/deprecate", _deprecate, "Deprecate, with a reason.", body=_Reason, reply=Behavior),
    _Route("POST", _NAME_ROUTE + "/restore", _restore, "Undo a prune or deprecation.", body=_Empty, reply=Behavior),
    _Route("GET", "/v1/topics/{topic}", _topic, "Active behaviors with a topic, most useful first.",
           query=_TopicQuery, reply=_BehaviorList),
    _Route("POST", "/v1/usage", _usage, "Usage events, applied all or none (every name must exist).", body=_Usage,
           reply=_Recorded, status=202),
    _Route("POST", "/v1/prune", _prune, "Prune by a policy (a dry run unless dry_run is false); the decisions.",
           body=_Prune, reply=_Decisions),
    _Route("POST", "/v1/compact", _compact, "Delete pruned behaviors for real.", body=_Empty, reply=_Deleted),
    _Route("GET", "/v1/export", _export, "Every version as JSON Lines (application/x-ndjson)."),
    _Route("POST", "/v1/import", _import, "Import {jsonl} (an export, validated as a whole, then exactly) or "
           "{behaviors, topics} (the paper's JSON).", body=_Import, reply=ImportReport),
    _Route("GET", "/v1/stats", _stats, "Counts by status and the embedder.", reply=_Stats),
]


def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the routes, generated from the pydantic models the handlers validate
    requests with (bodies and query strings) and build replies from; every reference resolves to
    ``components/schemas``."""
    models = {m for r in _ROUTES for m in (r.body, r.reply) if m is not None} | {_Error}
    _, defs = models_json_schema([(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
                                 ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    error = {"application/json": {"schema": ref(_Error)}}
    paths: dict[str, dict[str, Any]] = {}
    for route in _ROUTES:
        responses: dict[str, Any] = {str(route.status): {"description": "OK"}}
        if route.reply is not None:
            responses[str(route.status)]["content"] = {"application/json": {"schema": ref(route.reply)}}
        elif route.path == "/v1/export":
            responses["200"]["content"] = {"application/x-ndjson": {"schema": {"type": "string"}}}
        else:
            responses["200"]["content"] = {"application/json": {"schema": {"type": "object"}}}
        op: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method.lower()}_{route.handler.__name__[1:]}",
                              "responses": responses}
        parameters: list[dict[str, Any]] = []
        for name in ("name", "topic"):
            if "{" + name + "}" in route.path:
                schema: dict[str, Any] = {"type": "string", "minLength": 1}
                if name == "name":
                    schema = {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$", "maxLength": MAX_NAME_CHARS}
                parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        if route.query is not None:
            query_schema = route.query.model_json_schema()
            for field, spec in query_schema.get("properties", {}).items():
                parameters.append({"name": field, "in": "query", "required": False, "schema": spec})
        if parameters:
            op["parameters"] = parameters
        if route.body is not None:  # a body whose every field is optional may be left out
            schema = route.body.model_json_schema()
            required = bool(schema.get("required") or schema.get("minProperties") or schema.get("oneOf"))
            op["requestBody"] = {"required": required,
                                 "content": {"application/json": {"schema": ref(route.body)}}}
        if route.path.startswith("/v1/"):
            op["security"] = [{"bearer": []}]
            responses["401"] = {"description": "missing or wrong bearer token", "content": error}
            if route.body is not None:
                responses["413"] = {"description": "body too large"}
            if route.body is not None or route.query is not None:
                responses["422"] = {"description": "invalid input, with the fields at fault", "content": error}
            if "{name}" in route.path or route.path == "/v1/usage":
                responses["404"] = {"description": "no such behavior", "content": error}
            if route.path.endswith("/rollback"):
                responses["409"] = {"description": "the behavior has no such version", "content": error}
            responses["503"] = {"description": "the store failed", "content": error}
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "agentkit behavior handbook", "version": "1"}, "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}


def create_app(store: QdrantBehaviorStore, *, token: str, max_body: int = DEFAULT_MAX_BODY) -> web.Application:
    """The aiohttp application serving ``store``; it opens the store on start-up and closes it on clean-up."""
    if not token:
        raise ConfigError("the handbook service needs a bearer token")
    app = web.Application(middlewares=[face_middleware(token=token, errors=_errors)], client_max_size=max_body)
    app[STORE_KEY] = store
    for route in _ROUTES:
        app.router.add_route(route.method, route.path, route.handler)

    async def on_startup(app: web.Application) -> None:
        await app[STORE_KEY].open()

    async def on_cleanup(app: web.Application) -> None:
        await app[STORE_KEY].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
