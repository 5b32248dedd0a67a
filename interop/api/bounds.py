"""Whole numbers in the paths, queries and forms of the routes that are not FHIR, bounded to
what the database stores (row numbers are INTEGER columns, 32 bits on PostgreSQL): 2**31 or a
page of a million rows is then the client's mistake, a 422 problem detail (an HTML page in the
console), never an overflow deep in a query (a 500). Declared once here, used by every such
route.
"""

from typing import Annotated, Final

from pydantic import Field

LARGEST_ROW: Final = 2**31 - 1
"""The largest row number an INTEGER column holds on PostgreSQL (SQLite's holds more)."""

PAGE_LIMIT: Final = 1000
"""The most rows one page of a staff listing holds."""

RowNumber = Annotated[int, Field(ge=1, le=LARGEST_ROW)]
"""A row's number: a delivery, a decision of the disclosure log, a held message, a version."""

Offset = Annotated[int, Field(ge=0, le=LARGEST_ROW)]
"""How many rows a page skips, or the number of the last row a keyset page starts after."""

PageSize = Annotated[int, Field(ge=1, le=PAGE_LIMIT)]
"""How many rows a page holds."""
