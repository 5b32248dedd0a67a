"""Subscription notifications to a partner's rest-hook endpoint (Subscriptions R5 Backport,
R4 form): the notification Bundle POSTed as application/fhir+json with the headers the
Subscription asked for. Any 2xx is the partner's acknowledgment; everything else means what it
means for every HTTP channel (adapters.fhir_http.exchange)."""

from collections.abc import Sequence
from typing import Any, Final

import httpx
import orjson

from adapters.fhir_http.exchange import failure, post
from adapters.ports import Delivery, Receipt

__all__ = ["RestHookChannel"]

_FHIR_JSON: Final = "application/fhir+json"


class RestHookChannel:
    def __init__(
        self, endpoint: str, headers: Sequence[tuple[str, str]], client: httpx.Client
    ) -> None:
        self._endpoint = endpoint
        self._headers = {name: value for name, value in headers}
        self._client = client

    def deliver(self, bundle: dict[str, Any]) -> Receipt:
        headers = {**self._headers, "Content-Type": _FHIR_JSON, "Accept": _FHIR_JSON}
        answer = post(self._client, self._endpoint, headers=headers, content=orjson.dumps(bundle))
        if not answer.succeeded:
            raise failure(answer)
        return Receipt(Delivery.ACKNOWLEDGED, "")
