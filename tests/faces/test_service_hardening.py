"""The handbook service under hostile input: every probe of the hardening review (each once a 500, a
traceback or a silently wrong answer) is now a 4xx naming the field, the client cannot be steered to another
route, and a schemathesis fuzz run over the published OpenAPI document finds no 5xx and no reply that breaks
the schema, and leaves the store readable and unchanged by what it rejected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agentkit.errors import BehaviorNotFound
from agentkit.faces.service import openapi_spec
from agentkit.memory import HandbookClient

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`agentkit serve` in its own process (real HTTP on 127.0.0.1), with two behaviors in its store."""
    yield from _serve(tmp_path_factory)


def _serve(tmp_path_factory: pytest.TempPathFactory, log: list[str] | None = None) -> Iterator[str]:
    store = tmp_path_factory.mktemp("svc") / "store"
    proc = subprocess.Popen([sys.executable, "-m", "agentkit", "serve", "--store", str(store), "--port", "0",
                             "--token", TOKEN, "--max-body", "65536"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving the handbook" in line, proc.stderr.read() if proc.stderr else line
        url = line.split(" at ")[1].strip()
        for name, text in (("behavior_check_units", "convert every quantity to one unit first"),
                           ("behavior_work_backwards", "undo each step from the final state")):
            r = requests.post(f"{url}/v1/behaviors", json={"behavior": {"name": name, "instruction": text}},
                              headers=AUTH, timeout=60)
            assert r.status_code == 201, r.text
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        if log is not None:
            log.append(err)


def call(url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, url + path, headers={**AUTH, **kwargs.pop("headers", {})}, timeout=60, **kwargs)


BAD_UTF8 = b'{"query": "\xff\xfe caf\xe9"}'
PROBES: list[tuple[str, str, dict[str, Any], int, str]] = [
    # (method, path, request kwargs, expected status, a field or word the answer must name)
    ("POST", "/v1/search", {"data": BAD_UTF8}, 422, "body"),
    ("POST", "/v1/behaviors", {"data": b'{"behavior": {"name": "behavior_x", "instruction": "\xc3\x28"}}'}, 422, "body"),
    ("PATCH", "/v1/behaviors/behavior_check_units", {"data": b"\xff"}, 422, "body"),
    ("POST", "/v1/usage", {"data": b'{"events": [\xff]}'}, 422, "body"),
    ("POST", "/v1/prune", {"data": b"\x80\x81"}, 422, "body"),
    ("POST", "/v1/import", {"data": b'{"jsonl": "\xff"}'}, 422, "body"),
    ("POST", "/v1/behaviors/behavior_check_units/rollback", {"data": b"\xfe"}, 422, "body"),
    ("GET", "/v1/topics/Units?k=abc", {}, 422, "query.k"),
    ("GET", "/v1/topics/Units?k=null", {}, 422, "query.k"),
    ("GET", "/v1/topics/Units?k=-1", {}, 422, "query.k"),
    ("GET", "/v1/behaviors/behavior_check_units?version=x", {}, 422, "query.version"),
    ("GET", "/v1/behaviors?status=bogus", {}, 422, "query.status"),
    ("POST", "/v1/prune", {"json": {"policy": {"stale_after_days": 1e9}}}, 422, "stale_after_days"),
    ("POST", "/v1/import", {"json": {"jsonl": "[1]"}}, 422, "line 1"),
    ("POST", "/v1/usage", {"json": {"events": [{"name": "behavior_nobody", "event": "cited"}]}}, 404,
     "behavior_nobody"),
    ("POST", "/v1/behaviors", {"json": {"behavior": {"name": "behavior_cheat", "instruction": "x",
                                                     "stats": {"cited_correct": 1000000}}}}, 422, "stats"),
    ("POST", "/v1/behaviors", {"json": {"behavior": {"name": "behavior_cheat", "instruction": "x", "version": 9}}},
     422, "version"),
    ("POST", "/v1/search", {"json": {"query": "x", "include_inactive": 0}}, 422, "include_inactive"),
    ("GET", "/v1/behaviors/..%2Fstats", {}, 404, "no behavior"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "named"), PROBES,
                         ids=[f"{m} {p[:40]}" for m, p, *_ in PROBES])
def test_each_probe_is_a_4xx_naming_what_is_wrong(service: str, method: str, path: str, kwargs: dict[str, Any],
                                                  status: int, named: str) -> None:
    response = call(service, method, path, **kwargs)
    assert response.status_code == status, response.text
    assert named in response.text


def test_two_latest_versions_or_none_are_rejected_whole(service: str) -> None:
    row = {"name": "behavior_twice", "instruction": "x", "version": 1, "latest": True}
    two = json.dumps(row) + "\n" + json.dumps({**row, "version": 2}) + "\n"
    none = json.dumps({**row, "latest": False}) + "\n"
    for text, reason in ((two, "2 versions marked latest"), (none, "0 versions marked latest")):
        response = call(service, "POST", "/v1/import", json={"jsonl": text})
        assert response.status_code == 422 and reason in response.text
    assert call(service, "GET", "/v1/behaviors/behavior_twice").status_code == 404  # nothing was written


async def test_the_client_cannot_be_steered_to_another_route(service: str) -> None:
    async with HandbookClient(service, token=TOKEN) as handbook:
        before = await handbook.count(status=None)
        for name in ("x/../../../v1/compact#", "../stats", "behavior_a/../../compact", "behavior_ok%2F..", ""):
            with pytest.raises(BehaviorNotFound):
                await handbook.restore(name)
            with pytest.raises(BehaviorNotFound):
                await handbook.get(name)
        assert await handbook.by_topic("../../v1/stats") == []  # an odd topic is a topic, not a route
        assert await handbook.count(status=None) == before


def test_the_openapi_document_is_complete_and_valid() -> None:
    from openapi_spec_validator import validate

    spec = openapi_spec()
    validate(spec)  # resolvable references included
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(part[1:-1] for part in path.split("/") if part.startswith("{")), (method, path)
            if "requestBody" in op:  # required exactly when an empty body would not validate
                schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                model = spec["components"]["schemas"][schema]
                assert op["requestBody"]["required"] is bool(
                    model.get("required") or model.get("minProperties") or model.get("oneOf")), (method, path)
    assert "201" in spec["paths"]["/v1/behaviors"]["post"]["responses"]
    assert "202" in spec["paths"]["/v1/usage"]["post"]["responses"]
    assert "404" in spec["paths"]["/v1/behaviors/{name}"]["get"]["responses"]


def snapshot(url: str) -> str:
    return call(url, "GET", "/v1/export").text


def test_fuzz_the_service_from_its_openapi_document(service: str) -> None:
    """Every operation, with schema-conforming and schema-violating requests, bounded examples each
    (AGENTKIT_FUZZ_EXAMPLES, default 12): no 5xx ever, replies to conforming requests conform to the schema,
    and no write the service rejected changed the store (its export is compared before and after)."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    examples = int(os.environ.get("AGENTKIT_FUZZ_EXAMPLES", "12"))
    schema = schemathesis.openapi.from_dict(openapi_spec())
    started, cases, statuses = time.monotonic(), 0, {}
    skipped: list[str] = []
    current = {"negative": False}  # read by the check of the operation and mode being run
    from schemathesis import GenerationMode

    for result, mode in ((r, m) for r in schema.get_all_operations() for m in GenerationMode):
        operation = result.ok()
        current["negative"] = negative = mode is GenerationMode.NEGATIVE

        @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            nonlocal cases
            before = snapshot(service) if case.method.upper() != "GET" else None  # every write
            response = case.call(base_url=service, headers=AUTH, timeout=60)
            cases += 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
            if not current["negative"]:  # schema-conforming requests get schema-conforming replies
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                         response_schema_conformance])
            if response.status_code >= 400 and before is not None:
                assert snapshot(service) == before  # a rejected request changed nothing

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            assert negative  # an operation without inputs has no invalid request to send
            skipped.append(f"{operation.method.upper()} {operation.path}")
    assert call(service, "GET", "/v1/stats").status_code == 200  # still readable
    print(f"fuzz: {cases} cases over {len(list(schema.get_all_operations()))} operations in "
          f"{time.monotonic() - started:.1f} s; statuses {dict(sorted(statuses.items()))}; no invalid input "
          f"for {', '.join(skipped)}")
    assert cases >= 10


@pytest.fixture(scope="module")
def own_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A service of its own (the fuzz run changes the shared one's store)."""
    yield from _serve(tmp_path_factory)


SCHEMA_AGREES: list[tuple[str, str, dict[str, Any], int]] = [
    # (method, path, request kwargs, status): the ten places where the document and the validation disagreed
    ("POST", "/v1/search", {"json": {"query": "units", "k": 2.0}}, 200),  # an integral number is an integer
    ("GET", "/v1/topics/Units?k=3", {}, 200),
    ("POST", "/v1/usage", {"json": {"events": [{"name": "behavior_check_units", "event": "cited", "count": 2.0}]}},
     202),
    ("POST", "/v1/behaviors/behavior_check_units/rollback", {"json": {"version": 1.0}}, 200),
    ("POST", "/v1/prune", {"json": {"policy": {"capacity": False}}}, 422),  # a boolean is not a number
    ("POST", "/v1/prune", {"json": {"policy": {"unused_after_retrievals": True}}}, 422),
    ("POST", "/v1/search", {"json": {"query": "units", "k": "2"}}, 422),  # nor is a string
    ("PATCH", "/v1/behaviors/behavior_check_units", {"json": {"instruction": None}}, 422),  # null is not a value
    ("PATCH", "/v1/behaviors/behavior_check_units", {"json": {}}, 422),  # nothing to change: the schema says so
    ("PATCH", "/v1/behaviors/behavior_check_units", {"json": {"topics": ["t" * 101]}}, 422),  # the store's bound
    ("POST", "/v1/import", {"json": {}}, 422),  # exactly one of jsonl and behaviors
    ("POST", "/v1/import", {"json": {"jsonl": "", "behaviors": {}}}, 422),
    ("POST", "/v1/behaviors/behavior_check_units/deprecate", {}, 200),  # an optional body may be left out
    ("POST", "/v1/behaviors/behavior_check_units/restore", {}, 200),
    ("POST", "/v1/behaviors/behavior_check_units/rollback", {"json": {"version": 999}}, 409),  # no such version
    ("DELETE", "/v1/stats", {}, 405),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), SCHEMA_AGREES,
                         ids=[f"{m} {p[:30]} {json.dumps(k)[:40]}" for m, p, k, _ in SCHEMA_AGREES])
def test_the_document_is_the_validation(own_service: str, method: str, path: str, kwargs: dict[str, Any],
                                        status: int) -> None:
    """What the OpenAPI document accepts is accepted and what it refuses is refused (each of these disagreed
    once: an integral ``k: 172.0`` refused, ``capacity: false`` accepted, ...)."""
    from jsonschema import Draft202012Validator

    response = call(own_service, method, path, **kwargs)
    assert response.status_code == status, response.text
    spec = openapi_spec()
    operation = spec["paths"].get(path.split("?")[0].replace("behavior_check_units", "{name}"), {}).get(
        method.lower())
    if operation is not None and "requestBody" in operation and "json" in kwargs:
        validator = Draft202012Validator({**spec, **operation["requestBody"]["content"]["application/json"]["schema"]})
        assert validator.is_valid(kwargs["json"]) == (status < 400 or status == 409), kwargs
    if status == 405:
        assert "GET" in response.headers["Allow"]


def test_import_errors_do_not_show_server_paths(service: str) -> None:
    response = call(service, "POST", "/v1/import", json={"jsonl": "not json\n"})
    assert response.status_code == 422 and "/tmp" not in response.text and "import.jsonl" not in response.text
    assert "jsonl" in response.text


def test_the_service_conforms_to_its_document_under_every_check(tmp_path_factory: pytest.TempPathFactory) -> None:
    """schemathesis with ``--checks all`` (status codes, response schemas and headers, positive data accepted,
    negative data rejected, 405 with Allow for undeclared methods, stateful links) against a fresh service:
    0 failures, and nothing above a warning line in the service's log. Bounded: AGENTKIT_FUZZ_EXAMPLES examples
    per operation (default 12), one seed."""
    from pathlib import Path

    log: list[str] = []
    serving = _serve(tmp_path_factory, log)
    url = next(serving)
    config = Path(__file__).resolve().parents[1] / "data" / "schemathesis.toml"
    examples = os.environ.get("AGENTKIT_FUZZ_EXAMPLES", "12")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/openapi.json",
             "--checks", "all", "-H", f"Authorization: Bearer {TOKEN}", "--max-examples", examples, "--seed", "7",
             "--no-color"], capture_output=True, text=True, timeout=600, cwd=tmp_path_factory.mktemp("st"))
    finally:
        next(serving, None)
    summary = [line for line in run.stdout.splitlines() if "generated" in line]
    assert run.returncode == 0, run.stdout[-6000:]
    print(f"schemathesis --checks all: {summary[-1].strip() if summary else run.stdout[-300:]}")
    assert "Traceback" not in log[0] and "ERROR" not in log[0], log[0][-3000:]
