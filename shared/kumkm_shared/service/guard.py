"""Input nobody expected, refused at the door of every service before a route sees it.

``InputGuard`` is an ASGI middleware (``create_http_app`` installs it, inside sign-in):

- a body larger than ``max_body_bytes`` answers 413, whether its ``Content-Length`` says so (nothing is
  read) or it streams past the limit without one;
- a NUL character in a query parameter or a path parameter answers 422 naming the parameter: Postgres text
  cannot hold one, and no parameter of any service means one (in a body, every text field refuses it
  itself, naming the field: ``kumkm_shared.contracts.types.validate_text``);
- a JSON body nested deeper than ``MAX_JSON_DEPTH``: 422 naming where.

The pure checks (``query_nul_fields``, ``json_depth_problems``, ``declared_length``) are unit-tested; the
rules are in ``docs/rules/messaging.md#refusals``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
    Answer = Callable[[Send, int, str, str, list[tuple[str, str]]], Awaitable[None]]
    PathParams = Callable[[Scope], dict[str, str]]

MAX_JSON_DEPTH: Final = 32  # objects and arrays inside one another; no request body of any service nests 10
NUL_MESSAGE: Final = "must not contain a NUL character"
Problem = tuple[str, str]  # (field, message)


def query_nul_fields(query_string: bytes) -> list[Problem]:
    """The query parameters (names or values) holding a NUL character, once percent-decoded."""
    problems: list[Problem] = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name:
            problems.append((name.replace("\x00", "\\x00") or "query", NUL_MESSAGE))
        elif "\x00" in value:
            problems.append((name, NUL_MESSAGE))
    return problems


def json_depth_problems(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> list[Problem]:
    """The places where a decoded JSON body nests objects and arrays deeper than ``max_depth``, each named
    like a field (``proposal.0.impact``; ``body`` for the document itself). Iterative: a deep document
    cannot exhaust the stack."""
    problems: list[Problem] = []
    stack: list[tuple[Any, tuple[str, ...], int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth >= max_depth:
            problems.append(
                (".".join(path) or "body", f"nests objects and arrays deeper than {max_depth} levels")
            )
            continue
        members = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((member, (*path, str(key)), depth + 1) for key, member in members)
    return sorted(problems)


def decode_json_problems(body: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> list[Problem]:
    """``json_depth_problems`` of a raw body; a body that is not JSON has none here (the route's own
    validation answers it: 422 naming the body), one too deep for the parser is refused as too deep."""
    try:
        value = json.loads(body)
    except RecursionError:
        return [("body", f"nests objects and arrays deeper than {max_depth} levels")]
    except ValueError:
        return []
    return json_depth_problems(value, max_depth=max_depth)


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's ``Content-Length``, or ``None`` when it has none (or one that is not a number: the
    server refuses those itself)."""
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


class BodyTooLarge(Exception):  # noqa: N818 - named for the answer it becomes
    pass


class InputGuard:
    """The middleware (see the module). ``answer(send, status, code, message, problems)`` sends the error
    envelope; ``path_params(scope)`` names the path parameters of the route the path matches."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, answer: Answer, path_params: PathParams) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.answer = answer
        self.path_params = path_params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = query_nul_fields(scope.get("query_string") or b"")
        if "\x00" in scope.get("path", ""):
            named = [(n, NUL_MESSAGE) for n, v in self.path_params(scope).items() if "\x00" in v]
            problems += named or [("path", NUL_MESSAGE)]
        if problems:
            await self._invalid(scope, send, problems)
            return
        headers: Sequence[tuple[bytes, bytes]] = scope.get("headers") or ()
        length = declared_length(headers)
        if length is not None and length > self.max_body_bytes:
            await self._too_large(scope, send)
            return
        try:
            body, rest = await self._read(receive)
        except BodyTooLarge:
            await self._too_large(scope, send)
            return
        if body and _is_json(headers):
            problems = decode_json_problems(body)
            if problems:
                await self._invalid(scope, send, problems)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await rest()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, Receive]:
        """The whole body (at most ``max_body_bytes``), and what to read after it (a disconnect)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return b"".join(chunks), _then(message, receive)
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), receive

    async def _invalid(self, scope: Scope, send: Send, problems: list[Problem]) -> None:
        message = "; ".join(f"{field}: {text}" for field, text in problems)
        _note(scope, "invalid", message)
        await self.answer(send, 422, "validation_failed", message, problems)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        message = f"the body is larger than {self.max_body_bytes} bytes"
        _note(scope, "too_large", message)
        await self.answer(send, 413, "body_too_large", message, [("body", message)])


def _then(first: Message, receive: Receive) -> Receive:
    """``receive`` that gives ``first`` before anything else."""
    pending = [first]

    async def after() -> Message:
        return pending.pop() if pending else await receive()

    return after


def _note(scope: Scope, outcome: str, reason: str) -> None:
    """Tell the request's audit record why it was refused (as ``http._note`` does for a route's refusals)."""
    draft = (scope.get("state") or {}).get("audit")
    if draft is not None:
        draft.outcome = outcome
        draft.reason = reason[:1000]
