"""FHIR search criteria as SQL over the search index (R4 §3.1.1 Search).

A criterion is one query parameter: its values are ORed, repeated parameters are ANDed.
Everything here builds SQLAlchemy expressions; parsing the query string into criteria is the
services layer's job, so that the rules of FHIR search syntax and those of SQL stay apart.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true
from sqlalchemy.sql.elements import KeyedColumnElement

from interop.store.search_params import ParamType, SearchParam, normalize, token_system
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE

RESOURCE = RESOURCE_TABLE.c
INDEX = INDEX_TABLE.c

ID_PARAM = "_id"
LAST_UPDATED_PARAM = "_lastUpdated"


TotalMode = Literal["none", "estimate", "accurate"]
"""R4 `_total`: whether a searchset counts its matches (a partner's count costs a decision per
match, so `none` and `estimate` stop once the page is full)."""


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "": explicitly no system ("|code")
    code: str | None  # None: any code in the system ("system|")


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str  # eq ne gt lt ge le sa eb ap
    lo: datetime
    hi: datetime


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    target_type: str | None
    target_id: str | None
    absolute_url: str | None  # a reference to another server, matched as written


SearchValue = TokenValue | DateValue | ReferenceValue | str


@dataclass(frozen=True, slots=True)
class Criterion:
    """One parameter of a query: `name:modifier=v1,v2` (values ORed)."""

    name: str
    param: SearchParam | None  # None for _id and _lastUpdated, which live on the resource row
    modifier: str | None
    values: tuple[SearchValue, ...]
    missing: bool | None = None  # set for :missing=true|false


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    param: SearchParam | None
    descending: bool


@dataclass(frozen=True, slots=True)
class Inclusion:
    """_include / _revinclude: source type, its reference parameter, optional target type."""

    source_type: str
    param: str
    target_type: str | None
    iterate: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    sort: tuple[SortKey, ...] = ()
    includes: tuple[Inclusion, ...] = ()
    revincludes: tuple[Inclusion, ...] = ()
    offset: int = 0
    count: int = 50
    summary_count: bool = False
    ignored: tuple[str, ...] = field(default=())
    total: TotalMode = "accurate"


def matching_rows(query: SearchQuery) -> Select[tuple[int]]:
    """The primary keys of the current, undeleted resources the criteria select, at a cost
    that follows the matches rather than the table.

    A criterion that selects through the index names the type already: asking the resource
    table for the type as well would let the database walk every resource of the type
    (SQLite does). With `_id` the type is kept, since the two find the row by key together.
    When one criterion names the patient (`patient=`, `subject=`: one person's records, few
    next to the type), it alone gives the candidate keys, and each other criterion with exact
    values is asked of each candidate (`_probed`), so that `CarePlan?patient=X&status=active`
    never lists every active CarePlan. An organization (`owner=`) may be named by thousands:
    there the lists of keys cost less than asking each."""
    criteria = query.criteria
    statement = select(RESOURCE.pk).where(RESOURCE.deleted == false())
    if not any(map(_selects_through_index, criteria)) or any(c.name == ID_PARAM for c in criteria):
        statement = statement.where(RESOURCE.resource_type == query.resource_type)
    driver = next((c for c in criteria if _names_the_patient(c)), None)
    for criterion in criteria:
        param = criterion.param
        if driver is not None and criterion is not driver and param and _probeable(criterion):
            statement = statement.where(_probed(query.resource_type, param.name, criterion))
        else:
            statement = statement.where(_criterion(query.resource_type, criterion))
    return statement


def sort_columns(query: SearchQuery) -> list[Any]:
    """ORDER BY terms; ties are broken by insertion order so paging is stable."""
    terms: list[Any] = []
    for key in query.sort:
        column = _sort_column(query.resource_type, key)
        terms.append(column.desc().nulls_last() if key.descending else column.asc().nulls_last())
    terms.append(RESOURCE.pk.asc())
    return terms


def _sort_column(resource_type: str, key: SortKey) -> Any:
    if key.param is None:
        return RESOURCE.resource_id if key.name == ID_PARAM else RESOURCE.last_updated
    index = INDEX
    if key.param.type is ParamType.DATE:
        column: KeyedColumnElement[Any] = index.hi if key.descending else index.lo
    elif key.param.type is ParamType.STRING:
        column = index.norm
    else:
        column = index.value
    aggregate = func.max(column) if key.descending else func.min(column)
    return (
        select(aggregate)
        .where(
            index.resource_pk == RESOURCE.pk,
            index.resource_type == resource_type,
            index.param == key.param.name,
        )
        .scalar_subquery()
    )


def _criterion(resource_type: str, criterion: Criterion) -> ColumnElement[bool]:
    if criterion.param is None:
        return _row_criterion(criterion)
    indexed = _indexed(resource_type, criterion.param.name)
    if criterion.missing is not None:
        has_value = RESOURCE.pk.in_(indexed)
        return not_(has_value) if criterion.missing else has_value
    matches = _matches(criterion)
    if criterion.modifier == "not":
        return not_(RESOURCE.pk.in_(indexed.where(matches)))
    return RESOURCE.pk.in_(indexed.where(matches))


def _indexed(resource_type: str, param: str) -> Select[tuple[int]]:
    """The keys of the type's resources the index lists under `param`."""
    return select(INDEX.resource_pk).where(
        INDEX.resource_type == resource_type, INDEX.param == param
    )


def _matches(criterion: Criterion) -> ColumnElement[bool]:
    """An index row holding one of the criterion's values (they are ORed)."""
    return or_(*(_value_condition(criterion, value) for value in criterion.values))


