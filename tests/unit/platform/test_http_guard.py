"""The HTTP layer's refusal of input nobody expected, and what the OpenAPI document says about it; no I/O.

``InputGuard`` is driven as an ASGI app with hand-made messages: NUL characters in parameters, bodies over
the limit (by ``Content-Length`` and streamed without one), nesting too deep. ``document_errors`` is given a
small document.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from kumkm_shared.contracts.catalog import Stock
from kumkm_shared.contracts.types import Name, PhoneE164, PositiveMoney, RequiredText, validate_phone
from kumkm_shared.service.guard import (
    MAX_JSON_DEPTH,
    InputGuard,
    declared_length,
    decode_json_problems,
    json_depth_problems,
    query_nul_fields,
)
from kumkm_shared.service.http import NO_NUL, document_errors, links, send_error

# -- the pure checks -----------------------------------------------------------------------------------


def test_a_nul_in_a_query_value_or_name_is_named() -> None:
    assert query_nul_fields(b"city=Bekasi&province=%00x") == [
        ("province", "must not contain a NUL character")
    ]
    assert query_nul_fields(b"a%00b=1") == [("a\\x00b", "must not contain a NUL character")]
    assert query_nul_fields(b"city=Bekasi&empty=") == []
    assert query_nul_fields(b"") == []


def test_nesting_is_counted_and_named_without_recursion() -> None:
    shallow = {"proposal": [{"scheme": "tenor_extension", "extra_months": 12}]}
    assert json_depth_problems(shallow) == []
    deep: Any = "leaf"
    for _ in range(100_000):  # far deeper than the interpreter's recursion limit
        deep = [deep]
    problems = json_depth_problems({"impact": deep})
    assert len(problems) == 1
    field, message = problems[0]
    assert field == "impact." + ".".join(["0"] * (MAX_JSON_DEPTH - 1))
    assert "deeper than 32" in message


def test_a_body_too_deep_for_the_parser_is_refused_as_too_deep() -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    assert decode_json_problems(body) == [("body", "nests objects and arrays deeper than 32 levels")]
    assert decode_json_problems(b"not json") == []  # the route's own validation answers it
    assert decode_json_problems(b'{"a": 1}') == []


def test_content_length_is_read_when_it_is_a_number() -> None:
    assert declared_length([(b"Content-Length", b"12")]) == 12
    assert declared_length([(b"content-type", b"application/json")]) is None
    assert declared_length([(b"content-length", b"x")]) is None


# -- the middleware ------------------------------------------------------------------------------------


class Recorder:
    """The inner app: what it was given, and the answer it gives."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    async def __call__(self, _scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.body = b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(path: str = "/x", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": headers or []}


async def _call(
    scope: Any, chunks: list[bytes], *, limit: int = 100, params: dict[str, str] | None = None
) -> tuple[int, dict[str, Any] | None, Recorder]:
    inner = Recorder()
    guard = InputGuard(inner, max_body_bytes=limit, answer=send_error, path_params=lambda _: params or {})
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b""}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await guard(scope, receive, send)
    status = int(sent[0]["status"])
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, (json.loads(body) if status != 200 else None), inner


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    status, _, inner = await _call(_scope(), [b'{"a":', b" 1}"])
    assert status == 200
    assert inner.body == b'{"a": 1}'


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    status, body, inner = await _call(_scope(headers=[(b"content-length", b"101")]), [b"x" * 101])
    assert status == 413
    assert body == {
        "error": "body_too_large",
        "message": "the body is larger than 100 bytes",
        "errors": [{"field": "body", "message": "the body is larger than 100 bytes"}],
    }
    assert inner.body is None


async def test_a_streamed_body_past_the_limit_is_413() -> None:
    status, body, inner = await _call(_scope(), [b"x" * 60, b"x" * 60])  # no Content-Length
    assert status == 413
    assert body is not None
    assert body["error"] == "body_too_large"
    assert inner.body is None


async def test_a_nul_in_the_query_or_the_path_is_422_naming_it() -> None:
    status, body, inner = await _call(_scope(query=b"q=a%00"), [b""])
    assert status == 422
    assert body is not None
    assert body["errors"] == [{"field": "q", "message": "must not contain a NUL character"}]
    assert inner.body is None
    status, body, _ = await _call(_scope(path="/loans/a\x00b"), [b""], params={"loan_id": "a\x00b"})
    assert status == 422
    assert body is not None
    assert body["errors"] == [{"field": "loan_id", "message": "must not contain a NUL character"}]


async def test_json_nested_too_deep_is_422_and_other_bodies_pass() -> None:
    deep = b"[" * 40 + b"]" * 40
    json_headers = [(b"content-type", b"application/json")]
    status, body, _ = await _call(_scope(headers=json_headers), [deep])
    assert status == 422
    assert body is not None
    assert body["error"] == "validation_failed"
    status, _, inner = await _call(_scope(headers=[(b"content-type", b"text/plain")]), [deep])
    assert status == 200
    assert inner.body == deep


