"""C-CDA documents for partners that do not speak FHIR: a handoff's Transfer Summary, made of
what the disclosure gate releases to the receiving program, and nothing else.

The gate is asked as the receiving program would be, for treatment: records it may not receive
are left out, and when Part 2 data goes, the document carries the DS4P markings and the §2.32
notice the gate's decisions oblige (adapters.ccda.writer). Every decision is logged as for any
other disclosure.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from adapters.ccda import model as cda
from adapters.ccda.templates import LOINC, SNOMED_CT, DocumentKind
from adapters.ccda.writer import (
    LevelOfCareTransition,
    OutgoingDocument,
    Part2Marking,
    PlanItem,
    PlannedKind,
    Recipient,
    write_document,
)
from interop.auth.requester import Requester
from interop.auth.scopes import parse_scopes
from interop.services import bundle_builder as bb
from interop.services.cases import KINDS_BY_NAME, CaseService
from interop.services.disclosure import DisclosureGate
from interop.services.errors import Forbidden, InvalidRequest, ServiceError
from interop.services.resources import ResourceOperations, behind_gate
from interop.services.search_parser import Paging
from interop.services.staff import StaffPrincipal
from mappings import handoff, service_request
from mappings.errors import MappingError
from mappings.model import Handoff, PartyKind, Referral
from mappings.terminology import LEVEL_OF_CARE, NPI_SYSTEM

_PAGING = Paging(1000, 1000)
PREVIEW = "preview"
"""The interaction of a document shown to staff (decided as its receiver, logged as a use), and
of the read of what a document is about, which its own disclosure (or preview) accounts for."""
SENT = "ccda-send"
"""The interaction of a document that left for its receiver: a disclosure."""
_SYSTEM_OIDS = {
    "http://snomed.info/sct": SNOMED_CT,
    "http://loinc.org": LOINC,
    "http://hl7.org/fhir/sid/icd-10-cm": "2.16.840.1.113883.6.90",
    NPI_SYSTEM: "2.16.840.1.113883.4.6",
}
_GENDER = {"male": "M", "female": "F", "other": "UN", "unknown": "UN"}
_ADMINISTRATIVE_GENDER = "2.16.840.1.113883.5.1"


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """What a document is about, from a handoff or a referral."""

    kind: DocumentKind
    key: str
    client: str
    sender: str
    receiver: str
    reason: str
    plan: tuple[PlanItem, ...]
    transition: tuple[str, str, str] | None  # from level, to level, planned date (YYYYMMDD)


class DocumentExports:
    def __init__(
        self,
        engine: Engine,
        gates: DisclosureGate,
        cases: CaseService,
        oid_root: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._gates = gates
        self._cases = cases
        self._oid_root = oid_root
        self._clock = clock

    def transfer_summary(self, handoff_id: str, staff: StaffPrincipal) -> bytes:
        """The Transfer Summary (C-CDA R2.1, LOINC 18761-7) of a handoff, for its receiver."""
        handoffs = KINDS_BY_NAME["handoffs"]
        handoff: Handoff = self._cases.get(handoffs, handoff_id, staff, interaction=PREVIEW).value
        receiver = receiving_program(_local("Organization", handoff.to_program_id))
        return self._shown(staff, receiver, lambda ops: _handoff_outgoing(ops, handoff_id))

    def referral_note(self, referral_id: str, staff: StaffPrincipal) -> bytes:
        """The Referral Note (C-CDA R2.1, LOINC 57133-1) of a referral, for the program asked."""
        referrals = KINDS_BY_NAME["referrals"]
        referral: Referral = self._cases.get(
            referrals, referral_id, staff, interaction=PREVIEW
        ).value
        if referral.performer_id is None:
            raise InvalidRequest("the referral names no program to send a Referral Note to")
        receiver = receiving_program(_local("Organization", referral.performer_id))
        return self._shown(staff, receiver, lambda ops: _referral_outgoing(ops, referral_id))

    def _shown(
        self,
        staff: StaffPrincipal,
        receiver: Requester,
        outgoing_from: Callable[[ResourceOperations], "_Outgoing"],
    ) -> bytes:
        """A document shown to a staff member: what its receiver may have. Fetched by the
        receiving program's own staff, it has left for the receiver: a disclosure, accounted
        by what it holds, as when a channel sends it (a case manager working for several
        programs fetches for the receiving one among them). Anyone else sees a preview, a use by
        their program, of records their program may see too: a preview does not show another
        program's staff what the receiver may have and they may not (403)."""
        receiving = receiver.organization.removeprefix("Organization/")
        program = receiving if receiving in staff.programs else next(iter(staff.programs), None)
        viewer = self._cases.requester_for(staff, program)
        if viewer.organization == receiver.organization and not viewer.first_party:
            return self._export(receiver, SENT, outgoing_from)
        return self._export(receiver, PREVIEW, outgoing_from, viewer=viewer)

    def for_task(self, task_id: str, receiver: Requester) -> tuple[DocumentKind, bytes]:
        """The document a referral's Task sends its owner: a Transfer Summary when the Task is
        a handoff, else a Referral Note; read, like everything in it, as `receiver` may."""
        kinds: list[DocumentKind] = []

        def outgoing(operations: ResourceOperations) -> _Outgoing:
            made = _task_outgoing(operations, task_id)
            kinds.append(made.kind)
            return made

        document = self._export(receiver, SENT, outgoing)
        return kinds[0], document

    def _export(
        self,
        receiver: Requester,
        interaction: str,
        outgoing_from: Callable[[ResourceOperations], "_Outgoing"],
        *,
        viewer: Requester | None = None,
    ) -> bytes:
        """Gather, as the receiver is allowed to have it (the referral itself included), and
        write. `interaction` says whether the document leaves (SENT: a disclosure to the
        receiver) or is shown to staff (PREVIEW: a use, since nothing was sent); a preview's
        `viewer` must be allowed every record it shows."""
        with behind_gate(
            self._engine, self._gates, receiver, interaction, paging=_PAGING
        ) as operations:
            outgoing = outgoing_from(operations)
            document = self._document(operations, outgoing, operations.released)
            shown = operations.released_references()
        if viewer is not None:
            self._check_viewer(viewer, shown)
        return write_document(document)

    def _check_viewer(self, viewer: Requester, shown: list[str]) -> None:
        """Every record of a preview read as its viewer's program: one it may not see keeps the
        preview from being shown (answered as for the referral itself, naming no record)."""
        with behind_gate(self._engine, self._gates, viewer, PREVIEW, paging=_PAGING) as seen:
            for reference in dict.fromkeys(shown):
                kind, _, ident = reference.partition("/")
                if released_resource(seen, kind, ident) is None:
                    raise Forbidden(_WITHHELD_FROM_VIEWER)

    def _document(
        self, operations: ResourceOperations, outgoing: "_Outgoing", released: Any
    ) -> OutgoingDocument:
        client = f"Patient/{outgoing.client}"
        patient = released_resource(operations, "Patient", outgoing.client)
        if patient is None:
            raise Forbidden(
                "no consent on file lets the receiving program have this client's records"
            )
        conditions = _search(operations, "Condition", client)
        goals = _search(operations, "Goal", client)
        sender = (
            released_resource(operations, "Organization", outgoing.sender)
            if outgoing.sender
            else None
        )
        receiving = released_resource(operations, "Organization", outgoing.receiver.split("/")[-1])
        now = self._clock()
        stamp = f"{now.astimezone(UTC):%Y%m%d%H%M%S}+0000"
        return OutgoingDocument(
            kind=outgoing.kind,
            id=cda.Identifier(self._oid_root, f"{outgoing.key}-{now:%Y%m%d%H%M%S}"),
            effective_time=stamp,
            title="Transfer Summary"
            if outgoing.kind is DocumentKind.TRANSFER_SUMMARY
            else "Referral Note",
            patient=self._patient(patient),
            author=cda.Author(
                time=stamp,
                ids=(),
                code=None,
                names=(),
                device_model="Recovery Interop",
                device_software="Recovery Interop",
                organization=self._organization(sender),
            ),
            custodian=self._organization(sender),
            recipient=Recipient(self._organization(receiving)),
            reason=outgoing.reason,
            problems=tuple(_problem(c) for c in conditions),
            goals=tuple(_goal(g) for g in goals),
            plan=outgoing.plan,
            transition=self._transition(outgoing.transition),
            part2=self._marking(released),
        )

    def _transition(self, levels: tuple[str, str, str] | None) -> LevelOfCareTransition | None:
        if levels is None:
            return None
        from_level, to_level, planned_date = levels
        return LevelOfCareTransition(
            self._level_code(from_level), self._level_code(to_level), planned_date
        )

    def _level_code(self, code: str) -> cda.Code:
        """Levels of care have no HL7 code system (REFERRALS.md); C-CDA wants an OID, so the
        local system is published under the deployment's OID, arc .1."""
        return cda.Code(f"{self._oid_root}.1", code, _level(code))

    def _marking(self, released: Any) -> Part2Marking | None:
        """DS4P markings only when the gate released Part 2 data, with its notice."""
        if not released.labels or released.notice is None:
            return None
        codes = {code for _system, code in released.labels}
        sensitivities = tuple(sorted(codes & {"SUD", "ETHUD", "OPIOIDUD"})) or ("SUD",)
        consent = sorted(released.consents)[0] if released.consents else None
        return Part2Marking(
            notice=released.notice,
            sensitivities=sensitivities,
            redisclosure_permitted="NORDSCLCD" not in codes,
            purposes_of_use=("TREAT",),
            consent=cda.Identifier(self._oid_root, consent) if consent else None,
        )

    def _patient(self, resource: dict[str, Any]) -> cda.Patient:
        names = tuple(
            cda.PersonName(
                given=tuple(n.get("given", [])), family=(n["family"],) if n.get("family") else ()
            )
            for n in resource.get("name", [])
        )
        birth = resource.get("birthDate")
        gender = _GENDER.get(resource.get("gender", "unknown"), "UN")
        return cda.Patient(
            ids=tuple(self._identifier(i) for i in resource.get("identifier", [])),
            names=names,
            birth_time=birth.replace("-", "") if isinstance(birth, str) else None,
            gender=cda.Code(_ADMINISTRATIVE_GENDER, gender),
            addresses=(),
            telecoms=(),
            provider_organization=None,
        )

    def _organization(self, resource: dict[str, Any] | None) -> cda.Organization:
        if resource is None:
            return cda.Organization()
        return cda.Organization(
            ids=tuple(self._identifier(i) for i in resource.get("identifier", [])),
            names=(str(resource.get("name", "")),) if resource.get("name") else (),
        )

    def _identifier(self, identifier: dict[str, Any]) -> cda.Identifier:
        """FHIR Identifier -> II: an OID root where the system has one, else ours with the
        system kept in the extension."""
        system = str(identifier.get("system", ""))
        value = str(identifier.get("value", ""))
        if system.startswith("urn:oid:"):
            return cda.Identifier(system.removeprefix("urn:oid:"), value)
        if system in _SYSTEM_OIDS:
            return cda.Identifier(_SYSTEM_OIDS[system], value)
        return cda.Identifier(self._oid_root, f"{system}|{value}" if system else value)


