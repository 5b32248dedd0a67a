"""The FHIR search syntax (R4 §3.1.1) parsed into typed criteria for the store.

Unknown parameters are ignored and reported back (the Bundle then carries an OperationOutcome
saying so), unless the client asked for `Prefer: handling=strict`, as R4 §3.1.1.3.3 allows.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from interop.services import limits
from interop.services.errors import InvalidRequest
from interop.services.numbers import whole_number
from interop.services.subsetting import summary_mode
from interop.store.fhirdates import parse_range
from interop.store.search import (
    ID_PARAM,
    LAST_UPDATED_PARAM,
    Criterion,
    DateValue,
    Inclusion,
    ReferenceValue,
    SearchQuery,
    SearchValue,
    SortKey,
    TokenValue,
    TotalMode,
)
from interop.store.search_params import ParamType, SearchParam, params_for
from mappings.fhir import RESOURCE_TYPES

_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_MODIFIERS: dict[ParamType, frozenset[str]] = {
    ParamType.TOKEN: frozenset({"not", "missing"}),
    ParamType.STRING: frozenset({"exact", "contains", "missing"}),
    ParamType.DATE: frozenset({"missing"}),
    ParamType.REFERENCE: frozenset({"missing"}),
}
_SILENT_RESULT_PARAMS = frozenset({"_format", "_pretty", "_elements"})
"""Handled elsewhere: _format by content negotiation, _elements once the page is released
(interop.services.subsetting)."""
_TOTAL_MODES: tuple[TotalMode, ...] = ("none", "estimate", "accurate")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True, slots=True)
class Paging:
    default_count: int
    max_count: int


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    base_url: str,
    paging: Paging,
    strict: bool = False,
) -> SearchQuery:
    """A SearchQuery for `resource_type`; InvalidRequest for values FHIR does not allow."""
    known = params_for(resource_type)
    criteria: list[Criterion] = []
    sort: tuple[SortKey, ...] = ()
    includes: list[Inclusion] = []
    revincludes: list[Inclusion] = []
    ignored: list[str] = []
    offset, count, summary_count = 0, paging.default_count, False
    total: TotalMode = "accurate"
    for raw_name, raw_value in params:
        name, _, modifier = raw_name.partition(":")
        if name == "_count":
            count = min(_non_negative(raw_name, raw_value), paging.max_count)
        elif name == "_offset":
            offset = _non_negative(raw_name, raw_value)
        elif name == "_sort":
            sort = _sort_keys(known, raw_value)
        elif name == "_include":
            includes.append(_inclusion(raw_value, modifier, resource_type, reverse=False))
        elif name == "_revinclude":
            revincludes.append(_inclusion(raw_value, modifier, resource_type, reverse=True))
        elif name == "_summary":
            summary_count = summary_count or summary_mode(raw_value) == "count"
        elif name == "_total":
            total = _total_mode(raw_value)
        elif name in (ID_PARAM, LAST_UPDATED_PARAM):
            criteria.append(_row_criterion(name, modifier, raw_value))
        elif name in known and "." not in modifier:
            criteria.append(_criterion(known[name], modifier, raw_value, base_url))
        elif name not in _SILENT_RESULT_PARAMS:
            # Chained parameters (focus:ServiceRequest.status, focus.status) among them: not
            # supported, so reported, never answered as if nothing matched.
            if strict:
                raise InvalidRequest(
                    f"unsupported search parameter {raw_name!r} for {resource_type}"
                )
            ignored.append(raw_name)
    limits.check_search_values(
        sum(len(criterion.values) for criterion in criteria) + len(includes) + len(revincludes)
    )
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        sort=sort,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        offset=offset,
        count=count,
        summary_count=summary_count or count == 0,
        ignored=tuple(ignored),
        total=total,
    )


def _total_mode(text: str) -> TotalMode:
    """R4 `_total`: none, estimate or accurate, anything else a client error."""
    for mode in _TOTAL_MODES:
        if text == mode:
            return mode
    raise InvalidRequest(f"_total must be one of none, estimate, accurate, not {text[:20]!r}")


def _non_negative(name: str, text: str) -> int:
    number = whole_number(text)
    if number is None:
        raise InvalidRequest(f"{name} must be a non-negative integer, not {text[:20]!r}")
    return number


def _sort_keys(known: dict[str, SearchParam], text: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in text.split(","):
        descending = item.startswith("-")
        name = item.removeprefix("-")
        if name in (ID_PARAM, LAST_UPDATED_PARAM):
            keys.append(SortKey(name, None, descending))
        elif name in known and known[name].type is not ParamType.REFERENCE:
            keys.append(SortKey(name, known[name], descending))
        else:
            raise InvalidRequest(f"cannot sort by {name!r}")
    return tuple(keys)


def _inclusion(text: str, modifier: str, resource_type: str, *, reverse: bool) -> Inclusion:
    """`Source:param[:Target]`; _include's source must be the searched type. A bare `*`
    is `_include`'s wildcard (R4 §3.1.1.5.4): what any reference of the match names."""
    if modifier not in ("", "iterate", "recurse"):
        raise InvalidRequest(f"unsupported modifier :{modifier} on _include/_revinclude")
    if text == "*" and not reverse:
        text = f"{resource_type}:*"
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InvalidRequest(
            f"_include/_revinclude must be Type:parameter[:Target], not {text[:60]!r}"
        )
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    iterate = modifier in ("iterate", "recurse")
    if not reverse and source != resource_type and not iterate:
        raise InvalidRequest(f"_include={text[:60]} does not start with {resource_type}")
    if param != "*":
        definition = params_for(source).get(param)
        if definition is None or definition.type is not ParamType.REFERENCE:
            raise InvalidRequest(f"{source}:{param} is not a reference search parameter")
    elif reverse:
        raise InvalidRequest("_revinclude does not accept the * wildcard")
    return Inclusion(source, param, target, iterate)


