"""HL7 v2 messages for partners on MLLP, made of what the gate released to them.

REF^I12 announces our referral to the program it asks, REF^I14 cancels it, RRI^I12 tells a
partner who referred to us over v2 what became of its referral. The referral's identifier is
RF1-6 in each: ours (the placer identifier, else the ServiceRequest's id) when we refer, the
partner's own, as it sent it, when we answer; partners deduplicate by it.

A message made of Part 2 data carries what the gate's decisions oblige, as the FHIR and C-CDA
channels do (PART2.md S1, S2; §2.32(a)): the notice, the consent relied on and the security
labels, written where v2.5.1 has room for them (adapters.hl7v2.outbound.Part2Marking).
"""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from adapters.hl7v2.client import MllpChannel
from adapters.hl7v2.messages import EntityIdentifier, HierarchicDesignator, Identifier, PersonName
from adapters.hl7v2.outbound import (
    Envelope,
    OutgoingPatient,
    OutgoingReferral,
    Part2Marking,
    Party,
    Priority,
    ReferralStatus,
    ReturnedReferral,
    Sex,
    write_cancellation,
    write_referral,
    write_return,
)
from consent.vocabulary import CONFIDENTIALITY, CONFIDENTIALITY_RANK, RESTRICTED
from interop.auth.requester import Requester
from interop.services.disclosure import Released as GateReleased
from interop.services.errors import InvalidRequest
from interop.services.inbound import authority_name, referral_namespace
from interop.services.outbox import Event
from interop.store.tables import OutboxRow
from interop.sync.payloads import Payloads, Released
from mappings.terminology import NPI_SYSTEM

APPLICATION = "RECOVERY-INTEROP"
_PRIORITY = {"stat": Priority.STAT, "asap": Priority.ASAP, "urgent": Priority.ASAP}
_SEX = {"female": Sex.FEMALE, "male": Sex.MALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}
_STATUS = {
    "accepted": ReferralStatus.ACCEPTED,
    "in-progress": ReferralStatus.ACCEPTED,
    "completed": ReferralStatus.ACCEPTED,
    "rejected": ReferralStatus.REJECTED,
    "cancelled": ReferralStatus.REJECTED,
    "failed": ReferralStatus.REJECTED,
    "entered-in-error": ReferralStatus.REJECTED,
}
_MLLP_ACK_BYTES = 1024 * 1024


class V2Messages:
    def __init__(self, payloads: Payloads, clock: Callable[[], datetime]) -> None:
        self._payloads = payloads
        self._clock = clock

    def message(self, row: OutboxRow, partner: Requester) -> bytes:
        """The row's event as ER7; its MSH-10 is fixed per row, so a resend is the same
        message and the partner's ACK names it."""
        released = self._payloads.released(row, partner)
        try:
            envelope = self._envelope(row, released)
            if row.event == Event.STATUS_RETURNED:
                return write_return(_returned(released), envelope)
            referral = _referral(released, self._clock())
            if row.event == Event.REFERRAL_CANCELLED:
                why = _concept_text(released.task.get("statusReason"))
                return write_cancellation(referral, envelope, why)
            return write_referral(referral, envelope)
        except ValueError as error:  # the writers' own sentences: which field is missing
            raise InvalidRequest(f"the referral cannot be written as HL7 v2: {error}") from None

    @staticmethod
    def channel(address: str, timeout: float) -> MllpChannel:
        host, _, port = address.rpartition(":")
        return MllpChannel(
            host,
            int(port),
            connect_timeout=timeout,
            ack_timeout=timeout,
            max_ack_bytes=_MLLP_ACK_BYTES,
        )

    def _envelope(self, row: OutboxRow, released: Released) -> Envelope:
        requester = released.organizations.get("requester") or {}
        performer = released.organizations.get("performer") or {}
        return Envelope(
            sending_application=APPLICATION,
            sending_facility=str(requester.get("name", ""))[:180],
            receiving_application="",
            receiving_facility=str(performer.get("name", ""))[:180],
            control_id=f"RI{row.pk}",
            sent_at=self._clock(),
        )


def _referral(released: Released, now: datetime) -> OutgoingReferral:
    order = released.order
    return OutgoingReferral(
        originating_id=_our_referral_id(order),
        patient=_patient(released.patient),
        referring=_party(released.organizations.get("requester")),
        referred_to=_party(released.organizations.get("performer")),
        priority=_PRIORITY.get(str(order.get("priority", "")), Priority.ROUTINE),
        effective=_instant(order.get("authoredOn")) or now,
        reason=_reason(order),
        part2=_marking(released.disclosed),
    )


