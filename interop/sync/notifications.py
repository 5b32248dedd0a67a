"""Subscription notifications (REFERRALS.md item 3; Subscriptions R5 Backport, R4 form): the
handshake that activates a Subscription, and an id-only notification for each change of a Task
it covers, sent only when the disclosure gate releases that Task to the subscriber at the
moment of sending (a notification naming an id still tells that the record exists).

The handshake's answer decides the Subscription's status: acknowledged makes it `active`,
refused makes it `error`; both are written as the server's own change.
"""

import ipaddress
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import Engine

from adapters.errors import PartnerRejected, PartnerUnavailable
from adapters.fhir_http import RestHookChannel
from adapters.ports import Receipt
from interop.auth.requester import Requester
from interop.services.errors import ResourceNotFound
from interop.services.outbox import Event
from interop.services.resources import as_written, internal_operations
from interop.services.search_parser import Paging
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.repository import ResourceRepository
from interop.store.tables import OutboxRow, PartnerRow
from interop.sync.payloads import Payloads
from mappings import subscription
from mappings.subscription import Subscribed

_PAGING = Paging(1, 1)


class Notifier:
    def __init__(
        self,
        engine: Engine,
        payloads: Payloads,
        http: httpx.Client,
        fhir_base: str,
        clock: Callable[[], datetime],
        *,
        private_endpoints: bool = False,
    ) -> None:
        self._engine = engine
        self._payloads = payloads
        self._http = http
        self._base = fhir_base.rstrip("/")
        self._clock = clock
        self._private_endpoints = private_endpoints

    def deliver(self, row: OutboxRow, partner: PartnerRow, requester: Requester) -> Receipt:
        subscribed = self._subscription(row, partner)
        url = f"{self._base}/Subscription/{subscribed.id}"
        channel = RestHookChannel(subscribed.endpoint, subscribed.headers, self._http)
        if row.event == Event.HANDSHAKE:
            bundle = subscription.notification(
                url, "handshake", 0, None, self._clock(), subscribed.content
            )
            try:
                self._check_endpoint(subscribed, partner)
                receipt = channel.deliver(bundle)
            except PartnerRejected:
                self._set_status(subscribed.id, "error", row.version_id)
                raise
            self._set_status(subscribed.id, "active", row.version_id)
            return receipt
        if subscribed.status != "active":  # its endpoint is not confirmed yet, or failed
            raise PartnerUnavailable(f"the Subscription is {subscribed.status}")
        self._check_endpoint(subscribed, partner)
        self._payloads.check_released(row, requester)
        focus = f"{self._base}/{row.resource_type}/{row.resource_id}"
        number = self._event_number(row)
        bundle = subscription.notification(
            url, "event-notification", number, focus, self._clock(), subscribed.content
        )
        return channel.deliver(bundle)

    def _check_endpoint(self, subscribed: Subscribed, partner: PartnerRow) -> None:
        if self._private_endpoints:
            check_not_metadata(subscribed.endpoint)
        else:
            check_endpoint(subscribed.endpoint, partner.channel_address)

    def _subscription(self, row: OutboxRow, partner: PartnerRow) -> Subscribed:
        """The Subscription as it is now: one ended or given to another meanwhile says no."""
        with unit_of_work(self._engine, writes=False) as session:
            found = ResourceRepository(session).current("Subscription", row.subscription_id or "")
        content = found.content if found is not None and not found.deleted else None
        subscribed = subscription.read(orjson.loads(content)) if content else None
        if subscribed is None or subscribed.status == "off":
            raise PartnerRejected("the Subscription was ended")
        if subscribed.subscriber != f"Organization/{partner.organization_id}":
            raise PartnerRejected("the Subscription belongs to another partner")
        return subscribed

    def _event_number(self, row: OutboxRow) -> int:
        """events-since-subscription-start: the notifications the partner was sent before this
        one, plus it. Withheld ones are not counted: a gap would tell that something was."""
        with unit_of_work(self._engine, writes=False) as session:
            sent = outbox.notifications_sent(
                session, row.subscription_id or "", Event.NOTIFICATION, besides=row.pk or 0
            )
        return sent + 1

    def _set_status(self, subscription_id: str, status: str, version: int) -> None:
        """The handshake's outcome, on the version it was sent for: a Subscription changed
        meanwhile (a new endpoint) waits for its own handshake."""
        with (
            unit_of_work(self._engine) as session,
            internal_operations(session, "subscription-handshake", paging=_PAGING) as operations,
        ):
            try:
                stored = operations.read("Subscription", subscription_id)
            except ResourceNotFound:
                return
            current = as_written(stored.content)
            if stored.version_id == version and current.get("status") == "requested":
                operations.update("Subscription", subscription_id, {**current, "status": status})


def check_endpoint(endpoint: str, registered: str | None) -> None:
    """A partner names where this service POSTs: never an address of its own network (a
    loopback, private, link-local or reserved one, the name resolved now), except on the host
    the operator registered as the partner's channel (its own server, as in a test bed)."""
    host = urlsplit(endpoint).hostname or ""
    if registered is not None and urlsplit(registered).hostname == host:
        return
    if any(_internal(address) for address in _addresses(host)):
        raise PartnerRejected(
            "the Subscription's endpoint is on a loopback, private or link-local address"
        )


def check_not_metadata(endpoint: str) -> None:
    """On a private network partners' servers may be on it too, but no partner's server is at
    a link-local or carrier-grade NAT address, where clouds answer for their metadata service
    (169.254.169.254, 100.100.100.200), nor at an unspecified or multicast one: those stay
    refused whatever the network (probe 11 L9)."""
    host = urlsplit(endpoint).hostname or ""
    if any(_never_a_partner(address) for address in _addresses(host)):
        raise PartnerRejected(
            "the Subscription's endpoint is on a link-local, shared (metadata) or unspecified "
            "address"
        )


def on_private_network(url: str) -> bool:
    """Whether this service itself is reached on such an address (a test bed on one machine or
    network): its partners' servers are then there too."""
    host = urlsplit(url).hostname or ""
    return host == "localhost" or any(_internal(address) for address in _addresses(host))


def _addresses(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # unresolvable: the delivery fails as any unreachable endpoint does
    return [str(info[4][0]) for info in found]


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return _never_a_partner(address) or ip.is_loopback or ip.is_private or ip.is_reserved


def _never_a_partner(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip in _SHARED_ADDRESS_SPACE or ip.is_link_local or ip.is_unspecified or ip.is_multicast


_SHARED_ADDRESS_SPACE: Final = ipaddress.ip_network("100.64.0.0/10")
"""RFC 6598 carrier-grade NAT space, where some clouds keep their metadata service."""
