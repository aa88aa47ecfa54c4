"""The row type the repository returns."""

from typing import Any

Record = Any  # asyncpg.Record; typed loosely because its values are heterogeneous
