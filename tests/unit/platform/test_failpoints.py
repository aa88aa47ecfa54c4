"""Failpoints: the spec names what it arms, and fires only on the hit it waits for."""

from __future__ import annotations

import pytest

from kumkm_shared import failpoints


@pytest.fixture(autouse=True)
def _clean() -> object:
    failpoints.disarm()
    yield None
    failpoints.disarm()


def test_parse_reads_each_point_its_action_and_hit() -> None:
    armed = failpoints.parse("consumer.batch.after_commit=kill@3, relay.before_mark=raise")
    assert {n: (a.action, a.on_hit) for n, a in armed.items()} == {
        "consumer.batch.after_commit": ("kill", 3),
        "relay.before_mark": ("raise", 1),
    }


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("consumer.batch.nowhere=kill", "must be <name>=<action>"),
        ("relay.before_mark", "must be <name>=<action>"),
        ("relay.before_mark=explode", "the action must be one of kill, raise"),
        ("relay.before_mark=kill@0", "@n must be a positive whole number"),
        ("relay.before_mark=kill@x", "@n must be a positive whole number"),
    ],
)
def test_a_bad_spec_says_which_part_and_why(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        failpoints.parse(spec)
    assert failpoints.ENV in str(caught.value)


def test_fires_on_the_nth_hit_only() -> None:
    failpoints.arm(failpoints.RELAY_BEFORE_MARK, "raise", 2)
    assert failpoints.armed(failpoints.RELAY_BEFORE_MARK)
    failpoints.hit(failpoints.RELAY_BEFORE_MARK)  # the first: nothing
    with pytest.raises(failpoints.FailpointError, match="hit 2"):
        failpoints.hit(failpoints.RELAY_BEFORE_MARK)
    failpoints.hit(failpoints.RELAY_BEFORE_MARK)  # the third: nothing again


def test_an_unarmed_point_does_nothing() -> None:
    assert not failpoints.armed(failpoints.CONSUMER_BEFORE_COMMIT)
    failpoints.hit(failpoints.CONSUMER_BEFORE_COMMIT)
