"""NATS JWT encoding (decoded and verified here without the server) and the auth directory's claims.

The server's view (that it accepts these JWTs, applies the scoped templates, honours revocations) is
tests/integration/deploy/test_deploy_nats_permissions.py.
"""

from __future__ import annotations

import base64
import json
import stat
from io import BytesIO
from typing import TYPE_CHECKING

import nacl.signing
import pytest

from kumkm_shared.integrators import (
    RESERVED_ORG_IDS,
    ROLE_EVENTS,
    IntegratorRole,
    org_id_problem,
    sender_subject,
)
from kumkm_shared.natsauth import AuthDir, AuthDirError, JwtError, creds_jwt, creds_text, decode, encode
from kumkm_shared.natsauth.authdir import ACCOUNTS, INTEGRATORS
from kumkm_shared.natsauth.jwt import new_key, public_key
from kumkm_shared.natsauth.permissions import PLATFORM_USERS, role_template

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def _part(token: str, index: int) -> dict[str, object]:
    text = token.split(".")[index]
    value: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return value


def test_a_jwt_is_three_unpadded_base64url_parts_signed_by_the_issuer() -> None:
    seed = new_key("account")
    user = public_key(new_key("user"))
    token = encode(
        "user", user, "bank-bjb", {"pub": {"allow": ["a.b"]}}, signer=seed, issued_at=1_700_000_000
    )
    header, claims, signature = token.split(".")
    assert "=" not in token
    assert _part(token, 0) == {"typ": "JWT", "alg": "ed25519-nkey"}
    body = _part(token, 1)
    assert body["iss"] == public_key(seed)
    assert body["sub"] == user
    assert body["name"] == "bank-bjb"
    assert body["iat"] == 1_700_000_000
    assert body["nats"] == {"pub": {"allow": ["a.b"]}, "type": "user", "version": 2}
    # The signature is ed25519 by the issuer's key over "header.claims", checked here with the raw key.
    raw_public = base64.b32decode(public_key(seed))[1:33]
    sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    nacl.signing.VerifyKey(raw_public).verify(f"{header}.{claims}".encode(), sig)
    decoded = decode(token)
    assert decoded.kind == "user"
    assert decoded.issuer == public_key(seed)


def test_public_keys_have_the_nkey_prefix_of_their_kind() -> None:
    assert public_key(new_key("operator")).startswith("O")
    assert public_key(new_key("account")).startswith("A")
    assert public_key(new_key("user")).startswith("U")
    assert new_key("user").startswith(b"SU")


def test_a_tampered_or_forged_jwt_does_not_verify() -> None:
    seed = new_key("account")
    token = encode("user", public_key(new_key("user")), "bank-bjb", {}, signer=seed)
    header, claims, signature = token.split(".")
    widened = dict(_part(token, 1))
    widened["name"] = "bank-other"
    forged_claims = base64.urlsafe_b64encode(json.dumps(widened).encode()).rstrip(b"=").decode()
    with pytest.raises(JwtError):
        decode(f"{header}.{forged_claims}.{signature}")
    # Claims signed by another key but naming the first as issuer.
    other = encode("user", public_key(new_key("user")), "bank-bjb", {}, signer=new_key("account"))
    with pytest.raises(JwtError):
        decode(f"{header}.{claims}.{other.split('.')[2]}")
    with pytest.raises(JwtError):
        decode("not.a-jwt")
    assert decode(f"{header}.{forged_claims}.{signature}", verify=False).claims["name"] == "bank-other"


def test_the_jti_is_the_hash_of_the_claims() -> None:
    seed = new_key("account")
    a = encode("user", public_key(new_key("user")), "x", {}, signer=seed, issued_at=1)
    b = encode("user", public_key(new_key("user")), "x", {}, signer=seed, issued_at=1)
    assert _part(a, 1)["jti"] != _part(b, 1)["jti"]
    assert len(str(_part(a, 1)["jti"])) == 52  # base32 of 32 bytes, unpadded


def test_creds_text_is_what_nats_py_reads() -> None:
    from nats.aio.client import Client, RawCredentials

    seed = new_key("user")
    token = encode("user", public_key(seed), "bank-bjb", {}, signer=new_key("account"))
    text = creds_text(token, seed)
    assert creds_jwt(text) == token
    client = Client()
    assert bytes(client._read_creds_user_jwt(RawCredentials(text))) == token.encode()
    assert bytes(client._read_creds_user_nkey(RawCredentials(text))) == seed
    assert BytesIO(text.encode()).read().count(b"-----BEGIN") == 2


# ---- the auth directory ----------------------------------------------------------------------------------


