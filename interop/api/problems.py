"""RFC 9457 problem details: the error body of every route that is not FHIR.

Every problem here is of type `about:blank`, so its `title` is the reason phrase of its
status (RFC 9457 §4.2.1, the phrases of RFC 9110 §15) and what went wrong is said in `detail`
alone: a client that knows the status knows the title, whichever route answered.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

from interop.services.outcomes import REASONS

MEDIA_TYPE = "application/problem+json"


def reason_phrase(status: int) -> str:
    """The status's reason phrase, from the table Bundle responses use too."""
    return REASONS.get(status) or HTTPStatus(status).phrase


def problem(
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **members: Any,
) -> Response:
    """An about:blank problem detail; `members` are extension members (RFC 9457 §3.2)."""
    body = {
        "type": "about:blank",
        "title": reason_phrase(status),
        "status": status,
        "detail": detail,
        **members,
    }
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)
