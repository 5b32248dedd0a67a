"""Our Subscriptions on partners' FHIR servers (REFERRALS.md: subscribe to the Task there), and
their notifications to us, which ask for a poll of that partner (interop.sync.poller) rather
than being trusted for content: a notification is a hint, the partner's server the truth.

Each subscription carries a fresh random secret in the Authorization header the partner's
server sends back with every notification; only its SHA-256 is kept here, and it is compared in
constant time. An unknown partner and a wrong secret are refused alike. There is one secret per
partner: subscribing again replaces it, so the older Subscription's notifications are refused
(end it at the partner).
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from interop.services.errors import InvalidRequest, ResourceNotFound
from interop.services.outbox import ChannelKind
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.tables import PartnerRow
from interop.sync.channels import ChannelDeliverer
from mappings.subscription import FILTER_CRITERIA, PAYLOAD_CONTENT, PROFILE
from mappings.terminology import REFERRAL_TASK_TOPIC


class PartnerSubscriptions:
    """Subscribes us at partners' servers (the CLI's `interop sync subscribe`)."""

    def __init__(self, engine: Engine, deliverer: ChannelDeliverer, public_root: str) -> None:
        self._engine = engine
        self._deliverer = deliverer
        self._root = public_root.rstrip("/")

    def subscribe(
        self, client_id: str, topic: str = REFERRAL_TASK_TOPIC, filters: Sequence[str] = ()
    ) -> str:
        """Create our Subscription on the partner's server; the partner's reference to it."""
        partner = self._fhir_partner(client_id)
        secret = secrets.token_urlsafe(32)
        body = {
            "resourceType": "Subscription",
            "meta": {"profile": [PROFILE]},
            "status": "requested",
            "reason": "Recovery Interop: changes to the referrals we sent you",
            "criteria": topic,
            "_criteria": {
                "extension": [{"url": FILTER_CRITERIA, "valueString": text} for text in filters]
            },
            "channel": {
                "type": "rest-hook",
                "endpoint": f"{self._root}/sync/notifications/{client_id}",
                "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]},
                "header": [f"Authorization: Bearer {secret}"],
            },
        }
        if not filters:
            del body["_criteria"]
        with unit_of_work(self._engine) as session:  # first: the handshake may come at once
            row = outbox.partner(session, client_id)
            if row is not None:
                row.notify_secret_hash = _digest(secret)
                session.add(row)
        return self._deliverer.fhir_channel(partner).create(body)

    def _fhir_partner(self, client_id: str) -> PartnerRow:
        with unit_of_work(self._engine, writes=False) as session:
            row = outbox.partner(session, client_id)
        if row is None:
            raise ResourceNotFound(f"no partner has client_id {client_id[:64]!r}")
        if row.channel != ChannelKind.FHIR:
            raise InvalidRequest("only a partner with a FHIR server can be subscribed to")
        return row


class NotificationInbox:
    """Where partners' servers notify us (POST /sync/notifications/{client_id})."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def notified(self, client_id: str, authorization: str | None) -> bool:
        """Record a partner's notification as a request to poll it; False when not its own."""
        presented = _digest((authorization or "").removeprefix("Bearer ").strip())
        with unit_of_work(self._engine) as session:
            row = outbox.partner(session, client_id)
            expected = row.notify_secret_hash if row is not None and row.enabled else None
            if not hmac.compare_digest(presented, expected or _digest(secrets.token_hex())):
                return False
            assert row is not None
            row.poll_requested_at = self._clock()
            session.add(row)
        return True


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
