"""Delivery of transaction Bundles to a partner's FHIR server (FHIR R4 http.html#transaction).

The Bundle is POSTed to the partner's base URL as application/fhir+json. Its entries are
conditional updates on business identifiers, so sending it again after a doubt stores nothing
twice; that is why every answer we cannot read is a PartnerUnavailable (send again later).

    2xx, a transaction-response Bundle with one entry per     ACKNOWLEDGED, reference = the
    request entry, each with a 2xx response.status            first entry's response.location
                                                               (`deliver_each`: each entry's)
    202                                                        SENT (taken for later processing)
    2xx with any other body                                    PartnerUnavailable
                                                               ("unreadable answer")
    anything else                                              as adapters.fhir_http.exchange

`search` reads the partner's server back (REFERRALS.md: poll the partner's Tasks as the fallback
to subscriptions): a searchset, page by page, never following a link off the partner's base.
"""

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import httpx
import orjson

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http.auth import BackendServicesAuth
from adapters.fhir_http.exchange import failure, get, post, shorten
from adapters.ports import Delivery, Receipt

__all__ = ["FhirPartnerChannel"]

_FHIR_JSON: Final = "application/fhir+json"
_HEADERS: Final = {"Content-Type": _FHIR_JSON, "Accept": _FHIR_JSON}
_SEARCH_HEADERS: Final = {"Accept": _FHIR_JSON}


class FhirPartnerChannel:
    """One partner's FHIR server, reached with `client` and, when it asks for one, a token."""

    def __init__(
        self, base_url: str, client: httpx.Client, auth: BackendServicesAuth | None
    ) -> None:
        self._base_url = base_url
        self._client = client
        self._auth = auth

    def deliver(self, bundle: dict[str, Any]) -> Receipt:
        """POST the transaction Bundle; raise PartnerUnavailable or PartnerRejected."""
        return self.deliver_each(bundle)[0]

    def deliver_each(self, bundle: dict[str, Any]) -> list[Receipt]:
        """As `deliver`, one receipt per entry: several changes sent in one transaction are
        each known by where the partner stored it."""
        expected = _entry_count(bundle)
        answer = post(
            self._client,
            self._base_url,
            headers=_HEADERS,
            content=orjson.dumps(bundle),
            auth=self._auth,
        )
        if answer.status == 202:
            taken = Receipt(Delivery.SENT, shorten(answer.headers.get("content-location")) or "")
            return [taken] * expected
        if not answer.succeeded:
            raise failure(answer)
        if answer.body is None:
            raise PartnerUnavailable("answer too large")
        locations = _locations(answer.body, expected)
        return [Receipt(Delivery.ACKNOWLEDGED, location) for location in locations]

    def create(self, resource: dict[str, Any]) -> str:
        """POST one resource to the partner (R4 create); its Location, or "" when none."""
        url = f"{self._base_url.rstrip('/')}/{resource['resourceType']}"
        answer = post(
            self._client, url, headers=_HEADERS, content=orjson.dumps(resource), auth=self._auth
        )
        if not answer.succeeded:
            raise failure(answer)
        return shorten(answer.headers.get("location")) or ""

    def search(
        self, resource_type: str, params: Mapping[str, str], *, max_pages: int = 20
    ) -> list[dict[str, Any]]:
        """The matches of a search on the partner's server, following its `next` links for
        at most `max_pages` pages. A link that leaves the partner's base URL is refused: our
        token would go with it."""
        url = f"{self._base_url.rstrip('/')}/{resource_type}?{urlencode(params)}"
        found: list[dict[str, Any]] = []
        for _page in range(max_pages):
            answer = get(self._client, url, headers=_SEARCH_HEADERS, auth=self._auth)
            if not answer.succeeded:
                raise failure(answer)
            bundle = _searchset(answer.body)
            found.extend(_matches(bundle, resource_type))
            following = _next_link(bundle)
            if following is None:
                break
            if not following.startswith(self._base_url.rstrip("/") + "/"):
                raise PartnerRejected("a paging link leaves the partner's server")
            url = following
        return found


def _searchset(body: bytes | None) -> dict[str, Any]:
    if body is None:
        raise PartnerUnavailable("answer too large")
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PartnerUnavailable("unreadable answer") from None
    if not isinstance(bundle, dict) or bundle.get("type") != "searchset":
        raise PartnerUnavailable("unreadable answer")
    return bundle


def _matches(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The matches of the page; includes and OperationOutcomes are not what was searched."""
    found = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        is_match = not isinstance(search, dict) or search.get("mode", "match") == "match"
        if (
            is_match
            and isinstance(resource, dict)
            and resource.get("resourceType") == resource_type
        ):
            found.append(resource)
    return found


def _next_link(bundle: dict[str, Any]) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) else None
    return None


def _entry_count(bundle: dict[str, Any]) -> int:
    """How many entries the answer must have; a Bundle that is no transaction is our mistake."""
    entries = bundle.get("entry", [])
    if (
        bundle.get("resourceType") != "Bundle"
        or bundle.get("type") != "transaction"
        or not isinstance(entries, list)
        or not entries
    ):
        raise ValueError("FhirPartnerChannel delivers transaction Bundles of some entries")
    return len(entries)


def _locations(body: bytes, expected: int) -> list[str]:
    """Each entry's response.location, once the answer is known to say "all stored"."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise PartnerUnavailable("unreadable answer") from None
    if (
        not isinstance(answer, dict)
        or answer.get("resourceType") != "Bundle"
        or answer.get("type") != "transaction-response"
    ):
        raise PartnerUnavailable("unreadable answer")
    entries = answer.get("entry", [])
    if not isinstance(entries, list) or len(entries) != expected:
        raise PartnerUnavailable("unreadable answer")
    responses = [_response(entry) for entry in entries]
    if not all(_stored(response) for response in responses):
        raise PartnerUnavailable("unreadable answer")
    return [_location(response) for response in responses]


def _location(response: dict[str, Any]) -> str:
    location = response.get("location")
    return (shorten(location) or "") if isinstance(location, str) else ""


def _response(entry: Any) -> dict[str, Any]:
    response = entry.get("response") if isinstance(entry, dict) else None
    return response if isinstance(response, dict) else {}


def _stored(response: dict[str, Any]) -> bool:
    """Bundle.entry.response.status starts with the 3-digit HTTP code ("201 Created")."""
    status = response.get("status")
    return isinstance(status, str) and status.startswith("2")
