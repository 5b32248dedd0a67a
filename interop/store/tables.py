"""The tables holding every FHIR resource, every version of it, and its search index.

`resource` keeps the current version of each resource (deleted ones too, as tombstones, so
that a read can answer 410 Gone); `resource_version` keeps every version ever written, which
is what history and vread serve; `search_index` keeps the values the search parameters of
interop.store.search_params extract, one row per value.
"""

from datetime import datetime

from typing import Final

from sqlalchemy import Column, Index, LargeBinary, Table, UniqueConstraint
from sqlmodel import Field, SQLModel


class ResourceRow(SQLModel, table=True):
    """The current version of one resource, stored as the JSON bytes served on reads."""

    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", name="uq_resource_type_id"),
        Index("ix_resource_type_updated", "resource_type", "last_updated"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    last_updated: datetime
    deleted: bool = False
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class ResourceVersionRow(SQLModel, table=True):
    """One version of one resource; a delete is a version without content."""

    __tablename__ = "resource_version"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "version_id", name="uq_resource_version"),
        Index("ix_resource_version_updated", "resource_type", "last_updated"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    last_updated: datetime = Field(index=True)
    method: str = Field(max_length=8)
    content: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class SearchIndexRow(SQLModel, table=True):
    """One value of one search parameter of one current resource.

    Columns by parameter type: token -> system, value; string -> value (as written), norm
    (case- and accent-folded); reference -> system (target type), value (target id), norm (the
    absolute URL when the reference was absolute); date -> lo, hi (the UTC range it covers).
    """

    __tablename__ = "search_index"
    __table_args__ = (
        Index("ix_search_value", "resource_type", "param", "value"),
        Index("ix_search_norm", "resource_type", "param", "norm"),
        Index("ix_search_date", "resource_type", "param", "lo", "hi"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    resource_pk: int = Field(foreign_key="resource.pk", index=True, ondelete="CASCADE")
    resource_type: str = Field(max_length=64)
    param: str = Field(max_length=64)
    system: str | None = Field(default=None, max_length=1024)
    value: str | None = Field(default=None, max_length=2048)
    norm: str | None = Field(default=None, max_length=2048)
    lo: datetime | None = None
    hi: datetime | None = None


RESOURCE_TABLE: Final[Table] = ResourceRow.__table__  # type: ignore[attr-defined]
VERSION_TABLE: Final[Table] = ResourceVersionRow.__table__  # type: ignore[attr-defined]
INDEX_TABLE: Final[Table] = SearchIndexRow.__table__  # type: ignore[attr-defined]
"""Typed handles on the tables, for SQL expressions (SQLModel types the fields as values)."""