def test_init_creates_keys_0600_and_is_idempotent(tmp_path: Path) -> None:
    auth = AuthDir.init(tmp_path / "auth")
    seeds = sorted(auth.keys_dir.rglob("*.nk"))
    assert len(seeds) == 4 + 1 + len(IntegratorRole)  # operator, 3 accounts, platform + one per role
    for path in [*seeds, *auth.creds_dir.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(auth.keys_dir.stat().st_mode) == 0o700
    jwts = [auth.jwt_dir / f"{a}.jwt" for a in ACCOUNTS]
    before = {p: p.read_bytes() for p in [*seeds, *auth.creds_dir.iterdir(), *jwts]}
    AuthDir.init(tmp_path / "auth")
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.stem for p in auth.creds_dir.iterdir()) == sorted(PLATFORM_USERS)
    text = auth.server_config.read_text()
    for seed in auth.keys_dir.rglob("*.nk"):  # no seed in the server's file
        assert seed.read_text().strip() not in text
    assert f"system_account: {json.dumps(auth.account_key('SYS'))}" in text


def test_integrators_account_has_one_scoped_key_per_role_with_its_template(tmp_path: Path) -> None:
    auth = AuthDir.init(tmp_path / "auth")
    platform = decode(auth.account_jwt("KUMKM"))
    assert platform.issuer == auth.public("operator")
    assert platform.subject == auth.account_key("KUMKM")
    assert platform.nats["limits"]["disk_storage"] == -1  # JetStream enabled
    assert all(isinstance(k, str) for k in platform.nats["signing_keys"])  # no integrator role's key
    # KUMKM exports every integrator subject as a service; INTEGRATORS imports each of them.
    ext = sorted({t for types in ROLE_EVENTS.values() for t in types})
    exports = platform.nats["exports"]
    assert [(e["type"], e["subject"]) for e in exports] == [("service", f"{t}.*") for t in ext]
    account = decode(auth.account_jwt(INTEGRATORS))
    assert account.issuer == auth.public("operator")
    assert account.subject == auth.account_key(INTEGRATORS)
    assert "disk_storage" not in account.nats["limits"]  # no JetStream of its own
    imports = account.nats["imports"]
    assert [(i["type"], i["subject"], i["account"]) for i in imports] == [
        ("service", f"{t}.*", auth.account_key("KUMKM")) for t in ext
    ]
    scoped = [k for k in account.nats["signing_keys"] if isinstance(k, dict)]
    assert {k["role"] for k in scoped} == {r.value for r in IntegratorRole}
    for key in scoped:
        role = IntegratorRole(key["role"])
        assert key["kind"] == "user_scope"
        assert key["template"]["pub"] == {"allow": [f"{t}.{{{{name()}}}}" for t in ROLE_EVENTS[role]]}
        assert key["template"]["sub"] == {"allow": ["_INBOX_{{name()}}.>"]}
        assert role_template(role)["pub"] == key["template"]["pub"]
    operator = decode(auth.operator_jwt())
    assert operator.nats["system_account"] == auth.account_key("SYS")


def test_an_integrator_user_is_named_after_its_org_signed_by_its_role_key_with_no_permissions(
    tmp_path: Path,
) -> None:
    auth = AuthDir.init(tmp_path / "auth")
    issued = auth.issue_integrator("bank-bjb", IntegratorRole.LENDER)
    user = decode(creds_jwt(issued.creds))
    assert user.claims["name"] == "bank-bjb"
    assert user.subject == issued.public_key
    assert user.issuer == issued.signing_key == auth.role_keys(IntegratorRole.LENDER)[-1]
    # A scoped key's user carries nothing but its account: the server applies the role's template.
    assert user.nats == {"issuer_account": auth.account_key(INTEGRATORS), "type": "user", "version": 2}
    with pytest.raises(AuthDirError):
        auth.issue_integrator("Bank.BJB", IntegratorRole.LENDER)


def test_platform_users_carry_the_permissions_table(tmp_path: Path) -> None:
    auth = AuthDir.init(tmp_path / "auth")
    for user, (account, permissions) in PLATFORM_USERS.items():
        token = decode(creds_jwt(auth.creds_path(user).read_text()))
        assert token.claims["name"] == user
        for direction in ("pub", "sub"):
            assert token.nats[direction] == permissions.get(direction, {})
        if account == "SYS":
            assert token.issuer == auth.account_key("SYS")
        else:
            assert token.issuer == auth.platform_signing_key()
            assert token.nats["issuer_account"] == auth.account_key("KUMKM")


