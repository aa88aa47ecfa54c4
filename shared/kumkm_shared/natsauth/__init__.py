"""NATS decentralised auth (operator mode) for KUMKM: JWTs, the auth directory, pushing account updates.

Plumbing only: which organisation may act for which party is ``kumkm_shared.mandates``; who may publish
what on the bus is ``permissions``.
"""

from kumkm_shared.natsauth.authdir import ACCOUNTS, AuthDir, AuthDirError, IssuedUser
from kumkm_shared.natsauth.jwt import Decoded, JwtError, creds_jwt, creds_text, decode, encode

__all__ = [
    "ACCOUNTS",
    "AuthDir",
    "AuthDirError",
    "Decoded",
    "IssuedUser",
    "JwtError",
    "creds_jwt",
    "creds_text",
    "decode",
    "encode",
]
