"""A Bulk Data kick-off request read into what a job will export (Bulk Data Access IG v2.0.0,
"Bulk Data Kick-off Request"), and the patient compartment it walks.

Supported: `_outputFormat` (NDJSON in its three spellings), `_since` (an instant; resources
last updated after it), `_type` and `_typeFilter` (each a search this server's parser accepts,
ORed per type). Anything else (`_elements`, `patient`, `includeAssociatedData`, an unknown
type, a type outside the patient compartment at Patient or Group level, a filter the parser
refuses) is a 400 OperationOutcome, or with `Prefer: handling=lenient` is left out and named
in the job's error file, as the IG allows.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from urllib.parse import parse_qsl

from interop.auth.requester import Requester
from interop.services.errors import InvalidRequest, ScopeInsufficient
from interop.services.search_parser import Paging, parse_search
from interop.store.fhirdates import parse_range
from interop.store.search import (
    ID_PARAM,
    LAST_UPDATED_PARAM,
    Criterion,
    DateValue,
    ReferenceValue,
    SearchQuery,
)
from interop.store.search_params import SUPPORTED_TYPES, params_for
from mappings.errors import Issue

NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
SYSTEM, PATIENT, GROUP = "system", "patient", "group"
COMPARTMENT_PARAM = "patient"
"""The reference parameter naming a resource's patient: what puts it in the compartment."""
_NARROWING = frozenset({"patient", "_elements", "includeAssociatedData"})
"""Kick-off parameters that narrow what is exported (Bulk Data v2): unsupported, so refused
whatever the handling, since leaving one out would widen the export."""
_KNOWN = frozenset({"_outputFormat", "_since", "_type", "_typeFilter"})
_RESULT_PARAMS = frozenset(
    {"_include", "_revinclude", "_sort", "_count", "_offset", "_summary", "_elements", "_total"}
)
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FILTER_START = re.compile(r",(?=[A-Z][A-Za-z]+\?)")
"""Filters are joined by commas, and a query may hold commas of its own (status=a,b): a new
filter starts only where a type name and "?" follow."""

Refuse = Callable[[str], None]
"""What a kick-off cannot honour: a 400, or with handling=lenient a note and a skip."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What one kick-off asks for, checked; `notes` name what a lenient request left out."""

    level: str
    types: tuple[str, ...]
    since: datetime | None
    type_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[Issue, ...] = ()


def compartment_types() -> tuple[str, ...]:
    """Patient and every type naming its patient: the Patient compartment as this server
    stores it (PART2.md: what names a patient is what the gate decides by)."""
    return tuple(
        sorted(
            kind
            for kind in SUPPORTED_TYPES
            if kind == "Patient" or COMPARTMENT_PARAM in params_for(kind)
        )
    )


def readable(requester: Requester, resource_type: str) -> bool:
    """What the gate would admit at all: the token's scopes reach the type (SMART)."""
    return requester.may(resource_type, "r") or requester.may(resource_type, "s")


def read_kickoff(
    level: str,
    params: Sequence[tuple[str, str]],
    requester: Requester,
    *,
    lenient: bool,
    base_url: str,
    paging: Paging,
) -> ExportRequest:
    """The request as a job will run it; InvalidRequest (400) for what it cannot honour."""
    notes: list[Issue] = []

    def refuse(message: str) -> None:
        if not lenient:
            raise InvalidRequest(message)
        notes.append(Issue("warning", "not-supported", f"{message}; left out"))

    named: list[str] = []
    filters: list[str] = []
    since: datetime | None = None
    for name, value in params:
        if name in _NARROWING:
            raise InvalidRequest(
                f"the kick-off parameter {name!r} is not supported, and is not left out even "
                "under lenient handling: the export would then hold more than was asked for"
            )
        if name not in _KNOWN:
            refuse(f"the kick-off parameter {name[:40]!r} is not supported")
        elif name == "_outputFormat" and value not in NDJSON_FORMATS:
            refuse(f"_outputFormat {value[:40]!r} is not supported (only application/fhir+ndjson)")
        elif name == "_since":
            since = _instant(value)
        elif name == "_type":
            named.extend(item.strip() for item in value.split(",") if item.strip())
        elif name == "_typeFilter":
            filters.extend(item for item in _FILTER_START.split(value) if item)
    types = _types(level, named, requester, refuse)
    type_filters = _filters(filters, types, base_url, paging, refuse)
    return ExportRequest(level, types, since, type_filters, tuple(notes))


