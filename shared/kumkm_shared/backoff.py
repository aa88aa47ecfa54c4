"""The retry delay: exponential in the delivery count, jittered, capped. Pure; used by the consumer wrapper
and by notifications' delivery policy."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(self, delivery_count: int) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, delivery_count - 1))
        return raw * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - jitter, not crypto
