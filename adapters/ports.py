"""What the service needs from a partner channel: deliver one payload, say what came back.

Each channel adapter (fhir_http, ccda.delivery, hl7v2.client) implements `Channel` for its own
payload type; the sync dispatcher in the service builds the payload (only from what the
disclosure gate released) and keeps the transport state from the `Receipt` or the error
(adapters.errors.PartnerUnavailable: retry later; PartnerRejected: give up and say why).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar


class Delivery(StrEnum):
    """How far a delivery is known to have got (REFERRALS.md: transport state, not workflow)."""

    SENT = "sent"  # handed over, no application acknowledgment (a file dropped, HTTP 202)
    ACKNOWLEDGED = "acknowledged"  # the partner's application took it (2xx with a body, AA)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the partner answered: `reference` names the delivery on its side (a Location, an
    ACK's MSA-2, a file name), for staff tracing a delivery; never patient data."""

    state: Delivery
    reference: str = ""


_Payload_contra = TypeVar("_Payload_contra", contravariant=True)


class Channel(Protocol[_Payload_contra]):
    """One partner's channel: deliver a payload; raise PartnerUnavailable or PartnerRejected."""

    def deliver(self, payload: _Payload_contra) -> Receipt: ...
