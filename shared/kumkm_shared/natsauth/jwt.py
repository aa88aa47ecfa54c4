"""NATS decentralised-auth JWTs (claims version 2): encode, sign with an nkey, decode and verify.

A NATS JWT is ``base64url(header) "." base64url(claims) "." base64url(signature)`` without padding, the
header ``{"typ":"JWT","alg":"ed25519-nkey"}``, the signature an ed25519 signature by the issuer's nkey over
the first two parts. ``jti`` is the base32 (unpadded) SHA-512/256 of the claims encoded with an empty
``jti``, as the NATS JWT library computes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys

__all__ = [
    "HEADER",
    "Decoded",
    "JwtError",
    "decode",
    "encode",
    "new_key",
    "public_key",
]

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
CLAIMS_VERSION = 2

_PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}


class JwtError(ValueError):
    """A token that is not a well-formed NATS JWT, or whose signature does not verify."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def new_key(kind: str) -> bytes:
    """A fresh nkey seed (``SO...``, ``SA...`` or ``SU...``) for an operator, an account or a user."""
    return bytes(nkeys.encode_seed(os.urandom(32), _PREFIX[kind]))


def public_key(seed: bytes) -> str:
    keypair = nkeys.from_seed(bytearray(seed))
    return bytes(keypair.public_key).decode()


def _verify_key(public: str) -> nacl.signing.VerifyKey:
    """The ed25519 key of an encoded nkey public key (prefix byte, 32 key bytes, CRC16)."""
    raw = base64.b32decode(public)
    if len(raw) != 35 or not nkeys.valid_public_prefix_byte(raw[0]):  # noqa: PLR2004 - 1 + 32 + 2
        raise ValueError(f"not an nkey public key: {public!r}")
    if nkeys.crc16(bytearray(raw[:-2])) != int.from_bytes(raw[-2:], "little"):
        raise ValueError("public key checksum mismatch")
    return nacl.signing.VerifyKey(raw[1:33])


def _jti(claims: dict[str, Any]) -> str:
    digest = hashlib.new("sha512_256", _json({**claims, "jti": ""})).digest()
    return base64.b32encode(digest).rstrip(b"=").decode()


def encode(
    kind: str, subject: str, name: str, nats: dict[str, Any], *, signer: bytes, issued_at: int | None = None
) -> str:
    """A signed JWT of ``kind`` ("operator", "account", "user") for the public key ``subject``.

    ``nats`` is the type-specific part (permissions, limits, signing keys...); ``type`` and ``version`` are
    added. ``signer`` is the issuer's seed: the ``iss`` claim is its public key.
    """
    keypair = nkeys.from_seed(bytearray(signer))
    claims: dict[str, Any] = {
        "jti": "",
        "iat": int(time.time()) if issued_at is None else issued_at,
        "iss": bytes(keypair.public_key).decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats, "type": kind, "version": CLAIMS_VERSION},
    }
    claims["jti"] = _jti(claims)
    signing_input = f"{_b64(_json(HEADER))}.{_b64(_json(claims))}"
    signature = keypair.sign(signing_input.encode())
    return f"{signing_input}.{_b64(bytes(signature))}"


@dataclass(frozen=True)
class Decoded:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.claims["nats"]["type"])

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def issuer(self) -> str:
        return str(self.claims["iss"])

    @property
    def issued_at(self) -> int:
        return int(self.claims["iat"])

    @property
    def nats(self) -> dict[str, Any]:
        value: dict[str, Any] = self.claims["nats"]
        return value


def decode(token: str, *, verify: bool = True) -> Decoded:
    """The header and claims of ``token``; with ``verify``, the signature must be the issuer's."""
    parts = token.strip().split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header, claims, signature
        raise JwtError("a JWT has three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwtError(f"not base64url JSON: {exc}") from None
    if header != HEADER:
        raise JwtError(f"unexpected header {header!r}")
    if not isinstance(claims, dict) or not isinstance(claims.get("nats"), dict):
        raise JwtError("claims without a nats object")
    if verify:
        issuer = str(claims.get("iss", ""))
        try:
            _verify_key(issuer).verify(f"{parts[0]}.{parts[1]}".encode(), signature)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as exc:
            raise JwtError(f"signature does not verify with the issuer {issuer}: {exc!r}") from None
        if claims.get("jti") != _jti(claims):
            raise JwtError("jti is not the hash of the claims")
    return Decoded(header=header, claims=claims)


def creds_text(user_jwt: str, user_seed: bytes) -> str:
    """A ``.creds`` file: the user JWT and its nkey seed, in the layout nats-py's ``user_credentials``
    (and every NATS client) reads."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n"
        "\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n"
        "\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{user_seed.decode()}\n"
        "------END USER NKEY SEED------\n"
        "\n"
        "*************************************************************\n"
    )


def creds_jwt(text: str) -> str:
    """The user JWT of a ``.creds`` file's text."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "BEGIN NATS USER JWT" in line and index + 1 < len(lines):
            return lines[index + 1].strip()
    raise JwtError("no user JWT in the credentials")