def receiving_program(receiver: str) -> Requester:
    """A program without a registration as the gate's requester, asking for treatment."""
    return Requester(
        client_id=f"ccda-export:{receiver}",
        organization=receiver,
        scopes=parse_scopes("system/*.rs"),
        purposes=("TREAT",),
        emergency=None,
        part2_program=False,
        covered_entity=True,
        first_party=False,
    )


def _handoff_outgoing(operations: ResourceOperations, task_id: str) -> _Outgoing:
    task = released_resource(operations, "Task", task_id)
    order = released_resource(operations, "ServiceRequest", focus_id(task)) if task else None
    if task is None or order is None:
        raise Forbidden(_WITHHELD)
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": _plain(order)}, {"resource": _plain(task)}],
    }
    handoff_value = handoff.from_fhir(bundle).value
    planned = f"Admission at the receiving program on {handoff_value.planned_date.isoformat()}"
    return _Outgoing(
        kind=DocumentKind.TRANSFER_SUMMARY,
        key=f"transfer-summary-{handoff_value.id}",
        client=str(handoff_value.client_id),
        sender=str(handoff_value.from_program_id),
        receiver=_local("Organization", handoff_value.to_program_id),
        reason=_transition_text(handoff_value),
        plan=(PlanItem(PlannedKind.ENCOUNTER, planned),),
        transition=(
            handoff_value.from_level.value,
            handoff_value.to_level.value,
            f"{handoff_value.planned_date:%Y%m%d}",
        ),
    )


