"""The consent decision service for other systems: the HL7 Security WG's CDS Hooks
`patient-consent-consult` hook, in the request and response shape of the LEAP Consent
Decision Service (PART2.md "FHIR shapes").

The caller is the custodian about to disclose (a registered partner, authenticated like any
other); `context.actor` names the intended recipient, `context.purposeOfUse` the purposes,
`context.patientId` the patient by identifier. Without `content`, the question is about the
patient's SUD records in general (v3-ActCode SUD, or the labels given in `category`); with a
`content` Bundle, each entry is decided on its own, the permitted ones come back labelled and
the others are removed, and the card's REDACT obligation names what was withheld.

Decisions: NO_CONSENT when the patient has no consent on file, CONSENT_PERMIT when the engine
permits, CONSENT_DENY otherwise. Every decision goes to the disclosure log (A1).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from consent.engine import decide
from consent.model import (
    Coding,
    ConsentDirective,
    DataItem,
    Decision,
    DisclosureRequest,
    Identifier,
    Outcome,
)
from consent.model import Requester as ConsentRequester
from interop.audit.log import LogEntry, append
from interop.auth.requester import Requester
from interop.services.disclosure import (
    label,
    organization_identifiers,
    patient_of,
    read_directives,
)
from interop.services.errors import InvalidRequest
from interop.store.database import unit_of_work
from interop.store.tables import INDEX_TABLE, RESOURCE_TABLE

HOOK = "patient-consent-consult"
SERVICE_ID = "patient-consent-consult"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PURPOSE_PREFIXES = (
    "http://terminology.hl7.org/CodeSystem/v3-ActReason#",
    "urn:oid:2.16.840.1.113883.5.8#",
)

DISCOVERY: dict[str, Any] = {
    "services": [
        {
            "hook": HOOK,
            "id": SERVICE_ID,
            "title": "42 CFR Part 2 consent decision",
            "description": "Decides whether a patient's Part 2 records may be disclosed to an "
            "actor for the given purposes, on the patient's consents held here.",
            "prefetch": {},
        }
    ]
}


@dataclass(frozen=True, slots=True)
class _Context:
    patient_ids: tuple[Identifier, ...]
    actors: tuple[Identifier, ...]
    purposes: tuple[str, ...]
    labels: tuple[Coding, ...]
    content: dict[str, Any] | None


class ConsentConsult:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def consult(self, body: dict[str, Any], caller: Requester) -> dict[str, Any]:
        context = _context(body)
        now = self._clock()
        with unit_of_work(self._engine, writes=False) as session:
            patients = _patients(session, context.patient_ids)
            directives = [d for patient in patients for d in read_directives(session, patient)]
            recipient = _recipient(session, context.actors)
            source = organization_identifiers(session, caller.organization)
        if not directives:
            self._record(caller, patients, context, "deny", "NO_CONSENT", None, now)
            return _card("NO_CONSENT", "No consent is on file for this patient.", None, [], None)
        ask = _Asker(patients[0], recipient, context, caller, source, directives, now)
        released: dict[str, Any] | None = None
        withheld: list[Coding] = []
        if context.content is None:
            decision = ask(_general_item(context))
        else:
            released, withheld, decision = _filter_content(ask, context.content)
        verdict, rule = decision.outcome.value, _rule(decision)
        self._record(caller, patients, context, verdict, rule, decision.consent_id, now)
        return _card_for(decision, withheld, released)

    def _record(
        self,
        caller: Requester,
        patients: Sequence[str],
        context: _Context,
        decision: str,
        rule: str,
        consent: str | None,
        now: datetime,
    ) -> None:
        entry = LogEntry(
            recorded_at=now,
            client_id=caller.client_id,
            requester=caller.organization,
            patient=patients[0] if patients else None,
            purposes=context.purposes,
            interaction="cds",
            decision=decision,
            rule=rule,
            consent=f"Consent/{consent}" if consent and "/" not in consent else consent,
            provision=None,
            resources=tuple(patients),
            labels=(),
            part2=True,
            emergency=False,
            emergency_facts=None,
        )
        with unit_of_work(self._engine) as session:
            append(session, [entry])


class _Asker:
    """One question to the engine about one record, for this consult's patient and actor."""

    def __init__(
        self,
        patient: str,
        recipient: ConsentRequester,
        context: _Context,
        caller: Requester,
        source: tuple[Identifier, ...],
        directives: list[ConsentDirective],
        now: datetime,
    ) -> None:
        self._patient, self._recipient, self._context = patient, recipient, context
        self._caller, self._source, self._directives, self._now = caller, source, directives, now

    def __call__(self, item: DataItem) -> Decision:
        request = DisclosureRequest(
            patient=self._patient,
            requester=self._recipient,
            purposes=self._context.purposes,
            item=DataItem(
                resource_type=item.resource_type,
                reference=item.reference,
                security_labels=item.security_labels,
                classes=item.classes,
                codes=item.codes,
                date=item.date,
                source_program=self._caller.organization,
                source_identifiers=self._source,
                is_part2=True,
            ),
        )
        return decide(request, self._directives, self._now)


def _context(body: dict[str, Any]) -> _Context:
    if body.get("hook") != HOOK:
        raise InvalidRequest(f"this service answers the {HOOK} hook")
    context = body.get("context")
    if not isinstance(context, dict):
        raise InvalidRequest("the request needs a context")
    patient_ids = _identifiers(context.get("patientId"), "context.patientId")
    actors = _identifiers(context.get("actor"), "context.actor")
    purposes = tuple(_purpose(code) for code in _list(context.get("purposeOfUse")))
    labels = tuple(
        Coding(item.get("system"), item["code"])
        for item in _list(context.get("category"))
        if isinstance(item, dict) and isinstance(item.get("code"), str)
    )
    content = context.get("content")
    if content is not None and (
        not isinstance(content, dict) or content.get("resourceType") != "Bundle"
    ):
        raise InvalidRequest("context.content must be a FHIR Bundle")
    return _Context(patient_ids, actors, purposes, labels, content)


