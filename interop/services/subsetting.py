"""`_summary` and `_elements` (R4 §3.1.1.5.8, §3.1.1.5.9): a resource cut down to what the
client asked for, after the disclosure gate released it.

Subsetting only ever removes: `resourceType`, `id` and the whole of `meta` stay (its security
labels and the §2.32 notice travel with every Part 2 record, however little of it is asked
for), and so do the elements R4 makes mandatory and `modifierExtension`, without which the rest
could be misread. A cut resource carries the SUBSETTED tag, so that no one writes it back over
the whole one.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from interop.services.errors import InvalidRequest
from mappings.fhir import SummaryShape, summary_shape

SummaryMode = Literal["true", "text", "data"]
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_SUMMARY_MODES = ("true", "text", "data", "count", "false")
_CUTTING: dict[str, SummaryMode] = {"true": "true", "text": "text", "data": "data"}
"""The summary modes that cut a resource (count answers a search with its total alone)."""
_KEPT = frozenset({"resourceType", "id", "meta", "modifierExtension", "implicitRules"})
_BACKBONE_KEPT = frozenset({"id", "modifierExtension"})


@dataclass(frozen=True, slots=True)
class Subset:
    """What the client asked to keep: a summary form, named elements, or both (both cut)."""

    summary: SummaryMode | None = None
    elements: frozenset[str] | None = None


def requested_subset(params: Iterable[tuple[str, str]]) -> Subset | None:
    """The subset a request's parameters ask for; None for the whole resource (`_summary`
    false, or count, which only a search answers, by its total)."""
    summary: SummaryMode | None = None
    elements: set[str] | None = None
    for name, value in params:
        if name == "_summary":
            mode = summary_mode(value)
            summary = _CUTTING.get(mode, summary)
        elif name == "_elements":
            elements = (elements or set()) | _element_names(value)
    if summary is None and elements is None:
        return None
    return Subset(summary, None if elements is None else frozenset(elements))


def summary_mode(text: str) -> str:
    """R4 `_summary`: true, text, data, count or false; anything else a client error."""
    if text not in _SUMMARY_MODES:
        raise InvalidRequest(
            f"_summary must be one of {', '.join(_SUMMARY_MODES)}, not {text[:20]!r}"
        )
    return text


def _element_names(text: str) -> set[str]:
    """`_elements=status,subject` (or `CarePlan.status`, as R5 writes it): top-level names;
    a deeper path (`name.family`) keeps its top-level element whole."""
    names = {_top_level(part.strip()) for part in text.split(",")}
    if not all(name.isidentifier() for name in names):
        raise InvalidRequest(
            "_elements must list element names separated by commas, such as status,subject"
        )
    return names


def _top_level(path: str) -> str:
    first, _, rest = path.partition(".")
    return rest.partition(".")[0] if first[:1].isupper() and rest else first


def subset_resource(resource: dict[str, Any], wanted: Subset) -> dict[str, Any]:
    """The resource as `wanted` asks, tagged SUBSETTED when anything was asked away."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or kind == "OperationOutcome":
        return resource
    shape = summary_shape(kind)
    cut = resource
    if wanted.summary == "data":
        cut = {name: value for name, value in cut.items() if _base(name) != "text"}
    elif wanted.summary == "text":
        cut = _kept(cut, shape.mandatory | {"text"})
    elif wanted.summary == "true":
        cut = _summarized(cut, shape)
    if wanted.elements is not None:
        cut = _kept(cut, shape.mandatory | wanted.elements)
    if wanted.summary != "data" or wanted.elements is not None:
        cut = _with_contained(cut, resource.get("contained"))
    return _tagged(cut)


def subset_json(content: bytes, wanted: Subset) -> bytes:
    """`subset_resource` over stored JSON bytes."""
    return orjson.dumps(subset_resource(orjson.loads(content), wanted))


def subset_content(content: bytes | None, wanted: Subset | None) -> bytes | None:
    """A read's released bytes as `wanted` asks (all of them when it asks nothing)."""
    return content if wanted is None or content is None else subset_json(content, wanted)


