"""``HandbookClient``: a remote behavior handbook (``agentkit serve``) with the store's method names, so an
agent uses a handbook in another process as if it were local.

    async with HandbookClient("http://127.0.0.1:8765", token="...") as handbook:
        hits = await handbook.search("count without double counting", k=5)
        await handbook.record_usage(hits[0].behavior.name, "cited")

Errors map back to the store's: 404 -> ``BehaviorNotFound``, 422 -> ``ConfigError`` (with the fields and
reasons), 401 -> ``ConfigError`` about the token, anything else -> ``StoreError``. ``record_usage`` sends at
once (the service applies it and makes it visible to every client); ``record_usage_many`` sends one batch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl

from agentkit.errors import BehaviorNotFound, ConfigError, StoreError

from .behavior import Behavior, is_behavior_name
from .store import ImportReport, PruneDecision, PrunePolicy, SearchHit, parse_behavior_json

__all__ = ["HandbookClient"]


def _behavior_path(name: str, tail: str = "") -> str:
    """``/v1/behaviors/<name><tail>`` for a valid behavior name, percent-encoded; anything else is refused here,
    before a request is sent (a name like ``x/../../v1/compact`` must never become another route)."""
    if not is_behavior_name(name):
        raise BehaviorNotFound(f"no behavior named {name!r} (names match behavior_[a-z0-9_]+)")
    return f"/v1/behaviors/{_segment(name)}{tail}"


def _segment(text: str) -> str:
    """One path segment, percent-encoded so that no ``/``, ``..`` or ``#`` in it can change the route."""
    return quote(text, safe="").replace(".", "%2E")


class HandbookClient:
    """The async client of the handbook service."""

    def __init__(self, url: str, *, token: str, timeout: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"HandbookClient needs an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None,
                    text: bool = False) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            url = yarl.URL(self.url + path, encoded=True)  # already encoded: no dot-segment normalisation
            if params:
                url = url.with_query(params)
            async with self._session.request(method, url, json=body) as response:
                raw = await response.text()
                if response.status < 300:
                    return raw if text else json.loads(raw)
                try:
                    detail = json.loads(raw)
                except ValueError:
                    detail = {"error": raw}
        except aiohttp.ClientError as exc:
            raise StoreError(f"handbook service {self.url} unreachable: {exc}") from exc
        message = str(detail.get("error", detail))
        fields = detail.get("fields") or []
        if fields:
            message += " (" + "; ".join(f"{f['field']}: {f['reason']}" for f in fields) + ")"
        if response.status == 404:
            raise BehaviorNotFound(message)
        if response.status in (401, 413, 422):
            raise ConfigError(f"HTTP {response.status}: {message}")
        raise StoreError(f"handbook service answered HTTP {response.status}: {message}")

    async def add(self, behavior: Behavior, *, dedup: bool = True) -> Behavior:
        """Add a behavior; as in the store, version, status, statistics and timestamps are the service's (only
        name, instruction, topics and provenance are sent)."""
        sent = behavior.model_dump(mode="json", include={"name", "instruction", "topics", "provenance"})
        data = await self._call("POST", "/v1/behaviors", body={"behavior": sent, "dedup": dedup})
        return Behavior.model_validate(data)

    async def update(self, name: str, **changes: Any) -> Behavior:
        payload = {k: (list(v) if isinstance(v, tuple) else v) for k, v in changes.items()}
        return Behavior.model_validate(await self._call("PATCH", _behavior_path(name), body=payload))

    async def get(self, name: str, version: int | None = None) -> Behavior:
        params = {"version": str(version)} if version is not None else None
        return Behavior.model_validate(await self._call("GET", _behavior_path(name), params=params))

    async def history(self, name: str) -> list[Behavior]:
        data = await self._call("GET", _behavior_path(name, "/history"))
        return [Behavior.model_validate(b) for b in data["versions"]]

    async def rollback(self, name: str, version: int) -> Behavior:
        return Behavior.model_validate(await self._call("POST", _behavior_path(name, "/rollback"),
                                                        body={"version": version}))

    async def deprecate(self, name: str, reason: str = "") -> Behavior:
        return Behavior.model_validate(await self._call("POST", _behavior_path(name, "/deprecate"),
                                                        body={"reason": reason}))

    async def restore(self, name: str) -> Behavior:
        return Behavior.model_validate(await self._call("POST", _behavior_path(name, "/restore"), body={}))

    async def list_behaviors(self, *, status: str | None = "active") -> list[Behavior]:
        data = await self._call("GET", "/v1/behaviors", params={"status": status or "all"})
        return [Behavior.model_validate(b) for b in data["behaviors"]]

    async def search(self, query: str, k: int = 5, *, topics: Sequence[str] | None = None,
                     min_score: float | None = None, include_inactive: bool = False) -> list[SearchHit]:
        data = await self._call("POST", "/v1/search", body={
            "query": query, "k": k, "topics": list(topics) if topics else None, "min_score": min_score,
            "include_inactive": include_inactive})
        return [SearchHit(behavior=Behavior.model_validate(h["behavior"]), score=h["score"]) for h in data["hits"]]

    async def by_topic(self, topic: str, k: int = 40) -> list[Behavior]:
        data = await self._call("GET", f"/v1/topics/{_segment(topic)}", params={"k": str(k)})
        return [Behavior.model_validate(b) for b in data["behaviors"]]

    async def record_usage(self, name: str, event: str, count: int = 1) -> None:
        await self._call("POST", "/v1/usage", body={"events": [{"name": name, "event": event, "count": count}]})

    async def record_usage_many(self, events: Iterable[tuple[str, str]]) -> None:
        batch = [{"name": n, "event": e, "count": 1} for n, e in events]
        for lo in range(0, len(batch), 10_000):
            await self._call("POST", "/v1/usage", body={"events": batch[lo:lo + 10_000]})

    async def flush_usage(self) -> None:
        """Nothing to do: the service applies usage as it arrives."""

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = True) -> list[PruneDecision]:
        data = await self._call("POST", "/v1/prune", body={"policy": policy.model_dump(), "dry_run": dry_run})
        return [PruneDecision.model_validate(d) for d in data["decisions"]]

    async def compact(self) -> int:
        return int((await self._call("POST", "/v1/compact", body={}))["deleted"])

    async def count(self, *, status: str | None = "active") -> int:
        counts = (await self._call("GET", "/v1/stats"))["counts"]
        return int(sum(counts.values()) if status is None else counts.get(status, 0))

    async def export_jsonl(self, path: str | Path) -> int:
        text = await self._call("GET", "/v1/export", text=True)
        await asyncio.to_thread(Path(path).write_text, text, "utf-8")
        return len(text.splitlines())

    async def import_jsonl(self, path: str | Path) -> ImportReport:
        text = await asyncio.to_thread(Path(path).read_text, "utf-8")
        return ImportReport.model_validate(await self._call("POST", "/v1/import", body={"jsonl": text}))

    async def import_behavior_json(self, data: str | Mapping[str, Any], *, topics: Sequence[str] = ()) -> ImportReport:
        behaviors = dict(parse_behavior_json(data))
        return ImportReport.model_validate(await self._call(
            "POST", "/v1/import", body={"behaviors": behaviors, "topics": list(topics)}))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HandbookClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