def _identifiers(value: Any, where: str) -> tuple[Identifier, ...]:
    found = tuple(
        Identifier(item.get("system"), item["value"])
        for item in _list(value)
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    )
    if not found:
        raise InvalidRequest(f"{where} needs at least one {{system, value}}")
    return found


def _purpose(code: Any) -> str:
    if not isinstance(code, str):
        raise InvalidRequest("context.purposeOfUse holds codes (strings)")
    text: str = code
    for prefix in _PURPOSE_PREFIXES:
        text = text.removeprefix(prefix)
    return text


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _patients(session: Session, identifiers: Sequence[Identifier]) -> list[str]:
    """Patients here with any of the identifiers (system and value both match)."""
    found = {ident for identifier in identifiers for ident in _with(session, "Patient", identifier)}
    return sorted(f"Patient/{ident}" for ident in found)


def _recipient(session: Session, actors: Sequence[Identifier]) -> ConsentRequester:
    """The actor as the engine knows requesters: an Organization here when one has the id."""
    for actor in actors:
        found = _with(session, "Organization", actor)
        if found:
            return ConsentRequester(reference=f"Organization/{found[0]}", identifiers=tuple(actors))
    return ConsentRequester(reference=None, identifiers=tuple(actors))


def _with(session: Session, resource_type: str, identifier: Identifier) -> list[str]:
    """Ids of the current resources of a type that carry the identifier."""
    statement = select(RESOURCE_TABLE.c.resource_id).where(
        RESOURCE_TABLE.c.deleted.is_(False),
        RESOURCE_TABLE.c.pk.in_(
            select(INDEX_TABLE.c.resource_pk).where(
                INDEX_TABLE.c.resource_type == resource_type,
                INDEX_TABLE.c.param == "identifier",
                INDEX_TABLE.c.system == identifier.system,
                INDEX_TABLE.c.value == identifier.value,
            )
        ),
    )
    return list(session.execute(statement).scalars())


_SUD_RECORD = DataItem("Patient", security_labels=(Coding(_ACT_CODE, "SUD"),), is_part2=True)


def _general_item(context: _Context) -> DataItem:
    """The patient's SUD records in general, or those with the labels the caller names."""
    if not context.labels:
        return _SUD_RECORD
    return DataItem("Patient", security_labels=context.labels, is_part2=True)


def _filter_content(
    ask: _Asker, bundle: dict[str, Any]
) -> tuple[dict[str, Any], list[Coding], Decision]:
    """Each patient record decided on its own: permitted ones labelled, the others removed.

    The card speaks with the first permit (withheld parts become a REDACT obligation), or
    with the first deny when nothing may go.
    """
    kept: list[Any] = []
    withheld: list[Coding] = []
    decisions: list[Decision] = []
    for entry in _list(bundle.get("entry")):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or patient_of(resource) is None:
            kept.append(entry)
            continue
        labels = _labels(resource) or (Coding(_ACT_CODE, "SUD"),)
        decision = ask(DataItem(str(resource.get("resourceType")), security_labels=labels))
        decisions.append(decision)
        if decision.outcome is Outcome.PERMIT:
            kept.append({**entry, "resource": _labelled(resource, decision)})
        else:
            withheld.extend(labels)
    permits = [d for d in decisions if d.outcome is Outcome.PERMIT]
    speaking = (permits or decisions or [ask(_SUD_RECORD)])[0]
    return {**bundle, "entry": kept}, withheld, speaking


def _labels(resource: dict[str, Any]) -> tuple[Coding, ...]:
    return tuple(
        Coding(c.get("system"), c["code"])
        for c in resource.get("meta", {}).get("security", [])
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def _labelled(resource: dict[str, Any], decision: Decision) -> dict[str, Any]:
    pairs = [(c.system or "", c.code) for c in decision.obligations.labels]
    notice = decision.obligations.notice
    if notice is None:
        return label(resource, pairs, None, None)
    return label(resource, pairs, notice.statement, notice.consent_reference)


def _rule(decision: Decision) -> str:
    return decision.reasons[0].rule if decision.reasons else "P2"


def _card_for(
    decision: Decision, withheld: list[Coding], content: dict[str, Any] | None
) -> dict[str, Any]:
    verdict = "CONSENT_PERMIT" if decision.outcome is Outcome.PERMIT else "CONSENT_DENY"
    detail = "; ".join(reason.text for reason in decision.reasons[:3]) or verdict
    return _card(verdict, detail, decision.consent_id, withheld, content)


def _card(
    verdict: str,
    detail: str,
    consent: str | None,
    withheld: list[Coding],
    content: dict[str, Any] | None,
) -> dict[str, Any]:
    extension: dict[str, Any] = {"decision": verdict, "obligations": []}
    if withheld:
        codes = sorted({(c.system or _ACT_CODE, c.code) for c in withheld})
        extension["obligations"].append(
            {
                "obligation": {"system": _ACT_CODE, "code": "REDACT"},
                "content": {"codes": [{"system": s, "code": c} for s, c in codes]},
            }
        )
    if consent:
        extension["basedOn"] = consent if "/" in consent else f"Consent/{consent}"
    if content is not None:
        extension["content"] = content
    return {
        "cards": [
            {
                "summary": verdict,
                "detail": detail,
                "indicator": "info" if verdict == "CONSENT_PERMIT" else "warning",
                "source": {"label": "Recovery Interop consent decision service"},
                "extension": extension,
            }
        ]
    }
