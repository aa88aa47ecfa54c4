from __future__ import annotations

import pytest

from kumkm_shared import Backoff

pytestmark = pytest.mark.unit


def test_backoff_grows_with_the_delivery_count_and_is_capped() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=30.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=30.0, jitter=0.2)
    for _ in range(200):
        assert 3.2 <= backoff.delay(3) <= 4.8
