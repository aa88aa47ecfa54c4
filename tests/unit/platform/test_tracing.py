from __future__ import annotations

import pytest

from kumkm_shared.messaging.tracing import child_traceparent, new_traceparent, trace_id

pytestmark = pytest.mark.unit


def test_child_continues_the_trace_with_a_new_span() -> None:
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert trace_id(child) == trace_id(parent)
    assert child != parent
    assert child.split("-")[2] != parent.split("-")[2]


def test_an_invalid_or_missing_parent_starts_a_new_trace() -> None:
    assert trace_id(child_traceparent(None)) is not None
    assert trace_id(child_traceparent("garbage")) is not None
    assert trace_id("garbage") is None
