"""Bundles assembled around stored JSON bytes, which are embedded, never parsed again.

Reads are served from the bytes written at create or update time (ARCHITECTURE.md: "never
validate on the way out"), so a 100-entry searchset costs one orjson.dumps.
"""

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from interop.store.fhirdates import format_instant, now_ms
from interop.store.repository import StoredVersion

_STATUS_LINES = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}


def resource_url(base_url: str, resource_type: str, resource_id: str) -> str:
    return f"{base_url}/{resource_type}/{resource_id}"


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def bundle(bundle_type: str, **fields: Any) -> dict[str, Any]:
    """A Bundle skeleton with a fresh id and timestamp, as R4 Bundle.meta/timestamp expect;
    a field given as an empty list is left out, since FHIR JSON has no empty arrays."""
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": format_instant(now_ms())},
        "type": bundle_type,
        **{name: value for name, value in fields.items() if value != []},
    }


def search_entry(base_url: str, stored: StoredVersion, mode: str) -> dict[str, Any]:
    assert stored.content is not None
    return {
        "fullUrl": resource_url(base_url, stored.resource_type, stored.resource_id),
        "resource": orjson.Fragment(stored.content),
        "search": {"mode": mode},
    }


def outcome_entry(outcome: dict[str, Any]) -> dict[str, Any]:
    return {"resource": outcome, "search": {"mode": "outcome"}}


def history_entry(base_url: str, stored: StoredVersion) -> dict[str, Any]:
    """One version, with the request that made it and that request's response (R4 §3.1.0.10)."""
    url = (
        stored.resource_type
        if stored.method == "POST"
        else f"{stored.resource_type}/{stored.resource_id}"
    )
    entry: dict[str, Any] = {
        "fullUrl": resource_url(base_url, stored.resource_type, stored.resource_id)
    }
    if stored.content is not None:
        entry["resource"] = orjson.Fragment(stored.content)
    entry["request"] = {"method": stored.method, "url": url}
    entry["response"] = {
        "status": _STATUS_LINES[stored.method],
        "etag": etag(stored.version_id),
        "lastModified": format_instant(stored.last_updated),
    }
    return entry


def paging_links(
    url: str,
    params: Sequence[tuple[str, str]],
    offset: int,
    count: int,
    total: int | None,
    *,
    more: bool = False,
) -> list[dict[str, str]]:
    """self, first, previous, next and last links over `_offset`/`_count` (R4 §3.1.1.6); with
    no total (`_total=none`), next when `more` follows and no last."""

    def link(relation: str, at: int) -> dict[str, str]:
        query = [*params, ("_count", str(count)), ("_offset", str(at))]
        return {"relation": relation, "url": f"{url}?{urlencode(query)}"}

    links = [link("self", offset)]
    if count == 0:
        return links
    links.append(link("first", 0))
    if offset > 0:
        links.append(link("previous", max(offset - count, 0)))
    if (offset + count < total) if total is not None else more:
        links.append(link("next", offset + count))
    if total is not None:
        links.append(link("last", max(total - 1, 0) // count * count))
    return links


def plain(resource: Any) -> dict[str, Any]:
    """A Bundle entry's resource as a plain dict: stored JSON fragments resolved."""
    value: dict[str, Any] = orjson.loads(orjson.dumps(resource))
    return value
