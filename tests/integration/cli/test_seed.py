"""The Kota Bekasi sample published into a real nats-server in operator mode, as `kumkm up --demo` does:
the registry organisation `disdagkop-bekasi` and the lender `lpdb-kumkm` each publish with their own NATS
user (issued from the auth directory, creds 0600) on `<type>.<org>`, with a mandate naming that user; the
whole sample takes seconds (pipelined publishes); a second seed in the same month adds nothing."""

from __future__ import annotations

import asyncio
import stat
import time
from collections import Counter
from typing import TYPE_CHECKING

import nats
import pytest
from rich.console import Console

from kumkm_shared.cli import seed
from kumkm_shared.cli.runinfo import RunInfo
from kumkm_shared.integrators import ROLE_EVENTS, IntegratorRole
from kumkm_shared.mandates import ALL_PARTIES, MandateBook
from kumkm_shared.messaging.provision import provision
from kumkm_shared.natsauth import AuthDir
from kumkm_shared.servers import EmbeddedNats
from kumkm_shared.testing.plugin import server_folder

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from nats.aio.client import Client

pytestmark = pytest.mark.integration


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[EmbeddedNats, AuthDir]]:
    auth = AuthDir.init(tmp_path / "nats-auth")
    with server_folder("kumkm-seed-") as folder:
        server = EmbeddedNats(folder, auth=auth)
        server.start()
        try:
            yield server, auth
        finally:
            server.stop()


async def _operator(server: EmbeddedNats, auth: AuthDir) -> Client:
    return await nats.connect(server.url, user_credentials=str(auth.creds_path("operator")))


async def _senders(nc: Client, stream: str) -> Counter[str]:
    """Messages on ``stream`` per subject's last token (the sending organisation)."""
    info = await nc.jetstream().stream_info(stream, subjects_filter=">")
    seen: Counter[str] = Counter()
    for subject, count in (info.state.subjects or {}).items():
        seen[subject.rsplit(".", 1)[1]] += count
    return seen


async def test_the_sample_is_published_by_its_organisations_with_their_own_users(
    system: tuple[EmbeddedNats, AuthDir], tmp_path: Path
) -> None:
    server, auth = system
    operator = await _operator(server, auth)
    try:
        await provision(operator.jetstream())
        info = RunInfo(nats_url=server.url, database_url="", nats_auth_dir=str(auth.root))
        sample = seed.generate()
        quiet = Console(file=(tmp_path / "seed.log").open("w"))
        started = time.perf_counter()
        published = await seed.seed(info, tmp_path, quiet, sample)
        elapsed = time.perf_counter() - started
        registry, loans = sample.registry_events(), sample.loan_events()
        assert (published.registry, published.loans) == (len(registry), len(loans))
        assert elapsed < 30, f"{len(registry) + len(loans)} events took {elapsed:.1f}s"
        js = operator.jetstream()
        assert (await js.stream_info("KUMKM_REGISTRY")).state.messages == len(registry)
        assert await _senders(operator, "KUMKM_REGISTRY") == Counter({seed.REGISTRY_ORG: len(registry)})
        book = MandateBook(js)
        for org, role, parties in (
            (seed.REGISTRY_ORG, IntegratorRole.REGISTRY, (ALL_PARTIES,)),
            (seed.LENDER_ORG, IntegratorRole.LENDER, (seed.LENDER,)),
        ):
            mandate = await book.get(org)
            assert mandate is not None
            assert mandate.active
            grant = mandate.grant(role)
            assert grant is not None
            assert grant.parties == parties
            (key,) = grant.user_keys
            creds = tmp_path / "demo" / f"{org}.{role}.creds"
            assert stat.S_IMODE(creds.stat().st_mode) == 0o600
            assert key not in auth.revocations()
            assert creds.read_text().count("BEGIN USER NKEY SEED") == 1
        # The lender's events sit on the loans stream, on its own token only.
        loans_subjects = await _senders(operator, "KUMKM_LOANS")
        assert loans_subjects == Counter({seed.LENDER_ORG: len(loans)})

        # Seeding again in the same month: the same ids, de-duplicated; the same users (no new creds).
        before = (tmp_path / "demo" / f"{seed.REGISTRY_ORG}.registry.creds").read_text()
        await seed.seed(info, tmp_path, quiet, seed.generate())
        await asyncio.sleep(0.2)
        assert (await js.stream_info("KUMKM_REGISTRY")).state.messages == len(registry)
        assert (await js.stream_info("KUMKM_LOANS")).state.messages == len(loans)
        assert (tmp_path / "demo" / f"{seed.REGISTRY_ORG}.registry.creds").read_text() == before
    finally:
        await operator.drain()


async def test_the_registry_organisation_cannot_publish_what_its_role_does_not_allow(
    system: tuple[EmbeddedNats, AuthDir], tmp_path: Path
) -> None:
    server, auth = system
    operator = await _operator(server, auth)
    try:
        await provision(operator.jetstream())
        info = RunInfo(nats_url=server.url, database_url="", nats_auth_dir=str(auth.root))
        creds = await seed.organisation_identity(
            operator.jetstream(), auth.root, tmp_path, seed.REGISTRY_ORG, IntegratorRole.REGISTRY,
            (ALL_PARTIES,), "x",
        )  # fmt: skip
        registry = await seed.org_connection(info, creds, seed.REGISTRY_ORG)
        try:
            # Its own registry events go; a loan event on its token is refused by the server (no PubAck).
            assert await seed.publish_events(registry.jetstream(), seed.generate().registry_events()[:3],
                                             seed.REGISTRY_ORG, ack_wait=5) == 3  # fmt: skip
            loan = seed.generate().loan_events()[:1]
            with pytest.raises(TimeoutError, match="no PubAck"):
                await seed.publish_events(registry.jetstream(), loan, seed.REGISTRY_ORG, ack_wait=1)
        finally:
            await registry.close()
        assert (await operator.jetstream().stream_info("KUMKM_LOANS")).state.messages == 0
    finally:
        await operator.drain()


def test_an_auth_directory_older_than_the_roles_events_is_named_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = AuthDir.init(tmp_path / "nats-auth")
    seed._check_role_template(auth, IntegratorRole.REGISTRY)
    newer = (*ROLE_EVENTS[IntegratorRole.REGISTRY], "kumkm.registry.survey.closed.v1")
    monkeypatch.setitem(ROLE_EVENTS, IntegratorRole.REGISTRY, newer)
    with pytest.raises(seed.StaleAuthDirError, match=r"survey\.closed.*new data folder"):
        seed._check_role_template(auth, IntegratorRole.REGISTRY)