def _returned(released: Released) -> ReturnedReferral:
    task = released.task
    status = _STATUS.get(str(task.get("status")), ReferralStatus.PENDING)
    return ReturnedReferral(
        originating_id=_their_referral_id(released.order),
        status=status,
        patient=_patient(released.patient),
        referring=_party(released.organizations.get("requester")),
        referred_to=_party(released.organizations.get("performer")),
        reason=_concept_text(task.get("statusReason")),
        part2=_marking(released.disclosed),
    )


def _marking(disclosed: GateReleased) -> Part2Marking | None:
    """The marking the gate's decisions oblige when it released Part 2 data, decided as the
    C-CDA channel decides it (interop.services.exports): labels and the notice, or nothing.
    The confidentiality is the highest the labels name (R at least: Part 2 data is restricted)."""
    if not disclosed.labels or disclosed.notice is None:
        return None
    levels = [code for system, code in disclosed.labels if system == CONFIDENTIALITY]
    highest = max([*levels, RESTRICTED], key=lambda code: CONFIDENTIALITY_RANK.get(code, 0))
    return Part2Marking(
        notice=disclosed.notice,
        confidentiality=highest,
        labels=tuple(
            sorted(code for system, code in disclosed.labels if system != CONFIDENTIALITY)
        ),
        consents=tuple(sorted(disclosed.consents)),
    )


def _our_referral_id(order: dict[str, Any]) -> EntityIdentifier:
    for identifier in order.get("identifier", []):
        if _is_placer(identifier) and identifier.get("value"):
            return EntityIdentifier(str(identifier["value"]), APPLICATION)
    return EntityIdentifier(str(order["id"]), APPLICATION)


def _their_referral_id(order: dict[str, Any]) -> EntityIdentifier:
    """The RF1-6 the partner sent, kept by the inbound service as the placer identifier."""
    for identifier in order.get("identifier", []):
        namespace = referral_namespace(str(identifier.get("system", "")))
        if namespace is not None and identifier.get("value"):
            return EntityIdentifier(str(identifier["value"]), namespace)
    raise InvalidRequest("the referral did not come over HL7 v2: it has no RF1-6 to answer")


def _is_placer(identifier: dict[str, Any]) -> bool:
    codings = identifier.get("type", {}).get("coding", [])
    return any(coding.get("code") == "PLAC" for coding in codings)


def _patient(patient: dict[str, Any]) -> OutgoingPatient:
    identifiers = tuple(
        Identifier(str(i["value"]), "MR", _authority(str(i.get("system", ""))))
        for i in patient.get("identifier", [])
        if i.get("value")
    ) or (Identifier(str(patient["id"]), "PI", HierarchicDesignator(APPLICATION)),)
    names = tuple(
        PersonName(family=str(n.get("family", "")), given=" ".join(n.get("given", [])))
        for n in patient.get("name", [])
    )
    return OutgoingPatient(
        identifiers=identifiers,
        names=names,
        birth_date=_date(patient.get("birthDate")),
        sex=_SEX.get(str(patient.get("gender"))),
    )


def _authority(system: str) -> HierarchicDesignator:
    """The FHIR identifier system as an assigning authority: an OID as ISO, our own v2
    namespaces as the name they came with, anything else as a URI."""
    if system.startswith("urn:oid:"):
        return HierarchicDesignator("", system.removeprefix("urn:oid:"), "ISO")
    name = authority_name(system)
    if name is not None:
        return HierarchicDesignator(name)
    return HierarchicDesignator("", system, "URI") if system else HierarchicDesignator("")


def _party(organization: dict[str, Any] | None) -> Party:
    if organization is None:
        return Party("", "", "")
    identifiers = organization.get("identifier", [])
    npi = next((i for i in identifiers if i.get("system") == NPI_SYSTEM), None)
    chosen = npi or (identifiers[0] if identifiers else {})
    return Party(
        name=str(organization.get("name", "")),
        identifier=str(chosen.get("value", "")),
        identifier_type="NPI" if npi else ("L" if chosen else ""),
    )


def _reason(order: dict[str, Any]) -> str:
    return next(
        (text for concept in order.get("reasonCode", []) if (text := _concept_text(concept))), ""
    )


def _concept_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding", [])
    return next((str(c.get("display") or c.get("code")) for c in codings if c), "")


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