def _referral_outgoing(operations: ResourceOperations, referral_id: str) -> _Outgoing:
    order = released_resource(operations, "ServiceRequest", referral_id)
    if order is None:
        raise Forbidden(_WITHHELD)
    try:
        referral = service_request.from_fhir(_plain(order)).value
    except MappingError as error:
        reasons = "; ".join(issue.diagnostics for issue in error.issues)
        raise InvalidRequest(f"the referral cannot be written as C-CDA: {reasons}") from None
    if referral.performer_id is None:
        raise InvalidRequest("the referral names no program to send a Referral Note to")
    sender = referral.requester.ref if referral.requester.kind is PartyKind.PROGRAM else ""
    asked = referral.service.display or referral.service.code
    return _Outgoing(
        kind=DocumentKind.REFERRAL_NOTE,
        key=f"referral-note-{referral.id}",
        client=str(referral.client_id),
        sender=str(sender),
        receiver=_local("Organization", referral.performer_id),
        reason=referral.reason or asked,
        plan=(PlanItem(PlannedKind.ENCOUNTER, f"Referral: {asked}"),),
        transition=None,
    )


def _task_outgoing(operations: ResourceOperations, task_id: str) -> _Outgoing:
    task = released_resource(operations, "Task", task_id)
    if task is None:
        raise Forbidden(_WITHHELD)
    try:
        return _handoff_outgoing(operations, task_id)
    except MappingError:
        return _referral_outgoing(operations, focus_id(task))


