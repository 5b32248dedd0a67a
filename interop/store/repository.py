"""Queries and writes of FHIR resources; the caller owns the transaction (flush, never commit)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, false, insert, select, tuple_
from sqlmodel import Session

from interop.store import markers, search
from interop.store.search_params import IndexValue, ParamType, params_for
from interop.store.tables import (
    INDEX_TABLE,
    RESOURCE_TABLE,
    VERSION_TABLE,
    ResourceRow,
    ResourceVersionRow,
)

RESOURCE = RESOURCE_TABLE.c
VERSION = VERSION_TABLE.c
INDEX = INDEX_TABLE.c
_NEW_RESOURCE = insert(RESOURCE_TABLE).returning(RESOURCE.pk)
_NEW_VERSION = insert(VERSION_TABLE)
"""Built once: every write runs them, and a statement built per call is compiled per call."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of a resource as served: its identity, its time and its JSON bytes."""

    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    method: str
    content: bytes | None  # None for a deletion
    origin: str  # the organization on whose behalf this version was written
    custodians: tuple[str, ...]  # every organization that wrote a version up to this one

    def with_origin(self, origin: str, earlier: tuple[str, ...]) -> "StoredVersion":
        """This version as written by `origin` after the custodians `earlier`."""
        custodians = earlier if origin in earlier else (*earlier, origin)
        return replace(self, origin=origin, custodians=custodians)


class GateFacts(NamedTuple):
    """What the gate can tell of a current row without reading its content; a tuple, since a
    search builds one per match (thousands) before deciding any."""

    key: int
    resource_id: str
    custodians: tuple[str, ...]
    patient: str | None
    """`Patient/{id}`, '' when it names none, None when not recorded (an older row)."""


_LATEST = select(
    RESOURCE.version_id,
    RESOURCE.last_updated,
    RESOURCE.deleted,
    RESOURCE.content,
    RESOURCE.origin,
    RESOURCE.custodians,
).where(
    RESOURCE.resource_type == bindparam("resource_type"),
    RESOURCE.resource_id == bindparam("resource_id"),
)


