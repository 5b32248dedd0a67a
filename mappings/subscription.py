"""Topic-based Subscriptions in their R4 form (Subscriptions R5 Backport IG 1.1.0): what a
partner may subscribe to here, and the notifications it gets (REFERRALS.md, item 3).

One topic is offered, REFERRAL_TASK_TOPIC: a referral's fulfillment Task was created or
changed. A partner subscribes for the Tasks it is party to, as owner, as requester or both
(filter criteria "Task?owner=Organization/{its id}", "Task?requester=..."); naming another
organization is refused. Notifications are rest-hook POSTs of history Bundles whose first
entry is the R4 SubscriptionStatus Parameters; their payload is `id-only` (the Task's URL, no
content: the partner reads it through the API, where the disclosure gate decides) or `empty`;
`full-resource` is refused, since a notification must not carry what a read might withhold.

The server owns `status` (requested until the handshake is answered, then active; error when it
never is) and the subscriber tag in meta; what a partner sends there is replaced.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mappings.errors import MappingError
from mappings.terminology import BACKPORT, REFERRAL_TASK_TOPIC, SUBSCRIBER_TAG_SYSTEM

PROFILE: Final = f"{BACKPORT}/backport-subscription"
FILTER_CRITERIA: Final = f"{BACKPORT}/backport-filter-criteria"
PAYLOAD_CONTENT: Final = f"{BACKPORT}/backport-payload-content"
_NOTIFICATION_PROFILE: Final = f"{BACKPORT}/backport-subscription-notification-r4"
_STATUS_PROFILE: Final = f"{BACKPORT}/backport-subscription-status-r4"
_ROLES: Final = ("owner", "requester")
_CONTENTS: Final = ("id-only", "empty")


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What the server acts on: whose, for which roles, where, and how much to say."""

    id: str
    subscriber: str  # "Organization/{id}"
    roles: frozenset[str]
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    content: str
    status: str


def prepare(resource: Mapping[str, Any], subscriber: str, status: str) -> dict[str, Any]:
    """The Subscription as stored: checked, tagged with its subscriber, `status` set."""
    _check(resource, subscriber)
    meta = dict(resource.get("meta", {}))
    tags = [t for t in meta.get("tag", []) if t.get("system") != SUBSCRIBER_TAG_SYSTEM]
    meta["tag"] = [*tags, {"system": SUBSCRIBER_TAG_SYSTEM, "code": subscriber}]
    profiles = [p for p in meta.get("profile", []) if p != PROFILE]
    meta["profile"] = [*profiles, PROFILE]
    return {**resource, "meta": meta, "status": status}


def subscriber_of(resource: Mapping[str, Any]) -> str | None:
    tags = resource.get("meta", {}).get("tag", [])
    return next((t.get("code") for t in tags if t.get("system") == SUBSCRIBER_TAG_SYSTEM), None)


def read(resource: Mapping[str, Any]) -> Subscribed | None:
    """The stored Subscription as the server acts on it; None when it is not one of ours."""
    subscriber = subscriber_of(resource)
    if subscriber is None or resource.get("criteria") != REFERRAL_TASK_TOPIC:
        return None
    channel = resource.get("channel", {})
    return Subscribed(
        id=str(resource.get("id", "")),
        subscriber=subscriber,
        roles=_roles(resource, subscriber),
        endpoint=str(channel.get("endpoint", "")),
        headers=tuple(_header(text) for text in channel.get("header", [])),
        content=_content(channel),
        status=str(resource.get("status")),
    )


def notification(
    subscription_url: str,
    kind: str,
    events_since_start: int,
    focus: str | None,
    at: datetime,
    content: str,
) -> dict[str, Any]:
    """A notification Bundle (history, R4 form): the SubscriptionStatus Parameters, then the
    focus as a URL only, for an event with `id-only` content. A handshake is sent while the
    Subscription is still `requested` (the IG's R4 handshake example), an event once active."""
    status = "requested" if kind == "handshake" else "active"
    parameters = _status_parameters(subscription_url, status, kind, events_since_start)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if focus is not None:
        event: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(events_since_start)},
            {"name": "timestamp", "valueInstant": stamp},
        ]
        if content == "id-only":
            event.append({"name": "focus", "valueReference": {"reference": focus}})
        parameters.append({"name": "notification-event", "part": event})
    entries = [
        {
            "fullUrl": f"{subscription_url}/$status",
            "resource": _status_resource(parameters),
            "request": {"method": "GET", "url": f"{subscription_url}/$status"},
            "response": {"status": "200"},
        }
    ]
    if focus is not None and content == "id-only":
        entries.append(
            {
                "fullUrl": focus,
                "request": {"method": "PUT", "url": focus},
                "response": {"status": "200"},
            }
        )
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [_NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": stamp,
        "entry": entries,
    }