def focus_id(task: dict[str, Any]) -> str:
    """The id of the ServiceRequest a Task fulfils."""
    reference = str(task.get("focus", {}).get("reference", ""))
    kind, _, ident = reference.rpartition("/")
    return ident if kind.endswith("ServiceRequest") else ""


def _plain(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without what the server and the gate put in meta, as the mappings read
    domain values from what was written."""
    rest = {k: v for k, v in resource.items() if k != "meta"}
    profiles = resource.get("meta", {}).get("profile")
    return {**rest, "meta": {"profile": profiles}} if profiles else rest


_WITHHELD = "no consent on file lets the receiving program have this referral"
_WITHHELD_FROM_VIEWER = "the document holds records your program may not see"


def _local(kind: str, ref: str) -> str:
    return ref if "/" in ref else f"{kind}/{ref}"


def released_resource(
    operations: ResourceOperations, kind: str, ident: str
) -> dict[str, Any] | None:
    """The resource as `operations`' gate releases it; None when withheld, unknown, deleted
    or on another server, which are all the same to the receiver."""
    try:
        stored = operations.read(kind, ident.split("/")[-1])
    except ServiceError:
        return None
    return orjson.loads(stored.content) if stored.content else None


def _search(operations: ResourceOperations, kind: str, patient: str) -> list[dict[str, Any]]:
    bundle = operations.search(kind, [("patient", patient)], base_url="")
    return [
        bb.plain(e["resource"]) for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
    ]


def _transition_text(handoff: Handoff) -> str:
    return f"Transition from {_level(handoff.from_level.value)} to {_level(handoff.to_level.value)}"


def _level(code: str) -> str:
    return LEVEL_OF_CARE.display(code) or code


def _code(concept: dict[str, Any]) -> cda.Code | None:
    for coding in concept.get("coding", []):
        oid = _SYSTEM_OIDS.get(coding.get("system", ""))
        if oid is not None and coding.get("code"):
            return cda.Code(oid, coding["code"], coding.get("display"))
    return None


def _problem(condition: dict[str, Any]) -> cda.Problem:
    concept = condition.get("code", {})
    onset = condition.get("onsetDateTime") or condition.get("recordedDate")
    return cda.Problem(
        concern_status="active",
        code=None,
        value=_code(concept),
        value_translations=(),
        text=concept.get("text") or None,
        status=None,
        effective=cda.Period(low=onset[:10].replace("-", "")) if isinstance(onset, str) else None,
        negated=False,
    )


def _goal(goal: dict[str, Any]) -> cda.Goal:
    description = goal.get("description", {})
    return cda.Goal(
        code=_code(description),
        value=None,
        text=description.get("text") or None,
        status=None,
        effective=None,
    )
