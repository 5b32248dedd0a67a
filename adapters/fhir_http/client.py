"""Delivery of transaction Bundles to a partner's FHIR server (FHIR R4 http.html#transaction).

The Bundle is POSTed to the partner's base URL as application/fhir+json. Its entries are
conditional updates on business identifiers, so sending it again after a doubt stores nothing
twice; that is why every answer we cannot read is a PartnerUnavailable (send again later).

    2xx, a transaction-response Bundle with one entry per     ACKNOWLEDGED, reference = the
    request entry, each with a 2xx response.status            first entry's response.location
    202                                                        SENT (taken for later processing)
    2xx with any other body                                    PartnerUnavailable
                                                               ("unreadable answer")
    anything else                                              as adapters.fhir_http.exchange
"""

from typing import Any, Final

import httpx
import orjson

from adapters.errors import PartnerUnavailable
from adapters.fhir_http.auth import BackendServicesAuth
from adapters.fhir_http.exchange import failure, post, shorten
from adapters.ports import Delivery, Receipt

__all__ = ["FhirPartnerChannel"]

_FHIR_JSON: Final = "application/fhir+json"
_HEADERS: Final = {"Content-Type": _FHIR_JSON, "Accept": _FHIR_JSON}


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
        expected = _entry_count(bundle)
        answer = post(
            self._client,
            self._base_url,
            headers=_HEADERS,
            content=orjson.dumps(bundle),
            auth=self._auth,
        )
        if answer.status == 202:
            return Receipt(Delivery.SENT, shorten(answer.headers.get("content-location")) or "")
        if not answer.succeeded:
            raise failure(answer)
        if answer.body is None:
            raise PartnerUnavailable("answer too large")
        return Receipt(Delivery.ACKNOWLEDGED, _first_location(answer.body, expected))


def _entry_count(bundle: dict[str, Any]) -> int:
    """How many entries the answer must have; a Bundle that is no transaction is our mistake."""
    entries = bundle.get("entry", [])
    if (
        bundle.get("resourceType") != "Bundle"
        or bundle.get("type") != "transaction"
        or not isinstance(entries, list)
    ):
        raise ValueError("FhirPartnerChannel delivers transaction Bundles")
    return len(entries)


def _first_location(body: bytes, expected: int) -> str:
    """The first entry's response.location, once the answer is known to say "all stored"."""
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
    location = responses[0].get("location") if responses else None
    return (shorten(location) or "") if isinstance(location, str) else ""


def _response(entry: Any) -> dict[str, Any]:
    response = entry.get("response") if isinstance(entry, dict) else None
    return response if isinstance(response, dict) else {}


def _stored(response: dict[str, Any]) -> bool:
    """Bundle.entry.response.status starts with the 3-digit HTTP code ("201 Created")."""
    status = response.get("status")
    return isinstance(status, str) and status.startswith("2")