def _selects_through_index(criterion: Criterion) -> bool:
    """Whether the criterion keeps only resources listed in the index under the query's type
    (`_criterion`: a value, or `:missing=false`), never those absent from it."""
    return criterion.param is not None and criterion.modifier != "not" and not criterion.missing


_PATIENT_PARAMS: Final = frozenset({"patient", "subject", "beneficiary"})
"""Reference parameters naming whom a record is about (R4 search parameters of the stored
types)."""


def _names_the_patient(criterion: Criterion) -> bool:
    """A criterion naming the person records are about, by type and id."""
    return (
        criterion.param is not None
        and criterion.param.type is ParamType.REFERENCE
        and criterion.param.name in _PATIENT_PARAMS
        and _probeable(criterion)
    )


def _probeable(criterion: Criterion) -> bool:
    """Whether each of the criterion's values is an exact index value (a token's code, a
    reference's id), so that asking it of one resource is one index lookup."""
    if criterion.param is None or criterion.modifier is not None or criterion.missing is not None:
        return False
    return all(
        (isinstance(value, TokenValue) and value.code is not None)
        or (
            isinstance(value, ReferenceValue)
            and value.target_id is not None
            and value.absolute_url is None
        )
        for value in criterion.values
    )


def _probed(resource_type: str, param: str, criterion: Criterion) -> ColumnElement[bool]:
    """`_criterion` asked of the candidate row: an index lookup by type, parameter, value and
    key (ix_search_value_key) instead of the list of every resource the criterion matches."""
    return (
        _indexed(resource_type, param)
        .where(INDEX.resource_pk == RESOURCE.pk, _matches(criterion))
        .exists()
    )


def _row_criterion(criterion: Criterion) -> ColumnElement[bool]:
    if criterion.name == ID_PARAM:
        ids = [value for value in criterion.values if isinstance(value, str)]
        return RESOURCE.resource_id.in_(ids)
    dates = [value for value in criterion.values if isinstance(value, DateValue)]
    lu = RESOURCE.last_updated
    return or_(*(_date_condition(value, lu, lu) for value in dates))


def _value_condition(criterion: Criterion, value: SearchValue) -> ColumnElement[bool]:
    index = INDEX
    if isinstance(value, TokenValue):
        return _token_condition(value)
    if isinstance(value, DateValue):
        return _date_condition(value, index.lo, index.hi)
    if isinstance(value, ReferenceValue):
        return _reference_condition(value)
    return _string_condition(criterion.modifier, value)


def _token_condition(value: TokenValue) -> ColumnElement[bool]:
    index = INDEX
    conditions: list[ColumnElement[bool]] = []
    if value.system == "":
        conditions.append(index.system.is_(None))
    elif value.system is not None:
        conditions.append(index.system == token_system(value.system))
    if value.code is not None:
        conditions.append(index.value == value.code)
    return and_(true(), *conditions)


def _string_condition(modifier: str | None, value: str) -> ColumnElement[bool]:
    index = INDEX
    if modifier == "exact":
        return index.value == value
    pattern = _escape_like(normalize(value))
    if modifier == "contains":
        return index.norm.like(f"%{pattern}%", escape="\\")
    return index.norm.like(f"{pattern}%", escape="\\")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _reference_condition(value: ReferenceValue) -> ColumnElement[bool]:
    index = INDEX
    if value.absolute_url is not None:
        return index.norm == value.absolute_url
    conditions: list[ColumnElement[bool]] = [index.norm.is_(None)]
    if value.target_type is not None:
        conditions.append(index.system == value.target_type)
    if value.target_id is not None:
        conditions.append(index.value == value.target_id)
    return and_(*conditions)


def _date_condition(
    value: DateValue, lo: ColumnElement[Any], hi: ColumnElement[Any]
) -> ColumnElement[bool]:
    """The prefix semantics of R4 §3.1.1.4.7: each side is a range, not a point."""
    contained = and_(lo >= value.lo, hi <= value.hi)
    match value.prefix:
        case "eq":
            return contained
        case "ne":
            return not_(contained)
        case "gt":
            return hi > value.hi
        case "lt":
            return lo < value.lo
        case "ge":
            return or_(hi > value.hi, contained)
        case "le":
            return or_(lo < value.lo, contained)
        case "sa":
            return lo > value.hi
        case "eb":
            return hi < value.lo
    return and_(lo <= value.hi, hi >= value.lo)  # ap: the ranges overlap


def references_from(
    source_pks: Sequence[int], inclusion: Inclusion, reference_params: Sequence[str]
) -> Select[tuple[str | None, str | None]]:
    """(type, id) of the local resources that `source_pks` point at through the parameter."""
    index = INDEX
    statement = select(index.system, index.value).where(
        index.resource_pk.in_(source_pks),
        index.param.in_(reference_params),
        index.norm.is_(None),
    )
    if inclusion.target_type is not None:
        statement = statement.where(index.system == inclusion.target_type)
    return statement.distinct()


def referencing(inclusion: Inclusion, targets: dict[str, list[str]]) -> Select[tuple[int]]:
    """Primary keys of `inclusion.source_type` resources referring to any of the targets."""
    index = INDEX
    by_type = [
        and_(index.system == target_type, index.value.in_(ids))
        for target_type, ids in targets.items()
        if inclusion.target_type in (None, target_type)
    ]
    return (
        select(index.resource_pk)
        .where(
            index.resource_type == inclusion.source_type,
            index.param == inclusion.param,
            index.norm.is_(None),
            or_(false(), *by_type),
        )
        .distinct()
    )
