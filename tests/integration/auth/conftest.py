"""A real service (loans) behind sign-in, and tokens made by hand for the cases the provider never issues."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import jwt
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa

from kumkm_loans.app import build
from kumkm_shared.testing.harness import ServiceHarness
from kumkm_shared.testing.identity import identity

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest_asyncio.fixture
async def service(nats_url: str, database_url: str) -> AsyncIterator[ServiceHarness]:
    async with ServiceHarness.start(build(), nats_url, database_url) as harness:
        yield harness


def real_claims(username: str = "officer.bekasi") -> dict[str, Any]:
    """The claims of a real token the provider issued to ``username`` (read, not verified)."""
    claims: dict[str, Any] = jwt.decode(identity().token(username), options={"verify_signature": False})
    return claims


def signed_by_provider(claims: dict[str, Any], **header: Any) -> str:
    """A token signed with the provider's own current key: only its claims differ from a real one."""
    key = identity().provider.signing_keys()[0]
    private = jwt.PyJWK(key).key
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": key["kid"], **header})


def signed_by_stranger(claims: dict[str, Any], kid: str = "stranger") -> str:
    """A token with the right claims, signed with a key of our own that the issuer never published."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


def unsigned(claims: dict[str, Any]) -> str:
    """The ``alg: none`` token: header and claims, no signature."""
    return jwt.encode(claims, key=None, algorithm="none")


def fresh(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {**claims, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **changes}
