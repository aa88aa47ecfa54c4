"""Publishing a registry list: pipelined, resumable, idempotent.

- Each valid row becomes one event whose id is derived from the organisation, the type, the party and the
  record (``rows.event_id_for``), published with that id as ``Nats-Msg-Id`` on ``<type>.<organisation>``:
  importing the same file again publishes the same ids, which the stream de-duplicates (within its
  duplicate window) and every consumer's inbox ignores (after it).
- Publishes are pipelined (``publish_async``) with a bounded window; each PubAck is awaited in row order
  with a timeout, a failed one is published again (same id) a few times before the import stops.
- The state file beside the input (``FILE.import-state.json``) holds the file's sha256 and the last row
  up to which every row is acknowledged (or written to the error file); ``--resume`` continues after it.
- Rows with errors go to the error file (row, column, reason), in row order, and publish nothing.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

from kumkm_shared.contracts import make_event, spec_for
from kumkm_shared.integrators import sender_subject
from kumkm_shared.messaging.outbox import nats_headers
from kumkm_shared.registry_import.rows import ParsedRow, RowError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from nats.js import JetStreamContext
    from nats.js.api import PubAck

    from kumkm_shared.registry_import.rows import RowParser

__all__ = [
    "ImportFailedError",
    "ImportState",
    "ImportSummary",
    "Importer",
    "StateError",
    "errors_path_for",
    "state_path_for",
]

SOURCE: Final = "kumkm/cli/registry-import"
ERROR_HEADER: Final = ("row", "column", "reason")
SAVE_EVERY_SECONDS: Final = 0.5
PUBLISH_ATTEMPTS: Final = 3
SHOWN_ERRORS: Final = 20


class StateError(ValueError):
    """The state file does not fit the file being imported (``--resume`` of another file or version)."""


class ImportFailedError(RuntimeError):
    """Publishing stopped (the broker did not acknowledge); the state file says where to resume."""


def state_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".import-state.json")


def errors_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".errors.csv")


@dataclass
class ImportState:
    """Where an import of one file stands: every row up to ``last_row`` is acknowledged or an error."""

    file: str
    sha256: str
    organisation: str
    kind: str
    last_row: int = 1  # the header
    published: int = 0
    duplicates: int = 0
    error_rows: int = 0
    errors_file: str | None = None
    errors_bytes: int = 0  # the error file's size at ``last_row`` (a resume truncates it there)
    complete: bool = False

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ImportState:
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise StateError(f"cannot read the state file {path}: {exc}") from None

    def check_fits(self, sha256: str, organisation: str, kind: str) -> None:
        if self.sha256 != sha256:
            raise StateError(
                "the file changed since the interrupted import (its sha256 differs from the state file's):"
                " import it again without --resume"
            )
        if (self.organisation, self.kind) != (organisation, kind):
            raise StateError(
                f"the interrupted import was of {self.kind} rows as {self.organisation}, not {kind} as"
                f" {organisation}"
            )


@dataclass
class ImportSummary:
    rows: int = 0  # rows read in this run (resumed rows not counted)
    published: int = 0  # acknowledged as new on the stream
    duplicates: int = 0  # acknowledged as already on the stream (same event id)
    error_rows: int = 0
    resumed_after: int = 0
    seconds: float = 0.0
    state: ImportState | None = None
    errors: list[RowError] = field(default_factory=list)  # the first few, to show


@dataclass
class _Pending:
    row: int
    subject: str = ""
    payload: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: str | None = None
    future: asyncio.Future[PubAck] | None = None
    errors: list[RowError] | None = None


class _ErrorFile:
    """The per-row error CSV (row, column, reason), opened on the first error."""

    def __init__(self, path: Path, resume_at: int | None) -> None:
        self.path = path
        self._file: Any = None
        self._writer: Any = None
        if resume_at is not None and path.exists():
            with path.open("r+b") as f:
                f.truncate(resume_at)
        elif resume_at is None:
            path.unlink(missing_ok=True)

    def write(self, errors: list[RowError]) -> None:
        if self._writer is None:
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._file = self.path.open("a", encoding="utf-8", newline="")
            self._writer = csv.writer(self._file)
            if fresh:
                self._writer.writerow(ERROR_HEADER)
        for error in errors:
            self._writer.writerow((error.row, error.column, error.reason))

    def size(self) -> int:
        if self._file is not None:
            self._file.flush()
        return self.path.stat().st_size if self.path.exists() else 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Importer:
    """Publishes the valid rows after ``state.last_row`` (all rows unless ``resume``) and keeps the state.

    ``window``: publishes in flight at most; ``ack_timeout``: seconds to wait for each PubAck; ``rate``: rows
    per second at most (0: as fast as the stream acknowledges); ``progress(n)``: called as rows are read.
    """

    def __init__(
        self,
        js: JetStreamContext,
        parser: RowParser,
        state: ImportState,
        state_path: Path,
        errors_path: Path,
        *,
        resume: bool = False,
        window: int = 512,
        ack_timeout: float = 10.0,
        rate: float = 0.0,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.js = js
        self.parser = parser
        self.state = state
        self.state_path = state_path
        self.window = window
        self.ack_timeout = ack_timeout
        self.rate = rate
        self.progress = progress
        self.summary = ImportSummary(resumed_after=state.last_row if resume else 0, state=state)
        if not resume:
            state.last_row, state.published, state.duplicates, state.error_rows = 1, 0, 0, 0
            state.errors_bytes, state.complete = 0, False
        state.errors_file = str(errors_path)
        self.errors = _ErrorFile(errors_path, state.errors_bytes if resume else None)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._last_save = 0.0

    async def run(self, rows: Iterator[tuple[int, list[Any]]]) -> ImportSummary:
        started = time.monotonic()
        self._last_save = started
        try:
            for number, cells in rows:
                if number <= self.summary.resumed_after:
                    continue
                await self._take(number, cells)
                await self._pace(started)
            while self._pending:
                await self._settle(self._pending.popleft())
            self.state.complete = True
        finally:
            # Only what is settled counts: the rows still in flight are published again on --resume.
            self.state.errors_bytes = self.errors.size()
            self.errors.close()
            self.state.save(self.state_path)
            self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _take(self, number: int, cells: list[Any]) -> None:
        self.summary.rows += 1
        parsed = self.parser.parse(number, cells)
        item = _Pending(number)
        if isinstance(parsed, ParsedRow):
            await _publish(self.js, self.parser.organisation, parsed, item, self.ack_timeout)
        else:
            item.errors = parsed
        pending = self._pending
        pending.append(item)
        while pending and (
            len(pending) >= self.window or pending[0].future is None or pending[0].future.done()
        ):
            await self._settle(pending.popleft())
        if self.progress is not None:
            self.progress(1)

    async def _pace(self, started: float) -> None:
        if self.rate > 0:
            ahead = self.summary.rows / self.rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def _settle(self, item: _Pending) -> None:
        state, summary = self.state, self.summary
        if item.errors is not None:
            self.errors.write(item.errors)
            state.error_rows += 1
            summary.error_rows += 1
            if len(summary.errors) < SHOWN_ERRORS:
                summary.errors.extend(item.errors)
        else:
            ack = await _acknowledged(self.js, item, self.ack_timeout)
            if ack.duplicate:
                state.duplicates += 1
                summary.duplicates += 1
            else:
                state.published += 1
                summary.published += 1
        state.last_row = item.row
        now = time.monotonic()
        if now - self._last_save >= SAVE_EVERY_SECONDS:
            state.errors_bytes = self.errors.size()
            state.save(self.state_path)
            self._last_save = now


async def _publish(
    js: JetStreamContext,
    organisation: str,
    parsed: ParsedRow,
    item: _Pending,
    stall: float,
) -> None:
    """Send the row (its PubAck awaited later, in ``_acknowledged``); a full publish window is waited on for
    ``stall`` seconds at most."""
    envelope = make_event(parsed.data, source=SOURCE, event_id=parsed.event_id)
    item.subject = sender_subject(envelope.type, organisation)
    item.stream = spec_for(envelope.type).stream
    item.payload = envelope.to_json_bytes()
    item.headers = nats_headers(envelope)
    item.future = await js.publish_async(
        item.subject, item.payload, headers=item.headers, stream=item.stream, wait_stall=stall
    )


async def _acknowledged(js: JetStreamContext, item: _Pending, timeout: float) -> PubAck:  # noqa: ASYNC109
    """The row's PubAck; a publish that failed or timed out is sent again (same id) before giving up."""
    if item.future is None:
        raise ImportFailedError(f"row {item.row} was never published")
    try:
        return await asyncio.wait_for(item.future, timeout)
    except Exception as first:
        failure: BaseException = first
    for _ in range(PUBLISH_ATTEMPTS - 1):
        await asyncio.sleep(0.5)
        try:
            return await js.publish(
                item.subject, item.payload, timeout=timeout, headers=item.headers, stream=item.stream
            )
        except Exception as again:
            failure = again
    raise ImportFailedError(f"row {item.row} was not acknowledged by the stream: {failure!r}") from failure