def _instant(value: str) -> datetime:
    if not _INSTANT.match(value):
        raise InvalidRequest(f"_since must be a FHIR instant, not {value[:40]!r}")
    try:
        return parse_range(value)[0]
    except ValueError:
        raise InvalidRequest(f"_since must be a FHIR instant, not {value[:40]!r}") from None


def _types(level: str, named: list[str], requester: Requester, refuse: Refuse) -> tuple[str, ...]:
    """The types to export, in a fixed order: those named, or every one the token reaches."""
    allowed = compartment_types() if level != SYSTEM else tuple(sorted(SUPPORTED_TYPES))
    if not named:
        return tuple(kind for kind in allowed if readable(requester, kind))
    chosen: list[str] = []
    for kind in named:
        if kind not in SUPPORTED_TYPES:
            refuse(f"resource type {kind[:64]!r} is not supported here")
        elif kind not in allowed:
            refuse(f"{kind} is outside the patient compartment")
        elif not readable(requester, kind):
            raise ScopeInsufficient(f"the access token has no scope allowing 'r' on {kind}")
        elif kind not in chosen:
            chosen.append(kind)
    return tuple(sorted(chosen, key=allowed.index))


def _filters(
    filters: list[str],
    types: tuple[str, ...],
    base_url: str,
    paging: Paging,
    refuse: Refuse,
) -> dict[str, tuple[str, ...]]:
    """Each `Type?query` checked by the search parser, strictly, without result parameters."""
    kept: dict[str, list[str]] = {}
    for text in filters:
        kind, mark, query = text.partition("?")
        if not mark or kind not in types:
            refuse(f"_typeFilter {text[:60]!r} does not name an exported type and a query")
            continue
        pairs = parse_qsl(query, keep_blank_values=True)
        bad = [name for name, _ in pairs if name.partition(":")[0] in _RESULT_PARAMS]
        if bad or not pairs:
            refuse(f"_typeFilter {text[:60]!r} must be search criteria only")
            continue
        try:
            parse_search(kind, pairs, base_url=base_url, paging=paging, strict=True)
        except InvalidRequest as invalid:
            refuse(f"_typeFilter for {kind}: {invalid.message}")
            continue
        kept.setdefault(kind, []).append(query)
    return {kind: tuple(queries) for kind, queries in kept.items()}


def type_queries(
    resource_type: str,
    filters: Sequence[str],
    *,
    base_url: str,
    paging: Paging,
    since: datetime | None,
    until: datetime,
    patients: Sequence[str] | None,
    compartment: bool,
) -> list[SearchQuery]:
    """The searches whose union is what the job exports of one type: each `_typeFilter` query
    (or all of the type), within the patient compartment (of `patients` when a Group names
    them), last updated after `since` and no later than the transaction time (IG
    transactionTime: nothing modified after it)."""
    extra = [_updated("gt", since), _updated("le", until)] if since else [_updated("le", until)]
    if compartment:
        within = _in_compartment(resource_type, patients)
        extra.extend([within] if within is not None else [])
    queries = [parse_qsl(query, keep_blank_values=True) for query in filters] or [[]]
    return [
        _with(parse_search(resource_type, pairs, base_url=base_url, paging=paging), extra)
        for pairs in queries
    ]


def _with(query: SearchQuery, extra: list[Criterion]) -> SearchQuery:
    return replace(query, criteria=(*query.criteria, *extra))


def _updated(prefix: str, moment: datetime) -> Criterion:
    """meta.lastUpdated after (gt) or at or before (le) the instant."""
    return Criterion(LAST_UPDATED_PARAM, None, None, (DateValue(prefix, moment, moment),))


def _in_compartment(resource_type: str, patients: Sequence[str] | None) -> Criterion | None:
    """Patient/{id} itself, or what names a patient (one of `patients` when given); None
    for every Patient."""
    if resource_type == "Patient":
        if patients is None:
            return None
        return Criterion(ID_PARAM, None, None, tuple(patients) or ("",))
    param = params_for(resource_type)[COMPARTMENT_PARAM]
    if patients is None:
        return Criterion(param.name, param, None, (ReferenceValue("Patient", None, None),))
    values = tuple(ReferenceValue("Patient", ident, None) for ident in patients)
    return Criterion(param.name, param, None, values or (ReferenceValue("Patient", "", None),))