@dataclass(frozen=True, slots=True)
class Standing:
    """How one Subscription stands, as `$status` reports it: its URL here, its status and
    how many event notifications it was sent."""

    url: str
    status: str
    events_since_start: int


def status_bundle(standings: Sequence[Standing]) -> dict[str, Any]:
    """The answer of `$status` (Backport IG, backport-subscription-status): a searchset of
    one SubscriptionStatus, of type query-status, per Subscription asked about; at the type
    level there may be none, and FHIR JSON has no empty array."""
    entries = [_status_entry(standing) for standing in standings]
    listed = {"entry": entries} if entries else {}
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), **listed}


def _status_entry(standing: Standing) -> dict[str, Any]:
    kind, events = "query-status", standing.events_since_start
    parameters = _status_parameters(standing.url, standing.status, kind, events)
    return {
        "fullUrl": f"{standing.url}/$status",
        "resource": _status_resource(parameters),
        "search": {"mode": "match"},
    }


def _status_parameters(
    subscription_url: str, status: str, kind: str, events_since_start: int
) -> list[dict[str, Any]]:
    return [
        {"name": "subscription", "valueReference": {"reference": subscription_url}},
        {"name": "topic", "valueCanonical": REFERRAL_TASK_TOPIC},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]


def _status_resource(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [_STATUS_PROFILE]},
        "parameter": parameters,
    }


def _check(resource: Mapping[str, Any], subscriber: str) -> None:
    if resource.get("criteria") != REFERRAL_TASK_TOPIC:
        raise MappingError(
            "Subscription.criteria",
            f"the only topic offered is {REFERRAL_TASK_TOPIC}",
            code="not-supported",
        )
    _roles(resource, subscriber)
    channel = resource.get("channel", {})
    if channel.get("type") != "rest-hook":
        raise MappingError(
            "Subscription.channel.type", "only rest-hook channels are offered", code="not-supported"
        )
    if channel.get("payload") not in (None, "application/fhir+json"):
        raise MappingError(
            "Subscription.channel.payload", "notifications are sent as application/fhir+json"
        )
    _content(channel)
    for text in channel.get("header", []):
        _header(text)


def _roles(resource: Mapping[str, Any], subscriber: str) -> frozenset[str]:
    """From the filter criteria; each must name the subscriber itself. None: both roles."""
    filters = _filters(resource)
    if not filters:
        return frozenset(_ROLES)
    roles = set()
    for index, text in enumerate(filters):
        kind, _, query = text.partition("?")
        name, _, value = query.partition("=")
        if kind != "Task" or name not in _ROLES or "&" in value:
            raise MappingError(
                f"Subscription.criteria.extension[{index}]",
                "filters are Task?owner=Organization/{id} or Task?requester=Organization/{id}",
            )
        if value.split("/")[-2:] != subscriber.split("/"):
            raise MappingError(
                f"Subscription.criteria.extension[{index}]",
                "a partner subscribes to the Tasks of its own organization only",
                code="forbidden",
            )
        roles.add(name)
    return frozenset(roles)


def _filters(resource: Mapping[str, Any]) -> Sequence[str]:
    extensions = resource.get("_criteria", {}).get("extension", [])
    return [str(e.get("valueString", "")) for e in extensions if e.get("url") == FILTER_CRITERIA]


def _content(channel: Mapping[str, Any]) -> str:
    extensions = channel.get("_payload", {}).get("extension", [])
    found = [e.get("valueCode") for e in extensions if e.get("url") == PAYLOAD_CONTENT]
    content = str(found[0]) if found else "id-only"
    if content not in _CONTENTS:
        raise MappingError(
            "Subscription.channel.payload.extension",
            f"payload content {content!r} is not offered (id-only or empty): a notification "
            "must not carry what a read might withhold",
            code="not-supported",
        )
    return content


def _header(text: str) -> tuple[str, str]:
    """Only Authorization: the endpoint's credentials are the one thing a header is for here,
    and any other (Host, Cookie, Content-Length) would let a partner shape our requests."""
    name, separator, value = str(text).partition(":")
    if not separator or "\n" in text or "\r" in text:
        raise MappingError("Subscription.channel.header", "a header is 'Name: value' on one line")
    if name.strip().lower() != "authorization":
        raise MappingError(
            "Subscription.channel.header",
            "only an Authorization header is sent with notifications",
            code="not-supported",
        )
    return "Authorization", value.strip()
