"""What one resource may cost: limits a partner cannot exceed, checked before any lock is
taken, so that one oversized write can neither hold the write lock for minutes nor store a
resource that no longer serializes (a narrative nested past what XML parsers accept breaks
every `_format=xml` read of it, for everyone)."""

from io import BytesIO
from typing import Any, Final

from lxml import etree

from interop.services.errors import SearchTooCostly, TooCostly

MAX_ELEMENTS: Final = 50_000
"""JSON values in one resource (a large Questionnaire has a few thousand)."""
MAX_DEPTH: Final = 64
"""Nesting of JSON objects and arrays (R4 resources nest a dozen levels or so)."""
MAX_NARRATIVE_DEPTH: Final = 64
"""Nesting of XHTML elements in a narrative div; lxml refuses documents past 255 levels."""
MAX_INDEX_VALUES: Final = 10_000
"""Search index values one resource yields (a Patient with thousands of names or identifiers
would otherwise insert hundreds of thousands of index rows under the write lock)."""
MAX_BUNDLE_ENTRIES: Final = 1_000
"""Entries of one transaction or batch Bundle, and records taken from one C-CDA document."""
MAX_SEARCH_VALUES: Final = 200
"""Values one search names in all (comma-separated, repeated parameters, _include and
_revinclude): each is a condition of one query, and past about a thousand SQLite refuses the
query as too deep to parse."""
MAX_REQUEST_ELEMENTS: Final = 200_000
"""JSON values one request writes in all (a 100-entry transaction of care plans has about
6,000): a transaction is one write lock held for every entry, and a thousand resources each
within the per-resource limits would hold it for minutes."""


def check_resource(resource: dict[str, Any]) -> None:
    """Refuse a resource past the limits, naming the limit (413, issue too-costly)."""
    elements, depth = _size(resource)
    if elements > MAX_ELEMENTS:
        raise TooCostly(f"the resource has more than {MAX_ELEMENTS} elements")
    if depth > MAX_DEPTH:
        raise TooCostly(f"the resource nests deeper than {MAX_DEPTH} levels")
    for div in _narratives(resource):
        if _narrative_depth(div) > MAX_NARRATIVE_DEPTH:
            raise TooCostly(f"a narrative nests deeper than {MAX_NARRATIVE_DEPTH} elements")


def check_resources(resources: list[dict[str, Any]]) -> None:
    """A transaction's resources, each and together, before its lock is taken."""
    total = 0
    for resource in resources:
        check_resource(resource)
        total += _size(resource)[0]
        if total > MAX_REQUEST_ELEMENTS:
            raise TooCostly(
                f"the Bundle's resources have more than {MAX_REQUEST_ELEMENTS} elements in all: "
                "send them in smaller transactions"
            )


def check_index_values(count: int) -> None:
    """Checked on the extracted index, before any of it is written."""
    if count > MAX_INDEX_VALUES:
        raise TooCostly(f"the resource yields more than {MAX_INDEX_VALUES} search index values")


def check_search_values(count: int) -> None:
    """Refuse a search naming more values than one query can hold: each is a condition of it,
    and past about a thousand SQLite refuses the query as too deep to parse; refused here, the
    client is told to split it instead of meeting a database error."""
    if count > MAX_SEARCH_VALUES:
        raise SearchTooCostly(
            f"a search may name at most {MAX_SEARCH_VALUES} values in all: split it into several"
        )


def check_bundle_entries(count: int) -> None:
    if count > MAX_BUNDLE_ENTRIES:
        raise TooCostly(f"a Bundle may carry at most {MAX_BUNDLE_ENTRIES} entries")


def _size(resource: dict[str, Any]) -> tuple[int, int]:
    """(values, deepest nesting), without recursion: the input is the attacker's."""
    elements, deepest = 0, 0
    stack: list[tuple[Any, int]] = [(resource, 1)]
    while stack:
        value, depth = stack.pop()
        elements += 1
        deepest = max(deepest, depth)
        if elements > MAX_ELEMENTS or deepest > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return elements, deepest


def _narratives(resource: dict[str, Any]) -> list[str]:
    """The divs of the resource and of its contained resources."""
    found: list[str] = []
    for item in [resource, *resource.get("contained", [])]:
        text = item.get("text") if isinstance(item, dict) else None
        if isinstance(text, dict) and isinstance(text.get("div"), str):
            found.append(text["div"])
    return found


def _narrative_depth(div: str) -> int:
    """How deep the div's elements nest, counted by a real XML parser as it reads (so that no
    attribute value or comment can hide a level), stopping once past the limit. A div that is
    not well-formed counts as deep as it got: validation refuses it afterwards."""
    depth = deepest = 0
    events = etree.iterparse(
        BytesIO(div.encode()),
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        huge_tree=True,  # the events of a div past libxml2's 256 levels still reach the count
    )
    try:
        for event, _element in events:
            if event == "end":
                depth -= 1
                continue
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_NARRATIVE_DEPTH:
                break
    except etree.XMLSyntaxError:
        pass
    return deepest
