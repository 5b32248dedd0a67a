"""Partners' servers notify us here of changes to the referrals we sent them (the rest-hook
endpoint of our Subscription there, `interop sync subscribe`). A notification only asks for a
poll of that partner; its content is not trusted beyond being a history Bundle."""

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response

from interop.api.problems import problem
from interop.services.numbers import whole_number
from interop.sync.subscribing import NotificationInbox

router = APIRouter(prefix="/sync", tags=["Sync"])
_MAX_NOTIFICATION_BYTES = 1024 * 1024


def _inbox(request: Request) -> NotificationInbox:
    inbox: NotificationInbox = request.app.state.notifications
    return inbox


async def _capped_body(request: Request) -> bytes:
    """At most _MAX_NOTIFICATION_BYTES; more is not read (a partner's server sends ids)."""
    declared = whole_number(request.headers.get("content-length", ""))
    if declared is not None and declared > _MAX_NOTIFICATION_BYTES:
        return b""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_NOTIFICATION_BYTES:
            return b""
    return bytes(body)


@router.post(
    "/notifications/{client_id}",
    operation_id="partner_notification",
    status_code=204,
    responses={400: {"description": "Not a notification"}, 401: {"description": "Not yours"}},
)
def partner_notification(
    client_id: str,
    inbox: Annotated[NotificationInbox, Depends(_inbox)],
    body: Annotated[bytes, Depends(_capped_body)],
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """A Subscription notification (Subscriptions R5 Backport, a history Bundle) from a
    partner's server; 204 once its poll is asked for. The body is checked before the poll is
    asked for, and read only up to 1 MB."""
    if not _is_notification(body):
        return problem(400, "a notification is a FHIR history Bundle")
    if not inbox.notified(client_id[:64], authorization):
        return problem(
            401,
            "this notification's credentials are not ours",
            headers={"WWW-Authenticate": 'Bearer realm="sync"'},
        )
    return Response(status_code=204)


def _is_notification(body: bytes) -> bool:
    try:
        bundle = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(bundle, dict) and (bundle.get("resourceType"), bundle.get("type")) == (
        "Bundle",
        "history",
    )
