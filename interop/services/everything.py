"""Patient/{id}/$everything (R4 Patient-everything): the patient's compartment, paged, through
the disclosure gate as the requester.

The Patient first, then each compartment type in a fixed order, each walked by primary key:
a page costs O(page) and the `next` link carries where the walk stands (`_cursor`, the type's
position and the key of the last resource shown), never anything withheld. A full page always
links on, since telling whether anything follows would tell of withheld records; so the last
page may be empty. Like every search
here, a resource the gate withholds is simply absent; the Bundle has no `total`, since an
exact one would mean judging every match for every page.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine

from interop.auth.requester import Requester
from interop.services import bundle_builder as bb
from interop.services.errors import InvalidRequest
from interop.services.export_request import compartment_types, readable, type_queries
from interop.services.numbers import whole_number
from interop.services.resources import GateFactory, ResourceOperations, behind_gate, check_id
from interop.services.search_parser import Paging
from interop.store.fhirdates import now_ms, parse_range
from interop.store.repository import StoredVersion
from interop.store.search_params import SUPPORTED_TYPES

INTERACTION = "everything"
_PARAMS = frozenset({"_since", "_type", "_count", "_cursor", "_format"})


class PatientEverything:
    """$everything, in a transaction of its own behind a fresh gate per request."""

    def __init__(self, engine: Engine, gates: GateFactory, paging: Paging) -> None:
        self._engine = engine
        self._gates = gates
        self._paging = paging

    def everything(
        self,
        patient_id: str,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        base_url: str,
    ) -> dict[str, Any]:
        """A searchset Bundle of one page; 404 for a Patient the requester may not see."""
        check_id(patient_id)
        asked = _read_params(params, self._paging)
        types = [kind for kind in asked.types if readable(requester, kind)]
        with behind_gate(
            self._engine, self._gates, requester, INTERACTION, paging=self._paging
        ) as operations:
            operations.read("Patient", patient_id)
            found, cursor = self._page(operations, patient_id, types, asked)
            entries = [bb.search_entry(base_url, stored, "match") for stored in found]
            url = f"{base_url}/Patient/{patient_id}/$everything"
            links = [{"relation": "self", "url": _link(url, params, asked.cursor_text)}]
            if cursor is not None:
                links.append({"relation": "next", "url": _link(url, params, cursor)})
            return operations.seal(bb.bundle("searchset", link=links, entry=entries))

    def _page(
        self,
        operations: ResourceOperations,
        patient_id: str,
        types: list[str],
        asked: "_Asked",
    ) -> tuple[list[StoredVersion], str | None]:
        """Up to `count` released resources from the cursor on, and the cursor after them."""
        found: list[StoredVersion] = []
        index, after = asked.cursor
        until = now_ms()
        while index < len(types) and len(found) < asked.count:
            queries = type_queries(
                types[index],
                (),
                base_url="",
                paging=self._paging,
                since=asked.since,
                until=until,
                patients=[patient_id],
                compartment=True,
            )
            released, after, more = operations.released_after(
                queries, after, asked.count - len(found)
            )
            found.extend(released)
            if not more:
                index, after = index + 1, 0
        if index >= len(types):
            return found, None
        return found, f"{index}.{after}"


@dataclass(frozen=True, slots=True)
class _Asked:
    """The parameters of one $everything request, checked."""

    types: tuple[str, ...]
    since: datetime | None
    count: int
    cursor: tuple[int, int]
    cursor_text: str | None


def _read_params(params: Sequence[tuple[str, str]], paging: Paging) -> _Asked:
    compartment = compartment_types()
    types: list[str] = []
    since: datetime | None = None
    count, cursor, cursor_text = paging.default_count, (0, 0), None
    for name, value in params:
        if name not in _PARAMS:
            raise InvalidRequest(f"$everything does not support the parameter {name[:40]!r}")
        if name == "_type":
            for kind in (item.strip() for item in value.split(",") if item.strip()):
                if kind not in SUPPORTED_TYPES or kind not in compartment:
                    raise InvalidRequest(f"{kind[:64]!r} is not a patient compartment type here")
                types.append(kind)
        elif name == "_since":
            try:
                since = parse_range(value)[0]
            except ValueError:
                raise InvalidRequest(f"_since must be an instant, not {value[:40]!r}") from None
        elif name == "_count":
            number = whole_number(value)
            if number is None or number < 1:
                raise InvalidRequest("_count must be a positive integer")
            count = min(number, paging.max_count)
        elif name == "_cursor":
            cursor, cursor_text = _cursor(value), value
    chosen = [kind for kind in compartment if kind in types] if types else list(compartment)
    ordered = sorted(chosen, key=lambda kind: (kind != "Patient", kind))
    return _Asked(tuple(ordered), since, count, cursor, cursor_text)


def _cursor(text: str) -> tuple[int, int]:
    position, _, key = text.partition(".")
    numbers = whole_number(position), whole_number(key)
    if numbers[0] is None or numbers[1] is None:
        raise InvalidRequest("_cursor is not one this server wrote")
    return numbers[0], numbers[1]


def _link(url: str, params: Sequence[tuple[str, str]], cursor: str | None) -> str:
    kept = [(name, value) for name, value in params if name not in ("_cursor", "_format")]
    if cursor is not None:
        kept.append(("_cursor", cursor))
    return f"{url}?{urlencode(kept)}" if kept else url
