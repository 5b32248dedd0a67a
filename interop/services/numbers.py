"""Whole numbers as clients write them in URLs and headers: ASCII digits only, and no larger
than the databases store, so that `²`, `٣` or 2^63 is a client's mistake (4xx), not a
ValueError or an OverflowError deep in a query (500)."""

import re
from typing import Final

LARGEST: Final = 2**63 - 1
"""The largest integer both SQLite and PostgreSQL (BIGINT) hold."""
_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(text: str) -> int | None:
    """The number `text` spells in ASCII digits, or None when it spells none that fits."""
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if number <= LARGEST else None