class ResourceRepository:
    """All SQL about resources, their versions and their search index."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def session(self) -> Session:
        """The caller's transaction, for writes that must commit with the resource's."""
        return self._session

    def current(
        self, resource_type: str, resource_id: str, *, lock: bool = False
    ) -> ResourceRow | None:
        """The current row, locked against concurrent writers when `lock` is set."""
        statement = select(ResourceRow).where(
            RESOURCE.resource_type == resource_type, RESOURCE.resource_id == resource_id
        )
        if lock:
            statement = statement.with_for_update()
        return self._session.execute(statement).scalars().first()

    def latest(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        """The current version (content None once deleted), read without the ORM: every read
        by id pays for this."""
        found = self._session.execute(
            _LATEST, {"resource_type": resource_type, "resource_id": resource_id}
        ).first()
        if found is None:
            return None
        return StoredVersion(
            resource_type, resource_id, found.version_id, found.last_updated, "PUT",
            None if found.deleted else found.content, found.origin,
            tuple(found.custodians.split()),
        )  # fmt: skip

    def versions_named(
        self, names: Sequence[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        """Many versions by (type, id, version) in one query: an export file's lines are
        decided again as it is downloaded, a chunk at a time."""
        if not names:
            return {}
        statement = select(ResourceVersionRow).where(
            tuple_(VERSION.resource_type, VERSION.resource_id, VERSION.version_id).in_(names)
        )
        return {
            (row.resource_type, row.resource_id, row.version_id): _stored(row)
            for row in self._session.execute(statement).scalars()
        }

    def version(
        self, resource_type: str, resource_id: str, version_id: int
    ) -> StoredVersion | None:
        statement = select(ResourceVersionRow).where(
            VERSION.resource_type == resource_type,
            VERSION.resource_id == resource_id,
            VERSION.version_id == version_id,
        )
        row = self._session.execute(statement).scalars().first()
        return _stored(row) if row is not None else None

    def write(
        self,
        existing: ResourceRow | None,
        stored: StoredVersion,
        index: Sequence[IndexValue],
        *,
        patient: str | None,
    ) -> None:
        """Record a new version as current, in history, and in the search index. `patient` is
        whose record it is as the gate reads it (None when it names none, stored as ''; NULL
        is left for rows stored before it was recorded): asked of every writer, since a
        search sets aside by it what the gate would withhold."""
        custodians = " ".join(stored.custodians)
        current = {
            "version_id": stored.version_id,
            "last_updated": stored.last_updated,
            "deleted": stored.content is None,
            "content": stored.content,
            "origin": stored.origin,
            "custodians": custodians,
            "patient": patient or "",
        }
        if existing is None:
            # A plain insert: no ORM object, which would cost a flush of its own.
            key = {"resource_type": stored.resource_type, "resource_id": stored.resource_id}
            pk: int = self._session.execute(_NEW_RESOURCE, {**key, **current}).scalar_one()
        else:
            for name, value in current.items():
                setattr(existing, name, value)
            self._session.add(existing)
            self._session.flush()
            assert existing.pk is not None
            pk = existing.pk
        markers.note_write(self._session, stored.resource_type)
        # History and index rows as plain inserts, many at once: ORM objects for dozens of
        # index values per write cost more than the database does.
        self._session.execute(
            _NEW_VERSION,
            {
                "resource_type": stored.resource_type,
                "resource_id": stored.resource_id,
                "version_id": stored.version_id,
                "last_updated": stored.last_updated,
                "method": stored.method,
                "content": stored.content,
                "origin": stored.origin,
                "custodians": custodians,
            },
        )
        self._replace_index(pk, stored.resource_type, index, fresh=existing is None)

    def _replace_index(
        self,
        resource_pk: int,
        resource_type: str,
        index: Sequence[IndexValue],
        *,
        fresh: bool,
    ) -> None:
        if not fresh:
            self._session.execute(delete(INDEX_TABLE).where(INDEX.resource_pk == resource_pk))
        if not index:
            return
        self._session.execute(
            insert(INDEX_TABLE),
            [
                {
                    "resource_pk": resource_pk,
                    "resource_type": resource_type,
                    "param": value.param,
                    "system": value.system,
                    "value": value.value,
                    "norm": value.norm,
                    "lo": value.lo,
                    "hi": value.hi,
                }
                for value in index
            ],
        )

    def match_keys(self, query: search.SearchQuery) -> list[int]:
        """The keys of every match, in the query's sort order: keys alone, so that a search
        with thousands of matches loads only the rows of the page it sends."""
        statement = search.matching_rows(query).order_by(*search.sort_columns(query))
        return list(self._session.execute(statement).scalars())

    def match_facts(self, query: search.SearchQuery) -> list[GateFacts]:
        """Every match in the query's sort order, with what the gate can tell of it without
        its content (its custodians and patient): what a search sets aside before it reads."""
        statement = (
            search.matching_rows(query)
            .with_only_columns(*_FACTS)
            .order_by(*search.sort_columns(query))
        )
        return _gate_facts(self._session.execute(statement))

    def rows(self, keys: Sequence[int]) -> list[ResourceRow]:
        """The current, undeleted rows with these keys, in the order given (one deleted since
        its key was read is left out)."""
        if not keys:
            return []
        statement = select(ResourceRow).where(RESOURCE.pk.in_(keys), RESOURCE.deleted == false())
        found = {row.pk: row for row in self._session.execute(statement).scalars()}
        return [found[key] for key in keys if key in found]

    def page_after(
        self, query: search.SearchQuery, after: int, limit: int
    ) -> list[tuple[int, StoredVersion]]:
        """Up to `limit` matches whose key follows `after`, in key order, with their keys:
        keyset paging, so that a long walk (bulk export, $everything) costs O(page) per page,
        not O(matches); read as plain rows, since a walk of millions needs no ORM objects."""
        keys = (
            search.matching_rows(query)
            .where(RESOURCE.pk > after)
            .order_by(RESOURCE.pk.asc())
            .limit(limit)
        )
        pks = list(self._session.execute(keys).scalars())
        return self.versions(pks)

    def facts_after(self, query: search.SearchQuery, after: int, limit: int) -> list[GateFacts]:
        """As `page_after`, what the gate can tell of each match without its content: a walk
        sets aside what these settle before it reads the rest (`versions`)."""
        statement = (
            search.matching_rows(query)
            .with_only_columns(*_FACTS)
            .where(RESOURCE.pk > after)
            .order_by(RESOURCE.pk.asc())
            .limit(limit)
        )
        return _gate_facts(self._session.execute(statement))

    def versions(self, keys: Sequence[int]) -> list[tuple[int, StoredVersion]]:
        """The current versions of the undeleted rows with these keys, in key order, read as
        plain rows: walks and counts over thousands need no ORM objects."""
        if not keys:
            return []
        statement = (
            select(
                RESOURCE.pk,
                RESOURCE.resource_type,
                RESOURCE.resource_id,
                RESOURCE.version_id,
                RESOURCE.last_updated,
                RESOURCE.content,
                RESOURCE.origin,
                RESOURCE.custodians,
            )
            .where(RESOURCE.pk.in_(keys), RESOURCE.deleted == false())
            .order_by(RESOURCE.pk.asc())
        )
        return [
            (
                pk,
                StoredVersion(
                    kind, ident, version, updated, "PUT", content, origin, tuple(who.split())
                ),
            )
            for pk, kind, ident, version, updated, content, origin, who in self._session.execute(
                statement
            )
        ]

    def included(self, pks: Sequence[int], inclusion: search.Inclusion) -> list[ResourceRow]:
        """The resources that the rows `pks` refer to through the inclusion's parameter."""
        if inclusion.param == "*":
            names = [
                p.name
                for p in params_for(inclusion.source_type).values()
                if p.type is ParamType.REFERENCE
            ]
        else:
            names = [inclusion.param]
        pairs = self._session.execute(search.references_from(pks, inclusion, names)).all()
        return self.current_rows({(str(kind), str(ident)) for kind, ident in pairs})

    def revincluded(
        self, rows: Sequence[ResourceRow], inclusion: search.Inclusion
    ) -> list[ResourceRow]:
        """The `inclusion.source_type` resources that refer to any of `rows`."""
        targets: dict[str, list[str]] = {}
        for row in rows:
            targets.setdefault(row.resource_type, []).append(row.resource_id)
        statement = select(ResourceRow).where(
            RESOURCE.pk.in_(search.referencing(inclusion, targets)),
            RESOURCE.deleted.is_(false()),
        )
        return list(self._session.execute(statement).scalars())

    def current_rows(self, identities: set[tuple[str, str]]) -> list[ResourceRow]:
        """Current undeleted rows for (type, id) pairs; unknown ones are simply absent."""
        by_type: dict[str, list[str]] = {}
        for kind, ident in identities:
            by_type.setdefault(kind, []).append(ident)
        rows: list[ResourceRow] = []
        for kind, ids in by_type.items():
            statement = select(ResourceRow).where(
                RESOURCE.resource_type == kind,
                RESOURCE.resource_id.in_(ids),
                RESOURCE.deleted.is_(false()),
            )
            rows.extend(self._session.execute(statement).scalars())
        return rows

    def history(
        self, resource_type: str | None, resource_id: str | None, since: datetime | None
    ) -> list[StoredVersion]:
        """Every version in scope, newest first (R4 §3.1.0.10 history)."""
        conditions = []
        if resource_type is not None:
            conditions.append(VERSION.resource_type == resource_type)
        if resource_id is not None:
            conditions.append(VERSION.resource_id == resource_id)
        if since is not None:
            conditions.append(VERSION.last_updated >= since)
        statement = (
            select(ResourceVersionRow)
            .where(*conditions)
            .order_by(VERSION.last_updated.desc(), VERSION.pk.desc())
        )
        return [_stored(row) for row in self._session.execute(statement).scalars()]


_FACTS = (RESOURCE.pk, RESOURCE.resource_id, RESOURCE.custodians, RESOURCE.patient)


def _gate_facts(rows: Iterable[Any]) -> list[GateFacts]:
    return [GateFacts(row[0], row[1], tuple(row[2].split()), row[3]) for row in rows]


def _stored(row: ResourceVersionRow) -> StoredVersion:
    return StoredVersion(
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        method=row.method,
        content=row.content,
        origin=row.origin,
        custodians=tuple(row.custodians.split()),
    )


def current_version(row: ResourceRow) -> StoredVersion:
    """The current row as the version it holds."""
    return StoredVersion(
        row.resource_type,
        row.resource_id,
        row.version_id,
        row.last_updated,
        "PUT",
        row.content,
        row.origin,
        tuple(row.custodians.split()),
    )
