"""The consent decision service for other systems: the HL7 Security WG's CDS Hooks
`patient-consent-consult` hook, in the request and response shape of the LEAP Consent
Decision Service (PART2.md "FHIR shapes").

The caller is the custodian about to disclose (a registered partner, authenticated like any
other); `context.actor` names the intended recipient, `context.purposeOfUse` the purposes,
`context.patientId` the patient by identifier. Without `content`, the question is about the
patient's SUD records in general (v3-ActCode SUD, or the labels given in `category`); with a
`content` Bundle, each entry is decided on its own, the permitted ones come back labelled and
the others are removed, and the card's REDACT obligation names what was withheld.

Decisions, as LEAP's clients expect them: CONSENT_PERMIT when the engine permits,
CONSENT_DENY only when one of the patient's consents refuses (PART2.md C8), and NO_CONSENT
when nothing in force speaks to the question (no consent on file, none that applies, or none
that can be relied on). The card follows LEAP's published response schema
(schemas/patient-consent-consult-hook-response.schema.json: `source.label` and `source.url`,
obligations as `{id: {system, code}, parameters: {codes}}`). Every decision goes to the
disclosure log (A1) as interaction "cds-consult": a decision, not a disclosure, so the
patient's accounting of disclosures leaves it out (interop.audit.accounting).

The caller learns nothing the gate would not release to it (ARCHITECTURE.md rule 4): a
patient it may not see is answered for exactly as a patient nobody registered (§2.13(c): that
a person is a Part 2 program's client is itself protected), and a consent is named (in
`basedOn`, the detail, or the notice of a released record) only when it may read that Consent.
The engine still decides on every consent of the patient, so a refusal the caller may not read
refuses all the same (C8).
"""

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from consent.model import (
    Coding,
    DataItem,
    Decision,
    Identifier,
    Outcome,
    Reason,
)
from consent.model import Requester as ConsentRequester
from interop.auth.requester import Requester
from interop.services.disclosure import (
    DisclosureGate,
    GateSession,
    content_item,
    label,
    patient_of,
)
from interop.services.errors import InvalidRequest
from interop.store.consents import consent_versions, holding_side
from interop.store.database import unit_of_work
from interop.store.identifiers import ids_with
from interop.store.repository import ResourceRepository
from mappings.terminology import PROJECT_BASE