def test_revocations_rotation_and_retirement_reissue_the_account(tmp_path: Path) -> None:
    auth = AuthDir.init(tmp_path / "auth")
    first = decode(auth.account_jwt(INTEGRATORS)).issued_at
    issued = auth.issue_integrator("bank-bjb", IntegratorRole.LENDER)
    revoked = decode(auth.revoke([issued.public_key]))
    assert revoked.nats["revocations"][issued.public_key] >= decode(creds_jwt(issued.creds)).issued_at
    assert revoked.issued_at > first  # the resolver keeps the newer JWT: never the same second
    assert auth.account_jwt(INTEGRATORS) in auth.server_config.read_text()
    assert decode(auth.account_jwt("KUMKM")).issued_at <= first  # the platform's account is untouched

    old = auth.role_keys(IntegratorRole.SELLER)
    new, _ = auth.rotate_role_key(IntegratorRole.SELLER)
    assert auth.role_keys(IntegratorRole.SELLER) == [*old, new]
    assert auth.issue_integrator("toko-a", IntegratorRole.SELLER).signing_key == new
    with pytest.raises(AuthDirError, match="signs new users"):
        auth.retire_role_key(IntegratorRole.SELLER, new)
    retired, token = auth.retire_role_key(IntegratorRole.SELLER)
    assert retired == old[0]
    assert retired not in json.dumps(decode(token).nats["signing_keys"])
    assert issued.public_key in decode(token).nats["revocations"]  # revocations survive
    with pytest.raises(AuthDirError, match="one signing key"):
        auth.retire_role_key(IntegratorRole.SELLER)
    with pytest.raises(AuthDirError):
        auth.revoke(["not-a-user-key"])


def test_an_account_jwt_not_issued_by_the_operator_is_refused(tmp_path: Path) -> None:
    """Every account JWT verifies against its own iss: the directory also requires iss = its operator."""
    auth = AuthDir.init(tmp_path / "auth")
    other = AuthDir.init(tmp_path / "other")
    (auth.jwt_dir / f"{INTEGRATORS}.jwt").write_text(other.account_jwt(INTEGRATORS))
    with pytest.raises(AuthDirError, match="not signed by this directory's operator"):
        auth.role_keys(IntegratorRole.LENDER)
    # Signed by the right operator, but another account's JWT in its place.
    (auth.jwt_dir / f"{INTEGRATORS}.jwt").write_text(auth.account_jwt("KUMKM"))
    with pytest.raises(AuthDirError, match="not the JWT of account"):
        auth.issue_integrator("bank-bjb", IntegratorRole.LENDER)


def test_init_moves_integrator_roles_out_of_an_old_platform_account(tmp_path: Path) -> None:
    """A directory from before INTEGRATORS (the roles' scoped keys in KUMKM, no exports) is upgraded."""
    auth = AuthDir.init(tmp_path / "auth")
    claims = decode(auth.account_jwt("KUMKM")).nats
    old_scoped = {"kind": "user_scope", "key": auth.role_keys(IntegratorRole.LENDER)[0], "role": "lender"}
    legacy = {k: v for k, v in claims.items() if k not in {"exports", "type", "version"}}
    legacy["signing_keys"] = [*claims["signing_keys"], old_scoped]
    token = encode(
        "account", auth.account_key("KUMKM"), "KUMKM", legacy, signer=auth._seed("operator"), issued_at=1
    )
    (auth.jwt_dir / "KUMKM.jwt").write_text(token)
    (auth.jwt_dir / f"{INTEGRATORS}.jwt").unlink()
    upgraded = AuthDir.init(tmp_path / "auth")
    platform = decode(upgraded.account_jwt("KUMKM")).nats
    assert all(isinstance(k, str) for k in platform["signing_keys"])
    assert platform["exports"]
    assert upgraded.role_keys(IntegratorRole.LENDER)
    assert upgraded.account_jwt(INTEGRATORS) in upgraded.server_config.read_text()


@pytest.mark.parametrize(
    "name", sorted({*PLATFORM_USERS, "operator", "sys", "provision", "monitoring", "console"})
)
def test_a_platform_user_or_service_name_is_no_organisation_id(name: str, tmp_path: Path) -> None:
    """Review 12, finding 3: an org named `loans` had a template allowing `_INBOX_loans.>`."""
    assert name in RESERVED_ORG_IDS
    problem = org_id_problem(name)
    assert problem is not None
    assert "reserved" in problem
    auth = AuthDir.init(tmp_path / "auth")
    with pytest.raises(AuthDirError, match="reserved"):
        auth.issue_integrator(name, IntegratorRole.LENDER)
    with pytest.raises(ValueError, match="reserved"):
        sender_subject("kumkm.loans.loan.disbursed.v1", name)
    assert org_id_problem("bank-bjb") is None
