"""After healing: every expected effect exactly once, nothing lost, nothing duplicated, nothing unexpected.

Sources, all read independently of the services' own bookkeeping where one exists:
- the streams (outcome events by their business key; delivery receipts by notification id);
- each service's schema (inbox rows per consumer and event, loans, repayments, orders, stock, deliveries);
- the SMTP sink and the webhook sink (what parties actually received);
- the DLQ (``read_dead_letters``), for the poison mix;
- for the poison's impersonation attempts, the owning service's schema (no row the attempt would have
  written, its one audited denial) and the streams and deliveries (nothing caused by it);
- the durable consumers' state (no pending, no unacknowledged messages: nothing stalled).

Notifications' at-most-once window (services/notifications, ``dispatcher.py`` and ``domain/delivery.py``): a
process that dies between an email's send and the record of its outcome leaves the delivery 'sending';
after the lease, reconciliation marks it 'unknown' and never resends email automatically (webhooks are
resent: the receiver de-duplicates on ``Idempotency-Key``). The documented resolution is an operator who
checks and calls ``POST /notifications/{id}/resend``. The checker does exactly that (``resolve_unknown``):
an 'unknown' email the sink did receive is *indeterminate, delivered*; one it did not receive is resent
and counted as *recovered by the operator*. A second copy of any email is always a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import nats
import nats.errors

from bench.chaos.poison import POISON_HEADER
from bench.chaos.services import CONSUMER_DECLS
from bench.chaos.signin import OPERATOR
from kumkm_shared.messaging.consumer import denial_key
from kumkm_shared.messaging.dlq_ops import read_dead_letters

if TYPE_CHECKING:
    from bench.chaos.signin import SignIn
    from bench.chaos.sinks import SmtpSink, WebhookSink
    from bench.chaos.workload import Ledger
    from kumkm_shared.messaging.dlq import DeadLetter

STREAMS = ("KUMKM_LOANS", "KUMKM_CATALOG", "KUMKM_NOTIFICATIONS")
DELIVERED = "kumkm.notifications.notification.delivered.v1"


GAVE_UP = ("max_deliveries", "handler_error")


@dataclass
class Report:
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    recovered: int = 0
    indeterminate: int = 0  # notifications 'unknown' (documented window) that the sink did receive
    operator_resent: int = 0  # 'unknown' emails the sink had not received, resent as documented
    webhook_redeliveries: int = 0  # extra webhook receipts, de-duplicated by the receiver (documented)
    checked: Counter[str] = field(default_factory=Counter)
    details: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    poison_sent: int = 0
    poison_dead_lettered: int = 0
    poison_missing: int = 0
    poison_bad_reason: int = 0
    impersonations: int = 0  # of the poison: events claiming a party outside the sender's mandate
    impersonations_audited: int = 0  # each denial recorded once in the owning service's audit trail
    impersonation_kinds: Counter[str] = field(default_factory=Counter)
    dlq_reasons: Counter[str] = field(default_factory=Counter)
    # Dead letters whose retries ran out without a business answer: the server's max-deliveries advisory
    # (the last delivery died with its process) or an unexpected error at the last delivery. Each is named
    # (consumer, subject, poison or valid), since a valid event there would be a retry budget spent by faults.
    gave_up: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    unpublished_outbox: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, what: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.details[kind].append(what)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unexpected == 0
            and self.poison_missing == 0
            and self.poison_bad_reason == 0
            and self.impersonations_audited == self.impersonations
            and not self.stalled
        )

    def summary(self) -> str:
        return (
            f"lost={self.lost} duplicated={self.duplicated} unexpected={self.unexpected} "
            f"recovered={self.recovered}"
        )

    def render(self, max_details: int = 10) -> str:
        lines = [
            self.summary(),
            f"  effects checked: {dict(sorted(self.checked.items()))}",
            (
                "  notifications at-most-once window: "
                f"indeterminate (unknown, received)={self.indeterminate} "
                f"resent by operator (unknown, not received)={self.operator_resent} "
                f"webhook redeliveries de-duplicated by the receiver={self.webhook_redeliveries}"
            ),
            (
                f"  poison: sent={self.poison_sent} dead-lettered={self.poison_dead_lettered} "
                f"missing={self.poison_missing} wrong reason={self.poison_bad_reason}"
            ),
            (
                f"  impersonations (in the poison): sent={self.impersonations} "
                f"denials audited={self.impersonations_audited} "
                f"{dict(sorted(self.impersonation_kinds.items()))}"
            ),
            f"  DLQ reasons: {dict(self.dlq_reasons.most_common())}",
            *(f"    gave up: {item}" for item in self.gave_up),
            (
                f"  stalled consumers: {self.stalled or 'none'}; unpublished outbox rows: "
                f"{self.unpublished_outbox or 'none'}"
            ),
        ]
        for kind, items in sorted(self.details.items()):
            if not items:
                continue
            lines.append(f"  {kind} ({len(items)}):")
            lines.extend(f"    - {item}" for item in items[:max_details])
            if len(items) > max_details:
                lines.append(f"    ... {len(items) - max_details} more")
        return "\n".join(lines)


async def read_stream_events(nc: Any, subjects: str = "kumkm.>") -> list[dict[str, Any]]:
    """Every decodable event on the context streams, in stream order."""
    js = nc.jetstream()
    out: list[dict[str, Any]] = []
    for stream in STREAMS:
        info = await js.stream_info(stream)
        if not info.state.messages:
            continue
        sub = await js.subscribe(subjects, stream=stream, ordered_consumer=True)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    obj = json.loads(msg.data)
                    if isinstance(obj, dict):
                        obj["_seq"] = msg.metadata.sequence.stream
                        out.append(obj)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    return out


def concrete_path(route: str, target: str | None) -> str:
    """An audit record's request path: its route (a template such as ``/products/{product_id}/curation``,
    or the raw path) with the path parameters of ``target`` (``product_id=PRD-1``) put in."""
    for pair in (target or "").split(","):
        name, _, value = pair.partition("=")
        if name:
            route = route.replace("{" + name + "}", value)
    return route


def _durables_for(event_type: str) -> list[tuple[str, str]]:
    """(service schema, durable) of every durable whose filter takes ``event_type``."""
    return [(d.service, d.name) for d in CONSUMER_DECLS if event_type in d.filter_subjects]


class Checker:
    def __init__(
        self,
        *,
        nats_url: str,
        database_url: str,
        notifications_url: str,
        signin: SignIn,
        ledger: Ledger,
        smtp: SmtpSink,
        webhooks: WebhookSink,
    ) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.notifications_url = notifications_url
        self.signin = signin
        self.last_busy: list[str] = []  # what kept the system busy at the last look (for the report)
        self.ledger = ledger
        self.smtp = smtp
        self.webhooks = webhooks

    # -- healing ------------------------------------------------------------------------------------
    async def wait_quiet(
        self,
        timeout: float = 300.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
        *,
        settle: float = 3.0,
    ) -> bool:
        """Until every durable has nothing pending or unacknowledged, every outbox is published and no
        delivery is pending or sending, for ``settle`` seconds in a row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since: float | None = None
        while loop.time() < deadline:
            busy = await self._busy()
            self.last_busy = busy
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= settle:
                return True
            await asyncio.sleep(0.5)
        return False

    async def _busy(self) -> list[str]:
        busy: list[str] = []
        try:
            nc = await nats.connect(self.nats_url.split(","), max_reconnect_attempts=1, connect_timeout=2)
        except Exception:
            return ["nats unreachable"]
        try:
            js = nc.jetstream()
            for d in CONSUMER_DECLS:
                info = await js.consumer_info(d.stream, d.name)
                # Not num_redelivered: nats-server keeps the redelivered state of a message that reached
                # max_deliver (2.15, which we run, does), which the advisory watcher has dead-lettered, so it
                # would stay above zero for good. Nothing is in flight once nothing is pending or unacked.
                if info.num_pending or info.num_ack_pending:
                    busy.append(f"{d.name}: pending={info.num_pending} ack_pending={info.num_ack_pending}")
        except Exception as exc:
            busy.append(f"consumer info: {exc!r}")
        finally:
            await nc.close()
        try:
            conn = await asyncpg.connect(self.database_url, timeout=5)
        except Exception:
            return [*busy, "postgres unreachable"]
        try:
            for schema in ("loans", "catalog", "notifications"):
                n = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
                if n:
                    busy.append(f"{schema} outbox: {n}")
            n = await conn.fetchval(
                "SELECT count(*) FROM notifications.deliveries WHERE status IN ('pending', 'sending')"
            )
            if n:
                busy.append(f"deliveries in flight: {n}")
        finally:
            await conn.close()
        return busy

    async def resolve_unknown(self) -> tuple[int, int]:
        """The documented operator procedure for 'unknown' deliveries. Returns (indeterminate, resent)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch(
                "SELECT id, channel FROM notifications.deliveries WHERE status = 'unknown'"
            )
        finally:
            await conn.close()
        indeterminate = resent = 0
        async with httpx.AsyncClient(timeout=10) as client:
            for row in rows:
                key = str(row["id"])
                receipts = self.smtp.receipts if row["channel"] == "email" else self.webhooks.receipts
                if receipts.count(key):
                    indeterminate += 1
                    continue
                response = await client.post(
                    f"{self.notifications_url}/notifications/{key}/resend",
                    headers=await self.signin.headers(OPERATOR),
                )
                if response.status_code < 300:
                    resent += 1
        return indeterminate, resent

    # -- the check ----------------------------------------------------------------------------------
    async def check(self, report: Report | None = None) -> Report:
        report = report or Report()
        nc = await nats.connect(self.nats_url.split(","), max_reconnect_attempts=3)
        conn = await asyncpg.connect(self.database_url)
        try:
            events = await read_stream_events(nc)
            await self._check_applied(conn, report)
            resolved = self._check_outcomes(events, report)
            await self._check_notifications(conn, events, resolved, report)
            await self._check_state(conn, report)
            await self._check_audit(conn, report)
            await self._check_decisions(conn, report)
            await self._check_dlq(nc, report)
            await self._check_impersonations(conn, events, report)
            await self._check_consumers(nc, conn, report)
        finally:
            await conn.close()
            await nc.drain()
        return report

    async def _check_applied(self, conn: asyncpg.Connection, report: Report) -> None:
        """Every valid event we sent is in the inbox of every durable that takes it: applied once."""
        by_schema: dict[str, set[tuple[str, str]]] = {}
        for schema in ("loans", "catalog", "notifications"):
            rows = await conn.fetch(f"SELECT consumer, event_id::text AS e FROM {schema}.inbox")
            by_schema[schema] = {(r["consumer"], r["e"]) for r in rows}
        for item in self.ledger.sent:
            found_all = True
            for schema, durable in _durables_for(item.type):
                report.checked["inbox"] += 1
                if (durable, item.event_id) not in by_schema[schema]:
                    found_all = False
                    report.add(
                        "lost", f"{item.type} {item.aggregate} ({item.event_id}) not applied by {durable}"
                    )
            if item.uncertain and found_all:
                report.recovered += 1
        for item in self.ledger.http_commands:
            if item.uncertain:
                report.recovered += 1  # its effect is checked with the outcomes (exactly one event)

    def _check_outcomes(  # noqa: C901 - one index, three verdicts
        self, events: list[dict[str, Any]], report: Report
    ) -> dict[tuple[str, str, str], str]:
        """Exactly one outcome per expected key; returns (type, field, value) -> event id."""
        index: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        watched = {(t, o.field) for o in self.ledger.outcomes for t in o.types}
        for ev in events:
            data = ev.get("data")
            if not isinstance(data, dict):
                continue
            for t, fld in watched:
                if ev.get("type") == t and fld in data:
                    index[(t, fld, str(data[fld]))].append(ev)
        expected_keys: set[tuple[str, str, str]] = set()
        resolved: dict[tuple[str, str, str], str] = {}
        for o in self.ledger.outcomes:
            report.checked["outcome"] += 1
            found = [ev for t in o.types for ev in index.get((t, o.field, o.value), [])]
            for t in o.types:
                expected_keys.add((t, o.field, o.value))
            ids = {ev["id"] for ev in found}
            if not found:
                report.add("lost", f"no {'|'.join(o.types)} for {o.field}={o.value}")
            elif len(found) > 1:
                report.add(
                    "duplicated",
                    f"{len(found)} outcome events ({len(ids)} distinct ids) for {o.field}={o.value}",
                )
            for ev in found[:1]:
                resolved[(ev["type"], o.field, o.value)] = ev["id"]
        for (t, fld, value), evs in index.items():
            if (t, fld, value) not in expected_keys:
                for ev in evs:
                    report.add("unexpected", f"{t} for {fld}={value} ({ev['id']})")
        return resolved

    async def _check_notifications(  # noqa: C901, PLR0912 - one verdict per channel
        self,
        conn: asyncpg.Connection,
        events: list[dict[str, Any]],
        resolved: dict[tuple[str, str, str], str],
        report: Report,
    ) -> None:
        rows = await conn.fetch(
            "SELECT id::text AS id, event_id::text AS event_id, party_id, channel, status "
            "FROM notifications.deliveries"
        )
        inbox = {r["id"] for r in await conn.fetch("SELECT id::text AS id FROM notifications.inbox_messages")}
        by_key = {(r["event_id"], r["party_id"], r["channel"]): r for r in rows}
        receipts_events = Counter(
            str(ev["data"].get("notification_id"))
            for ev in events
            if ev.get("type") == DELIVERED and isinstance(ev.get("data"), dict)
        )
        emails = self.smtp.receipts.snapshot()
        hooks = self.webhooks.receipts.snapshot()
        expected_ids: set[str] = set()
        for n in self.ledger.notifications:
            report.checked[f"notification:{n.channel}"] += 1
            cause = n.cause_event_id
            if cause is None and n.cause_type is not None and n.cause_key is not None:
                cause = resolved.get((n.cause_type, *n.cause_key))
            if cause is None:
                report.add(
                    "lost", f"{n.channel} to {n.party}: its cause {n.cause_type} {n.cause_key} never came"
                )
                continue
            row = by_key.get((cause, n.party, n.channel))
            if row is None:
                report.add("lost", f"{n.channel} to {n.party} for event {cause}: no delivery row")
                continue
            key, status = row["id"], row["status"]
            expected_ids.add(key)
            what = f"{n.channel} {key} to {n.party} for {cause}"
            if n.channel == "email":
                got = len(emails.get(key, ()))
                # received once is the effect, whatever the row says: an 'unknown' row the sink received is
                # the indeterminate case the operator leaves as delivered (``resolve_unknown`` counts it)
                if got > 1:
                    report.add("duplicated", f"{what}: received {got} times (status {status})")
                elif got == 0 and status == "unknown":
                    report.add("lost", f"{what}: not received, still unknown after the operator resolution")
                elif got == 0:
                    report.add("lost", f"{what}: not received (status {status})")
            elif n.channel == "webhook":
                got = len(hooks.get(key, ()))
                if got == 0:
                    report.add("lost", f"{what}: not received (status {status})")
                report.webhook_redeliveries += max(0, got - 1)
            elif key not in inbox or status != "delivered":
                report.add("lost", f"{what}: not in the inbox (status {status})")
            if status == "delivered":
                published = receipts_events.get(key, 0)
                if published == 0:
                    report.add("lost", f"{what}: no notification.delivered event")
                elif published > 1:
                    report.add("duplicated", f"{what}: {published} notification.delivered events")
        for key, times in {**emails, **hooks}.items():
            if key not in expected_ids:
                report.add(
                    "unexpected", f"a notification {key} was received {len(times)} times, never expected"
                )
        for r in rows:
            if r["id"] not in expected_ids and r["status"] not in {"no_contact", "suppressed"}:
                report.add(
                    "unexpected", f"delivery {r['id']} ({r['channel']} to {r['party_id']}, {r['status']})"
                )
        if self.smtp.receipts.unmarked or self.webhooks.receipts.unmarked:
            report.add("unexpected", "receipts without a delivery id")

    async def _check_audit(self, conn: asyncpg.Connection, report: Report) -> None:
        """Every human command that took effect has exactly one ``committed`` record in its service's audit
        trail, by the person who signed in."""
        expected = Counter((a.schema, a.path, a.actor) for a in self.ledger.audits)
        paths = {(a.schema, a.path) for a in self.ledger.audits}
        found: Counter[tuple[str, str, str]] = Counter()
        for schema in sorted({schema for schema, _ in paths}):
            rows = await conn.fetch(
                f"SELECT route, target, actor_name, count(*) AS n FROM {schema}.audit_trail "
                "WHERE outcome = 'committed' GROUP BY route, target, actor_name"
            )
            for r in rows:
                path = concrete_path(r["route"], r["target"])
                if (schema, path) in paths:
                    found[(schema, path, r["actor_name"])] += r["n"]
        for key, n in expected.items():
            report.checked["audit"] += 1
            got = found.get(key, 0)
            if got < n:
                report.add("lost", f"{key[0]} audit: no committed record of {key[1]} by {key[2]}")
            elif got > n:
                report.add("duplicated", f"{key[0]} audit: {got} committed records of {key[1]} by {key[2]}")
        for key, n in found.items():
            if key not in expected:
                report.add("unexpected", f"{key[0]} audit: {n} committed records of {key[1]} by {key[2]}")

    async def _check_decisions(self, conn: asyncpg.Connection, report: Report) -> None:
        """Every restructuring decided over HTTP is in its final status."""
        rows = await conn.fetch(
            "SELECT request_id, status FROM loans.restructuring_requests WHERE request_id = ANY($1::text[])",
            list(self.ledger.decisions),
        )
        status = {r["request_id"]: r["status"] for r in rows}
        for request_id, wanted in self.ledger.decisions.items():
            report.checked["decision"] += 1
            if status.get(request_id) != wanted:
                report.add("lost", f"restructuring {request_id} is {status.get(request_id)}, not {wanted}")

    async def _check_state(self, conn: asyncpg.Connection, report: Report) -> None:
        loans = {
            r["loan_id"]: r for r in await conn.fetch("SELECT loan_id, restructure_count FROM loans.loans")
        }
        payments = {
            r["payment_id"]: r["loan_id"]
            for r in await conn.fetch("SELECT payment_id, loan_id FROM loans.repayments")
        }
        for loan_id, pays in self.ledger.loans.items():
            report.checked["loan"] += 1
            if loan_id not in loans:
                report.add("lost", f"loan {loan_id} not on the book")
                continue
            if loans[loan_id]["restructure_count"] > 1:
                report.add(
                    "duplicated", f"loan {loan_id} restructured {loans[loan_id]['restructure_count']} times"
                )
            for p in pays:
                report.checked["repayment"] += 1
                if payments.get(p) != loan_id:
                    report.add("lost", f"repayment {p} of {loan_id} not applied")
        orders = {
            r["order_id"]: r["status"]
            for r in await conn.fetch("SELECT order_id, status FROM catalog.orders")
        }
        stock = {
            r["product_id"]: (r["stock_available"], r["stock_reserved"])
            for r in await conn.fetch(
                "SELECT product_id, stock_available, stock_reserved FROM catalog.products"
            )
        }
        for order_id, (product_id, qty, initial) in self.ledger.orders.items():
            report.checked["order"] += 1
            status = orders.get(order_id)
            if status != "paid":
                report.add("lost", f"order {order_id} is {status}, not paid")
            available, reserved = stock.get(product_id, (None, None))
            if available is None:
                report.add("lost", f"product {product_id} unknown")
            elif (available, reserved) != (initial - qty, 0):
                kind = "duplicated" if available < initial - qty else "lost"
                report.add(
                    kind,
                    f"product {product_id}: available={available} reserved={reserved}, "
                    f"expected {initial - qty} and 0",
                )

    def _note_gave_up(self, report: Report, letter: DeadLetter, poison_id: str | None) -> None:
        if letter.reason_code not in GAVE_UP:
            return
        what = "poison" if poison_id and poison_id in self.ledger.poison else "NOT poison"
        report.gave_up.append(
            f"{letter.reason_code} on {letter.consumer}: {letter.subject} after "
            f"{letter.delivery_count} deliveries ({what}) {letter.reason[:160]}"
        )

    async def _check_dlq(self, nc: Any, report: Report) -> None:
        letters = await read_dead_letters(nc.jetstream())
        seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for item in letters:
            letter = item.letter
            report.dlq_reasons[letter.reason_code] += 1
            poison_id = letter.headers.get(POISON_HEADER)
            self._note_gave_up(report, letter, poison_id)
            if poison_id and poison_id in self.ledger.poison:
                seen[poison_id].append((letter.consumer, letter.reason_code))
                continue
            event_id = None
            with contextlib.suppress(Exception):
                event_id = str(json.loads(letter.original).get("id"))
            if event_id and event_id in self.ledger.by_id:
                report.add(
                    "lost",
                    f"valid {letter.subject} {event_id} dead-lettered by {letter.consumer}: "
                    f"{letter.reason_code} {letter.reason[:200]}",
                )
            else:
                report.add(
                    "unexpected", f"dead letter {letter.dlq_id} {letter.subject}: {letter.reason_code}"
                )
        report.poison_sent = len(self.ledger.poison)
        for poison_id, sent in self.ledger.poison.items():
            got = seen.get(poison_id, [])
            consumers = Counter(c for c, _ in got)
            complete = all(consumers[c] >= 1 for c in sent.consumers)
            if complete:
                report.poison_dead_lettered += 1
            else:
                report.poison_missing += 1
                report.details["poison_missing"].append(
                    f"{sent.kind} on {sent.subject}: dead-lettered by {sorted(consumers)}, "
                    f"expected {sent.consumers}"
                )
            for c, n in consumers.items():
                if n > 1:
                    report.add("duplicated", f"poison {poison_id} dead-lettered {n} times by {c}")
            for c, reason in got:
                if sent.expected_reasons and reason not in sent.expected_reasons:
                    report.poison_bad_reason += 1
                    report.details["poison_bad_reason"].append(
                        f"{sent.kind} on {sent.subject} by {c}: {reason}, "
                        f"expected one of {sent.expected_reasons}"
                    )

    async def _check_impersonations(
        self, conn: asyncpg.Connection, events: list[dict[str, Any]], report: Report
    ) -> None:
        """Each impersonation attempt changed nothing: no row it would have written, no event it caused,
        no notification about it; and its denial is audited once by the service that refused it (the
        wrapper's ``<durable>/denied`` inbox key, claimed with the audit record: one per stream message,
        ``denial_key``)."""
        attempts = [p.impersonation for p in self.ledger.poison.values() if p.impersonation is not None]
        if not attempts:
            return
        schema_of = {d.name: d.service for d in CONSUMER_DECLS}
        ids = [a.event_id for a in attempts]
        caused = Counter(str(ev.get("causationid")) for ev in events if ev.get("causationid") in set(ids))
        rows = await conn.fetch(
            "SELECT event_id::text AS e FROM notifications.deliveries WHERE event_id::text = ANY($1::text[])",
            ids,
        )
        notified = Counter(r["e"] for r in rows)
        keys = {a.event_id: str(denial_key(*a.stream_message)) for a in attempts if a.stream_message}
        denied: set[tuple[str, str]] = set()
        for schema in sorted({schema_of[a.consumer] for a in attempts}):
            rows = await conn.fetch(
                f"SELECT consumer, event_id::text AS e FROM {schema}.inbox "
                "WHERE consumer LIKE '%/denied' AND event_id::text = ANY($1::text[])",
                list(keys.values()),
            )
            denied |= {(r["consumer"], r["e"]) for r in rows}
        for a in attempts:
            report.impersonations += 1
            report.impersonation_kinds[a.what] += 1
            report.checked["impersonation"] += 1
            what = f"impersonation {a.what} ({a.event_id})"
            if (f"{a.consumer}/denied", keys.get(a.event_id)) in denied:
                report.impersonations_audited += 1
            else:
                report.details["impersonation_unaudited"].append(f"{what}: no denial audited by {a.consumer}")
            for table, column, value in a.absent:
                sql = f"SELECT count(*) FROM {table} WHERE {column}::text = $1"
                if await conn.fetchval(sql, value):
                    report.add("unexpected", f"{what} wrote {table} {column}={value}")
            if caused[a.event_id]:
                report.add("unexpected", f"{what} caused {caused[a.event_id]} events")
            if notified[a.event_id]:
                report.add("unexpected", f"{what} was notified ({notified[a.event_id]} deliveries)")

    async def _check_consumers(self, nc: Any, conn: asyncpg.Connection, report: Report) -> None:
        js = nc.jetstream()
        for d in CONSUMER_DECLS:
            info = await js.consumer_info(d.stream, d.name)
            if info.num_pending or info.num_ack_pending:
                report.stalled.append(
                    f"{d.name}: pending={info.num_pending} ack_pending={info.num_ack_pending}"
                )
        for schema in ("loans", "catalog", "notifications"):
            n = await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")
            if n:
                report.unpublished_outbox[schema] = int(n)