HOOK = "patient-consent-consult"
SERVICE_ID = "patient-consent-consult"
INTERACTION = "cds-consult"
SOURCE = {"label": "Recovery Interop consent decision service", "url": PROJECT_BASE}
PERMIT, DENY, NO_CONSENT = "CONSENT_PERMIT", "CONSENT_DENY", "NO_CONSENT"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_PURPOSE_PREFIXES = (
    "http://terminology.hl7.org/CodeSystem/v3-ActReason#",
    "urn:oid:2.16.840.1.113883.5.8#",
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_AUTHORIZATION_FIELDS: tuple[tuple[str, type], ...] = (
    ("access_token", str),
    ("token_type", str),
    ("expires_in", int),
    ("scope", str),
    ("subject", str),
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
    """Answers consults through the disclosure gate itself: the same consents, facts and
    engine as every read, and its decisions logged by the gate under `cds-consult`."""

    def __init__(self, engine: Engine, gates: DisclosureGate) -> None:
        self._engine = engine
        self._gates = gates

    def consult(self, body: dict[str, Any], caller: Requester) -> dict[str, Any]:
        context = _context(body)
        gate: GateSession | None = None
        try:
            with unit_of_work(self._engine, writes=False) as session:
                gate = self._gates.open(session, caller, INTERACTION)
                patient = _visible_patient(session, gate, context.patient_ids)
                recipient = _recipient(session, context.actors)
                ask = _asker(gate, patient, recipient, context)
                names = _ConsentNames(session, gate, patient)
                if context.content is None:
                    decision = ask(_general_item(context))
                    return _card_for(decision, [], None, names)
                released, withheld, decision = _filter_content(ask, context.content, names)
                return _card_for(decision, withheld, released, names)
        finally:
            if gate is not None:
                self._gates.record(gate)


def _asker(
    gate: GateSession, patient: str | None, recipient: ConsentRequester, context: _Context
) -> Callable[[DataItem], Decision]:
    """One question to the gate about one record of the patient, for the consult's actor and
    purposes, the caller being the program that would disclose it."""

    def ask(item: DataItem) -> Decision:
        return gate.consult(patient, recipient, context.purposes, item)

    return ask


def _context(body: dict[str, Any]) -> _Context:
    _check_request(body)
    context: dict[str, Any] = body["context"]
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


def _check_request(body: dict[str, Any]) -> None:
    """The fields of a CDS Hooks 2.0 call ("Calling a CDS Service", HTTP Request): `hook`,
    `hookInstance` (a UUID) and `context` (an object) are required; `fhirServer` is a URL, and
    required when `fhirAuthorization` is given, whose own fields are all required; `prefetch`
    is an object. An element given is never null (the spec's "Use of JSON")."""
    if body.get("hook") != HOOK:
        raise InvalidRequest(f"this service answers the {HOOK} hook")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not _UUID.fullmatch(instance):
        raise InvalidRequest("hookInstance is required: a UUID naming this call")
    if not isinstance(body.get("context"), dict):
        raise InvalidRequest("context is required: an object, the hook's context")
    if "fhirServer" in body and not _is_url(body["fhirServer"]):
        raise InvalidRequest("fhirServer is the base URL of the client's FHIR server")
    if "fhirAuthorization" in body:
        if "fhirServer" not in body:
            raise InvalidRequest("fhirAuthorization needs the fhirServer it is for")
        _check_authorization(body["fhirAuthorization"])
    if "prefetch" in body and not isinstance(body["prefetch"], dict):
        raise InvalidRequest("prefetch is an object of the prefetched data by key")


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"https?://[^\s/?#]+\S*", value) is not None


def _check_authorization(value: Any) -> None:
    """CDS Hooks 2.0 "Passing the Access Token": each field required, the type `Bearer`."""
    if not isinstance(value, dict):
        raise InvalidRequest("fhirAuthorization is an object")
    for name, kind in _AUTHORIZATION_FIELDS:
        given = value.get(name)
        if not isinstance(given, kind) or isinstance(given, bool):
            raise InvalidRequest(f"fhirAuthorization.{name} is required ({kind.__name__})")
    if value["token_type"] != "Bearer":  # noqa: S105 - the token's type, no password
        raise InvalidRequest("fhirAuthorization.token_type is Bearer")


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
    found = {
        ident
        for identifier in identifiers
        for ident in ids_with(session, "Patient", identifier.system, identifier.value)
    }
    return sorted(f"Patient/{ident}" for ident in found)


def _visible_patient(
    session: Session, gate: GateSession, identifiers: Sequence[Identifier]
) -> str | None:
    """The one patient with any of the identifiers that the gate would release to the caller,
    those its own side holds first; one it withholds is asked about as a patient not known
    here, so the answer for a withheld client and for an MRN nobody registered is the same
    (§2.13(c)). Anyone may create a Patient carrying any MRN: when the caller's side holds
    none of the carriers and it sees several, or holds several, whose consents to read cannot
    be told, and the patient is not known here either."""
    repository = ResourceRepository(session)
    side = holding_side(session, gate.requester.organization)
    seen: list[tuple[str, bool]] = []
    for reference in _patients(session, identifiers):
        stored = repository.latest("Patient", reference.removeprefix("Patient/"))
        if stored is not None and gate.sees(stored):
            seen.append((reference, bool(side & set(stored.custodians))))
    held = [reference for reference, ours in seen if ours]
    candidates = held or [reference for reference, _ in seen]
    return candidates[0] if len(candidates) == 1 else None


class _ConsentNames:
    """Which of the patient's consents a card may name: those the caller may read (S3).

    Each is asked of the gate once, and only when a card would name it, so the consult of a
    program holding its own consents costs one decision more per consent it names."""

    def __init__(self, session: Session, gate: GateSession, patient: str | None) -> None:
        self._repository = ResourceRepository(session)
        self._gate = gate
        self._shown: dict[str, bool] = {}
        self._ids: tuple[str, ...] = ()
        if patient is not None:
            versions = consent_versions(session, patient.removeprefix("Patient/"))
            self._ids = tuple(ident for _, ident, _, _ in versions)

    def shown(self, consent: str | None) -> str | None:
        """The consent's reference when the caller may read the Consent, else None."""
        if consent is None:
            return None
        ident = consent.removeprefix("Consent/")
        if ident not in self._shown:
            stored = self._repository.latest("Consent", ident)
            self._shown[ident] = stored is not None and self._gate.sees(stored)
        return f"Consent/{ident}" if self._shown[ident] else None

    def told(self, reasons: Iterable[Reason]) -> list[Reason]:
        """The reasons that name no consent the caller may not read (the engine's texts name
        a consent as "consent <id>")."""
        return [
            reason
            for reason in reasons
            if all(self.shown(i) for i in self._ids if f"consent {i}" in reason.text)
        ]


def _recipient(session: Session, actors: Sequence[Identifier]) -> ConsentRequester:
    """The actor as the engine knows requesters: an Organization here when one has the id."""
    for actor in actors:
        found = ids_with(session, "Organization", actor.system, actor.value)
        if found:
            return ConsentRequester(reference=f"Organization/{found[0]}", identifiers=tuple(actors))
    return ConsentRequester(reference=None, identifiers=tuple(actors))


_SUD_RECORD = DataItem("Patient", security_labels=(Coding(_ACT_CODE, "SUD"),), is_part2=True)


def _general_item(context: _Context) -> DataItem:
    """The patient's SUD records in general, or those with the labels the caller names."""
    if not context.labels:
        return _SUD_RECORD
    return DataItem("Patient", security_labels=context.labels, is_part2=True)


def _filter_content(
    ask: Callable[[DataItem], Decision], bundle: dict[str, Any], names: _ConsentNames
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
        decision = _decided_whole(ask, resource, labels)
        decisions.append(decision)
        if decision.outcome is Outcome.PERMIT:
            kept.append({**entry, "resource": _labelled(resource, decision, names)})
        else:
            withheld.extend(labels)
    permits = [d for d in decisions if d.outcome is Outcome.PERMIT]
    speaking = (permits or decisions or [ask(_SUD_RECORD)])[0]
    rest = {name: value for name, value in bundle.items() if name != "entry"}
    return {**rest, "entry": kept} if kept else rest, withheld, speaking


def _decided_whole(
    ask: Callable[[DataItem], Decision], resource: dict[str, Any], labels: tuple[Coding, ...]
) -> Decision:
    """The record decided as the gate decides it (its codes and date, not its type alone), and
    then each resource it contains as the data that one is (a diagnosis inside a care plan is
    a diagnosis, review 9 #4), under the container's labels (dom-5: they carry none): it goes
    only when every part may, as it cannot leave without what it contains."""
    decision = ask(replace(content_item(resource), security_labels=labels))
    parts = (inner for inner in _list(resource.get("contained")) if isinstance(inner, dict))
    for inner in parts:
        if decision.outcome is not Outcome.PERMIT:
            return decision
        decision = ask(replace(content_item(inner), security_labels=labels))
    return decision


def _labels(resource: dict[str, Any]) -> tuple[Coding, ...]:
    return tuple(
        Coding(c.get("system"), c["code"])
        for c in resource.get("meta", {}).get("security", [])
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def _labelled(resource: dict[str, Any], decision: Decision, names: _ConsentNames) -> dict[str, Any]:
    pairs = [(c.system or "", c.code) for c in decision.obligations.labels]
    notice = decision.obligations.notice
    if notice is None:
        return label(resource, pairs, None, ())
    shown = names.shown(notice.consent_reference)
    return label(resource, pairs, notice.statement, [shown] if shown else ())


def _rule(decision: Decision) -> str:
    return decision.reasons[0].rule if decision.reasons else "P2"


def consent_decision(decision: Decision) -> str:
    """LEAP's decision codes: a deny is CONSENT_DENY only when a consent refused (the
    decision then names it); a deny for want of any consent in force is NO_CONSENT."""
    if decision.outcome is Outcome.PERMIT:
        return PERMIT
    return DENY if decision.consent_id is not None else NO_CONSENT


_NO_CONSENT_DETAIL = "No consent in force permits this disclosure."


def _card_for(
    decision: Decision,
    withheld: list[Coding],
    content: dict[str, Any] | None,
    names: _ConsentNames,
) -> dict[str, Any]:
    answer = consent_decision(decision)
    if answer == NO_CONSENT:
        # One text whether or not the patient has consents here: which it is would tell an
        # unrelated caller that the person is a program's client (§2.13(c)).
        return _card(NO_CONSENT, _NO_CONSENT_DETAIL, None, withheld, content)
    detail = "; ".join(reason.text for reason in names.told(decision.reasons)[:3]) or answer
    return _card(answer, detail, names.shown(decision.consent_id), withheld, content)


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
                "id": {"system": _ACT_CODE, "code": "REDACT"},
                "parameters": {"codes": [{"system": s, "code": c} for s, c in codes]},
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
                "indicator": "info" if verdict == PERMIT else "warning",
                "source": dict(SOURCE),
                "extension": extension,
            }
        ]
    }