def _row_criterion(name: str, modifier: str, text: str) -> Criterion:
    if modifier:
        raise InvalidRequest(f"modifier :{modifier} is not supported on {name}")
    if name == ID_PARAM:
        ids = tuple(text.split(","))
        if not all(_ID_RE.match(ident) for ident in ids):
            raise InvalidRequest("_id values must be FHIR ids")
        return Criterion(name, None, None, ids)
    return Criterion(name, None, None, tuple(_date_value(item) for item in text.split(",")))


def _criterion(param: SearchParam, modifier: str, text: str, base_url: str) -> Criterion:
    type_modifier = None
    if modifier and param.type is ParamType.REFERENCE and modifier[:1].isupper():
        if modifier not in RESOURCE_TYPES:
            raise InvalidRequest(f":{modifier[:40]} on {param.name} is not a resource type")
        type_modifier, modifier = modifier, ""
    if modifier and modifier not in _MODIFIERS[param.type]:
        raise InvalidRequest(f"modifier :{modifier} is not supported on {param.name}")
    if modifier == "missing":
        if text not in ("true", "false"):
            raise InvalidRequest(f"{param.name}:missing takes true or false")
        return Criterion(param.name, param, modifier, (), missing=text == "true")
    values = tuple(_value(param, item, base_url, type_modifier) for item in _split_values(text))
    return Criterion(param.name, param, modifier or None, values)


def _split_values(text: str) -> list[str]:
    """Comma-separated alternatives; `\\,` is a literal comma (R4 §3.1.1.5.7 escaping)."""
    parts = re.split(r"(?<!\\),", text)
    return [part.replace("\\,", ",").replace("\\|", "|").replace("\\$", "$") for part in parts]


def _value(param: SearchParam, text: str, base_url: str, type_modifier: str | None) -> SearchValue:
    match param.type:
        case ParamType.TOKEN:
            return _token(text)
        case ParamType.DATE:
            return _date_value(text)
        case ParamType.REFERENCE:
            return _reference(text, base_url, type_modifier)
    return text


def _token(text: str) -> TokenValue:
    if re.search(r"(?<!\\)\|", text) is None:
        return TokenValue(None, text)
    system, _, code = text.partition("|")
    return TokenValue(system, code or None)


def _date_value(text: str) -> DateValue:
    prefix = text[:2] if text[:2] in _DATE_PREFIXES else "eq"
    moment = text[2:] if text[:2] in _DATE_PREFIXES else text
    try:
        lo, hi = parse_range(moment)
    except ValueError:
        raise InvalidRequest(f"not a valid date search value: {text[:40]!r}") from None
    return DateValue(prefix, lo, hi)


def _reference(text: str, base_url: str, type_modifier: str | None) -> ReferenceValue:
    """A relative, absolute (ours is made relative) or bare-id reference value."""
    local = text.removeprefix(base_url.rstrip("/") + "/")
    if "://" in local:
        return ReferenceValue(None, None, local)
    segments = local.split("/")
    if len(segments) == 1:
        return ReferenceValue(type_modifier, segments[0], None)
    if len(segments) == 2:
        if type_modifier is not None and type_modifier != segments[0]:
            raise InvalidRequest(
                f"reference {text[:60]!r} contradicts the :{type_modifier} modifier"
            )
        return ReferenceValue(segments[0], segments[1], None)
    raise InvalidRequest(f"not a valid reference search value: {text[:60]!r}")