def subset_bundle(bundle: dict[str, Any], wanted: Subset | None) -> dict[str, Any]:
    """A searchset or history Bundle whose entries' resources are cut (R4 applies the
    parameters to the resources returned; the Bundle itself, its links and outcomes stay),
    once it was sealed whole: what is cut was released, so nothing withheld shows through."""
    if wanted is None:
        return bundle
    entries: list[dict[str, Any]] = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if isinstance(resource, orjson.Fragment):
            content = orjson.dumps(resource)
            entry = {**entry, "resource": orjson.Fragment(subset_json(content, wanted))}
        elif isinstance(resource, dict):
            entry = {**entry, "resource": subset_resource(resource, wanted)}
        entries.append(entry)
    return {**bundle, "entry": entries} if entries else bundle


def _base(name: str) -> str:
    """A JSON name without the underscore of a primitive's id and extensions (`_status`)."""
    return name.removeprefix("_")


def _kept(resource: dict[str, Any], names: frozenset[str] | set[str]) -> dict[str, Any]:
    return {
        name: value for name, value in resource.items() if _base(name) in names or name in _KEPT
    }


def _summarized(resource: dict[str, Any], shape: SummaryShape) -> dict[str, Any]:
    """`_summary=true`: the summary elements, and within the backbone elements kept, theirs."""
    return _summarized_below(_kept(resource, shape.summary | shape.mandatory), shape)


def _summarized_below(kept: dict[str, Any], shape: SummaryShape) -> dict[str, Any]:
    """The backbone elements kept, cut to their own summary elements; one left with nothing
    goes (FHIR JSON has no empty objects or arrays)."""
    for name, backbone in shape.backbones:
        if name in kept:
            value = _summarized_backbone(kept[name], summary_shape(backbone))
            if value:
                kept[name] = value
            else:
                del kept[name]
    return kept


def _summarized_backbone(value: Any, shape: SummaryShape) -> Any:
    if isinstance(value, list):
        return [cut for item in value if (cut := _summarized_backbone(item, shape))]
    if not isinstance(value, dict):
        return value
    kept = {
        name: item
        for name, item in value.items()
        if _base(name) in shape.summary | shape.mandatory or name in _BACKBONE_KEPT
    }
    return _summarized_below(kept, shape) if set(kept) - {"id"} else {}


def _with_contained(cut: dict[str, Any], contained: Any) -> dict[str, Any]:
    """The contained resources what was kept refers to (`#id`), directly or through one
    another, and no others: a local reference needs its target (R4 ref-1), and a contained
    resource nothing refers to may not stay (dom-3)."""
    body = {name: value for name, value in cut.items() if name != "contained"}
    if not isinstance(contained, list):
        return body
    referenced = _local_references(body)
    kept: list[dict[str, Any]] = []
    for _ in contained:  # each round keeps at least one more, or ends
        more = [
            inner
            for inner in contained
            if isinstance(inner, dict) and inner not in kept and inner.get("id") in referenced
        ]
        if not more:
            break
        kept += more
        referenced |= _local_references(more)
    return {**body, "contained": kept} if kept else body


def _local_references(value: Any) -> set[str]:
    """The ids of contained resources a JSON value refers to (`{"reference": "#med1"}`)."""
    if isinstance(value, dict):
        found = {
            reference[1:]
            for reference in (value.get("reference"),)
            if isinstance(reference, str) and reference.startswith("#")
        }
        return found.union(*(_local_references(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_local_references(item) for item in value))
    return set()


def is_subsetted(resource: dict[str, Any]) -> bool:
    """Whether the resource carries the SUBSETTED tag: a part, never to be stored."""
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, dict) else None
    return any(
        isinstance(tag, dict)
        and tag.get("system") == SUBSETTED["system"]
        and tag.get("code") == SUBSETTED["code"]
        for tag in tags or ()
    )


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    if is_subsetted(resource):
        return resource
    meta = dict(resource.get("meta") or {})
    tags: Sequence[dict[str, Any]] = meta.get("tag") or []
    meta["tag"] = [*tags, SUBSETTED]
    return {**resource, "meta": meta}