# -- the document --------------------------------------------------------------------------------------


def _document() -> dict[str, Any]:
    string = {"type": "string"}
    body = {"$ref": "#/components/schemas/B"}
    return {
        "openapi": "3.1.0",
        "paths": {
            "/health/live": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/loans/{loan_id}": {
                "get": {
                    "parameters": [{"name": "loan_id", "in": "path", "schema": dict(string)}],
                    "responses": {"200": {"description": "ok"}, "422": {"description": "FastAPI's"}},
                }
            },
            "/restructurings": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": body}}},
                    "responses": {"201": {"description": "made"}},
                }
            },
        },
        "components": {
            "schemas": {
                "B": {
                    "type": "object",
                    "properties": {
                        "note": dict(string),
                        "on": {"type": "string", "format": "date"},
                        "code": {"type": "string", "pattern": "^[a-z]+$"},
                        "secret": {"type": "string", "format": "password"},
                    },
                },
                "HTTPValidationError": {"type": "object"},
            }
        },
    }


def test_every_operation_lists_its_error_answers_with_the_envelope() -> None:
    document = document_errors(_document())
    responses = {
        f"{m.upper()} {p}": sorted(op["responses"])
        for p, item in document["paths"].items()
        for m, op in item.items()
    }
    assert responses == {
        "GET /health/live": ["200", "422"],
        "GET /loans/{loan_id}": ["200", "401", "403", "404", "422", "503"],
        "POST /restructurings": ["201", "401", "403", "409", "413", "422", "503"],
    }
    error = document["paths"]["/loans/{loan_id}"]["get"]["responses"]["422"]
    assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(envelope["required"]) == {"error", "message", "errors"}
    assert "HTTPValidationError" not in document["components"]["schemas"]  # no longer used
    assert document["paths"]["/loans/{loan_id}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/health/live"]["get"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_free_strings_carry_the_no_nul_pattern_and_others_keep_theirs() -> None:
    document = document_errors(_document())
    parameter = document["paths"]["/loans/{loan_id}"]["get"]["parameters"][0]["schema"]
    assert parameter["pattern"] == NO_NUL
    members = document["components"]["schemas"]["B"]["properties"]
    assert members["note"]["pattern"] == NO_NUL
    assert members["secret"]["pattern"] == NO_NUL  # "password" says nothing about NUL
    assert "pattern" not in members["on"]  # a date has no NUL in it
    assert members["code"]["pattern"] == "^[a-z]+$"
    assert re.match(NO_NUL, "Pasar sepi")
    assert not re.match(NO_NUL, "a\x00b")


def test_links_point_at_operations_by_reference() -> None:
    extra = links(201, "request_id", ("GET", "/restructurings/{request_id}"))
    assert extra == {
        "responses": {
            "201": {
                "links": {
                    "get_restructurings_request_id": {
                        "operationRef": "#/paths/~1restructurings~1{request_id}/get",
                        "parameters": {"request_id": "$response.body#/request_id"},
                    }
                }
            }
        }
    }


# -- request fields as the document describes them -----------------------------------------------------


def test_a_whole_number_float_is_an_integer_and_a_string_is_not() -> None:
    stock = TypeAdapter(Stock)
    assert stock.validate_json("3.0") == 3
    for bad in ('"3"', "3.5", "true", "-1", "2147483648"):
        with pytest.raises(ValidationError):
            stock.validate_json(bad)
    assert stock.json_schema() == {"type": "integer", "minimum": 0, "maximum": 2_147_483_647}


@pytest.mark.parametrize(
    ("value", "valid"),
    [("0", False), ("0.00", False), ("0.5", True), ("0.05", True), ("1", True), ("125000.00", True)],
)
def test_positive_money_pattern_matches_the_validator(value: str, valid: bool) -> None:
    adapter = TypeAdapter(PositiveMoney)
    assert bool(re.match(adapter.json_schema()["pattern"], value)) is valid
    if valid:
        assert adapter.validate_python(value) == Decimal(value)
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


@pytest.mark.parametrize("value", ["+620", "+6281234567890", "08123456789", "(0812) 3456-789", "+62 812"])
def test_phone_pattern_matches_the_validator(value: str) -> None:
    try:
        validate_phone(value)
    except PydanticCustomError:
        valid = False
    else:
        valid = True
    assert bool(re.match(TypeAdapter(PhoneE164).json_schema()["pattern"], value)) is valid


@pytest.mark.parametrize("kind", [Name, RequiredText])
def test_text_that_must_say_something_says_so_in_its_pattern(kind: Any) -> None:
    pattern = TypeAdapter(kind).json_schema()["pattern"]
    for blank in (" ", "\r\n", "\t"):
        assert not re.match(pattern, blank)
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(blank)
    assert re.match(pattern, " Koperasi ")
    assert not re.match(pattern, "a\x00")
