"""Subscriptions as this server keeps them: whose they are, and what status they may have
(mappings.subscription holds the rules of the Backport IG; this adds who is writing).

A partner's Subscription is stamped as its own and starts `requested`, whatever it sent; the
dispatcher's handshake makes it `active` (interop.sync.notifications). Staff and the program's
own systems write Subscriptions as they are, tag and status included, which is how the
handshake's outcome is recorded.
"""

from typing import Any

from interop.services.errors import InvalidRequest
from interop.services.urls import require_https
from mappings import subscription

_PARTNER_STATUSES = frozenset({"requested", "off"})


def prepare_subscription(resource: dict[str, Any], origin: str | None) -> dict[str, Any]:
    """The Subscription to store for this writer; refused when it cannot work."""
    endpoint = resource.get("channel", {}).get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidRequest("a rest-hook Subscription needs channel.endpoint")
    require_https(endpoint, "a Subscription's endpoint")
    if origin is None:
        subscriber = subscription.subscriber_of(resource)
        if subscriber is None:
            raise InvalidRequest("a Subscription names its subscriber in meta.tag")
        return subscription.prepare(resource, subscriber, str(resource.get("status")))
    status = "off" if resource.get("status") == "off" else "requested"
    return subscription.prepare(resource, origin, status)


def is_subscriber(resource: dict[str, Any], organization: str) -> bool:
    return subscription.subscriber_of(resource) == organization
