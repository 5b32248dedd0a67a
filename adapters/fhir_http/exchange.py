"""One request to a partner over HTTP (a POST, or a search's GET), and what its answer means;
shared by every HTTP channel.

What an answer means for the delivery (adapters.errors):

    could not talk     connect error, timeout, broken connection     PartnerUnavailable
    partner busy/down  5xx, 429, 408, with its Retry-After            PartnerUnavailable
    redirected         3xx: never followed, since following would     PartnerRejected
                       resend patient data to an address nobody
                       configured ("redirect refused")
    refused            any other 4xx, with the OperationOutcome's     PartnerRejected
                       own words, cut short
    accepted           2xx: each channel reads its own answer

An answer body is read up to `MAX_ANSWER_BYTES` and left unread beyond, so a wrong or hostile
partner cannot exhaust our memory. A 401 to a bearer token is answered once by fetching a new
token and sending again (RFC 6750 §3.1: the token may have expired or been revoked).
"""

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Final, Protocol

import httpx
import orjson

from adapters.errors import PartnerRefused, PartnerRejected, PartnerUnavailable

__all__ = [
    "MAX_ANSWER_BYTES",
    "Answer",
    "Authorizer",
    "failure",
    "get",
    "post",
    "shorten",
]

MAX_ANSWER_BYTES: Final = 10 * 1024 * 1024
_DETAIL_CHARS: Final = 300


class Authorizer(Protocol):
    """Bearer tokens for one partner (adapters.fhir_http.BackendServicesAuth)."""

    def access_token(self) -> str: ...

    def invalidate(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A partner's answer; `body` is None when it was longer than the cap, and left unread."""

    status: int
    headers: httpx.Headers
    body: bytes | None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300


def post(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    content: bytes | None = None,
    form: Mapping[str, str] | None = None,
    auth: Authorizer | None = None,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """POST once, and once more with a new token when the partner answers 401 to ours."""
    answer = _send(client, "POST", url, headers, content, form, auth, max_bytes)
    if auth is not None and answer.status == 401:
        auth.invalidate()
        answer = _send(client, "POST", url, headers, content, form, auth, max_bytes)
    return answer


def get(
    client: httpx.Client,
    url: str,
    *,
    headers: Mapping[str, str],
    auth: Authorizer | None = None,
    max_bytes: int = MAX_ANSWER_BYTES,
) -> Answer:
    """GET once, and once more with a new token when the partner answers 401 to ours."""
    answer = _send(client, "GET", url, headers, None, None, auth, max_bytes)
    if auth is not None and answer.status == 401:
        auth.invalidate()
        answer = _send(client, "GET", url, headers, None, None, auth, max_bytes)
    return answer


def failure(answer: Answer) -> PartnerUnavailable | PartnerRejected:
    """What a non-2xx answer means for the delivery (see the table above)."""
    status = answer.status
    if status in (408, 429) or status >= 500:
        return PartnerUnavailable(f"HTTP {status}", _retry_after(answer.headers.get("retry-after")))
    if 300 <= status < 400:
        return PartnerRefused("redirect refused", shorten(answer.headers.get("location")))
    return PartnerRefused(f"HTTP {status}", _outcome_text(answer.body))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait, from delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": an HTTP-date is always GMT
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - time.time())


def _outcome_text(body: bytes | None) -> str | None:
    """The partner's words from an OperationOutcome: each issue's diagnostics and details.text.

    Nothing else of the answer is kept, since a body that is not an OperationOutcome may echo
    the payload we sent (FHIR R4 operationoutcome.html).
    """
    if body is None:
        return None
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return None
    texts = [
        text
        for issue in _objects(outcome.get("issue"))
        for text in (issue.get("diagnostics"), _details_text(issue))
        if isinstance(text, str) and text.strip()
    ]
    return shorten("; ".join(texts))


def shorten(text: str | None) -> str | None:
    """Partner text fit for a log line: white space collapsed, cut short; None when empty."""
    if text is None:
        return None
    collapsed = " ".join(text.split())
    if len(collapsed) > _DETAIL_CHARS:
        collapsed = collapsed[: _DETAIL_CHARS - 1] + "…"
    return collapsed or None


def _send(
    client: httpx.Client,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes | None,
    form: Mapping[str, str] | None,
    auth: Authorizer | None,
    max_bytes: int,
) -> Answer:
    if auth is not None:
        headers = {**headers, "Authorization": f"Bearer {auth.access_token()}"}
    try:
        with client.stream(
            method, url, content=content, data=form, headers=headers, follow_redirects=False
        ) as response:
            return Answer(response.status_code, response.headers, _read(response, max_bytes))
    except httpx.TimeoutException as error:
        raise PartnerUnavailable("timed out") from error
    except httpx.ConnectError as error:
        raise PartnerUnavailable("could not connect") from error
    except httpx.DecodingError as error:
        raise PartnerUnavailable("unreadable answer") from error
    except httpx.TransportError as error:
        raise PartnerUnavailable("connection failed") from error


def _read(response: httpx.Response, max_bytes: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed max_bytes (the rest stays unread)."""
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        return None
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)


def _details_text(issue: dict[str, Any]) -> Any:
    details = issue.get("details")
    return details.get("text") if isinstance(details, dict) else None


def _objects(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
