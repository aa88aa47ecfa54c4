"""Integrator organisations' mandates: which parties each organisation may act for, in a JetStream KV bucket.

Written only by the operator's ``kumkm integrators add|revoke``; read by every service when an
organisation's event (or HTTP command) claims a party. A put is visible to the next read once acknowledged,
so an organisation's first event never races its mandate, and a revocation applies to the very next event.
Rules: ``docs/rules/access.md``, "Integrator organisations".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

import nats.js.errors
import structlog
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kumkm_shared.integrators import ORG_ID_PATTERN, IntegratorRole, roles_for

if TYPE_CHECKING:
    from nats.js import JetStreamContext

__all__ = ["ALL_PARTIES", "BUCKET", "Grant", "Mandate", "MandateBook", "MandateLookup", "refusal"]

BUCKET = "KUMKM_MANDATES"
HISTORY = 64  # revisions kept per organisation: the bucket is also the mandates' history
MAX_PARTY_LENGTH = 128
ALL_PARTIES = "*"  # every party of the role (a national payment channel or registry): granted explicitly

log = structlog.get_logger(__name__)


class Grant(BaseModel):
    """One role an organisation plays, the parties it may act for in it, and the NATS users issued for it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    role: IntegratorRole
    parties: tuple[str, ...] = ()
    user_keys: tuple[str, ...] = ()  # public nkeys of the NATS users issued for this role

    @field_validator("parties")
    @classmethod
    def _parties(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(dict.fromkeys(p.strip() for p in value))
        if any(not p or len(p) > MAX_PARTY_LENGTH for p in cleaned):
            raise ValueError(f"a party is 1 to {MAX_PARTY_LENGTH} characters")
        return cleaned

    def covers(self, party: str) -> bool:
        return ALL_PARTIES in self.parties or party in self.parties


class Mandate(BaseModel):
    """One organisation: the roles it plays, for which parties, and whether it is still active.

    Usually one role (a lender, a buyer's procurement system); a bank may be a lender and a payment channel,
    a marketplace a seller system for many NIBs. Each role has its own NATS user (its own scoped signing key).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    organisation: str = Field(pattern=ORG_ID_PATTERN)
    grants: tuple[Grant, ...] = ()
    name: str | None = None
    status: Literal["active", "revoked"] = "active"
    granted_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    granted_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def roles(self) -> frozenset[IntegratorRole]:
        return frozenset(g.role for g in self.grants)

    @property
    def user_keys(self) -> tuple[str, ...]:
        return tuple(k for g in self.grants for k in g.user_keys)

    def grant(self, role: IntegratorRole) -> Grant | None:
        return next((g for g in self.grants if g.role == role), None)

    def covers(self, roles: frozenset[IntegratorRole], party: str) -> bool:
        """Active, and one of ``roles`` is granted for ``party`` (or for every party)."""
        return self.active and any(g.role in roles and g.covers(party) for g in self.grants)

    def with_grant(self, grant: Grant) -> Mandate:
        """This mandate with ``grant`` replacing the role's earlier grant, if any."""
        others = tuple(g for g in self.grants if g.role != grant.role)
        return self.model_copy(update={"grants": (*others, grant)})

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class MandateLookup(Protocol):
    """What a service needs: the current mandate of one organisation (``None`` when it has none)."""

    async def get(self, organisation: str, /) -> Mandate | None: ...


async def refusal(
    mandates: MandateLookup | None, organisation: str, party: str, event_type: str
) -> str | None:
    """Why ``organisation`` may not act for ``party`` in a role that sends ``event_type``, or ``None`` when it
    may: for a route that is a command, not an event (``EventContext.mandate_refusal`` is the same rule)."""
    mandate = await mandates.get(organisation) if mandates is not None else None
    if mandate is None:
        return f"organisation {organisation!r} holds no mandate"
    if not mandate.active:
        return f"the mandate of organisation {organisation!r} was revoked"
    allowed = roles_for(event_type)
    if mandate.roles.isdisjoint(allowed):
        played = ", ".join(sorted(mandate.roles)) or "no role"
        wanted = " or ".join(sorted(allowed))
        return f"organisation {organisation!r} plays {played}, which may not act as {wanted}"
    if not mandate.covers(allowed, party):
        return f"organisation {organisation!r} holds no mandate for party {party!r}"
    return None


class MandateBook:
    """The KV bucket of mandates, over one JetStream context."""

    def __init__(self, js: JetStreamContext, *, bucket: str = BUCKET) -> None:
        self._js = js
        self._bucket = bucket
        self._kv: KeyValue | None = None

    async def ensure_bucket(self, *, replicas: int = 1) -> bool:
        """Create the bucket when it is missing (the provisioner's job); True when it was created."""
        try:
            await self._js.key_value(self._bucket)
        except nats.js.errors.BucketNotFoundError:
            await self._js.create_key_value(
                bucket=self._bucket,
                history=HISTORY,
                replicas=replicas,
                description="Integrator organisations' mandates (kumkm integrators)",
                direct=True,
            )
            return True
        return False

    async def ensure_replicas(self, replicas: int) -> bool:
        """Give the existing bucket ``replicas`` replicas (the provisioner, after ``ensure_bucket``); True
        when it had another count. Only the provisioner calls it: other callers of ``ensure_bucket`` keep
        whatever count the bucket has."""
        stream = f"KV_{self._bucket}"
        info = await self._js.stream_info(stream)
        if info.config.num_replicas == replicas:
            return False
        info.config.num_replicas = replicas
        await self._js.update_stream(config=info.config)
        return True

    async def _bucket_kv(self) -> KeyValue:
        if self._kv is None:
            found = await self._js.key_value(self._bucket)  # BucketNotFoundError when there is none
            # Reads go to the stream's leader ($JS.API.STREAM.MSG.GET), never to a follower's direct get:
            # in a replicated bucket a follower may not hold a revocation yet, and "a revoked
            # organisation's very next event is refused" must hold. One request per lookup either way.
            self._kv = KeyValue(
                name=found._name,  # noqa: SLF001 - the same bucket, read without direct gets
                stream=found._stream,  # noqa: SLF001
                pre=found._pre,  # noqa: SLF001
                js=self._js,
                direct=False,
            )
        return self._kv

    @staticmethod
    def _parse(organisation: str, value: bytes, revision: int | None) -> Mandate | None:
        """The stored mandate, or None (logged, without the value) when the entry is not one."""
        try:
            mandate = Mandate.model_validate(json.loads(value))
        except (ValueError, ValidationError) as exc:
            log.warning(
                "mandate entry unreadable: treated as no mandate",
                organisation=organisation,
                revision=revision,
                error=type(exc).__name__,
            )
            return None
        if mandate.organisation != organisation:
            log.warning(
                "mandate entry names another organisation: treated as no mandate",
                organisation=organisation,
                revision=revision,
            )
            return None
        return mandate

    async def get(self, organisation: str) -> Mandate | None:
        """The current mandate; ``None`` when the organisation has none (or there is no bucket at all, or the
        stored entry is not a valid mandate: refused like no mandate, logged without its content)."""
        try:
            kv = await self._bucket_kv()
        except nats.js.errors.BucketNotFoundError:
            return None
        try:
            entry = await kv.get(organisation)
        except nats.js.errors.KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return self._parse(organisation, entry.value, entry.revision)

    async def put(self, mandate: Mandate) -> int:
        """Store ``mandate`` as its organisation's current one; returns the KV revision."""
        kv = await self._bucket_kv()
        return await kv.put(mandate.organisation, mandate.to_bytes())

    async def all(self) -> list[Mandate]:
        kv = await self._bucket_kv()
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        found = [await self.get(key) for key in sorted(keys)]
        return [m for m in found if m is not None]

    async def history(self, organisation: str) -> list[Mandate]:
        """Every stored revision of one organisation's mandate, oldest first (unreadable ones skipped)."""
        kv = await self._bucket_kv()
        try:
            entries = await kv.history(organisation)
        except nats.js.errors.NoKeysError:
            return []
        found = [self._parse(organisation, e.value, e.revision) for e in entries if e.value]
        return [m for m in found if m is not None]
