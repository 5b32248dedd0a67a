"""Every row of the decision table (`tests.consent.test_decisions.DECISION_CASES`) replayed end
to end: the world built through the FHIR API, the record asked for with a real access token,
and the same outcome expected from the disclosure gate as from `consent.decide`.

For each row, over SQLite and PostgreSQL, with the gate's clock pinned to the row's `as_of`:
- the first-party EHR PUTs (update as create, so the ids the rows use are kept) the Patient
  named as the rows expect, the Organizations the rows name (the Part 2 programs with the
  part2-program extension), the RelatedPersons that sign, the row's consents; the record
  (`request.item` as a stored resource, with its security labels in meta.security, the patient
  as its subject, its clinical date and its codes) is written on behalf of the row's source
  program when the row marks it Part 2 data, so that its recorded origin says so (P1), and by
  the EHR otherwise;
- the requester is a partner registered through the partner registry with the row's flags
  (covered entity, Part 2 program) and identifiers. The server assigns its Organization id, so
  every occurrence of the row's requester reference (e.g. "Organization/riverside-clinic") in
  the row's consents is rewritten, as a JSON string, to the registered Organization;
- its token carries the row's purposes of use in the UDAP hl7-b2b extension and, when the row
  has an emergency, the §2.51 facts in `extensions.recovery-interop-emergency` (the service
  derives "medical personnel" from the facts being given);
- a permitted row reads 200 with at least the row's labels in meta.security (PART2.md S2);
  a denied row reads 404 with the very OperationOutcome an unknown id gets (S3); and the
  disclosure log holds the decision with the row's deciding rule and consent (A1).

A record the row marks as not Part 2 data names no source program: through the API a record
from a Part 2 program is Part 2 data by definition (P1), which is what the row's flag denies.

Rows the API cannot express (an action other than disclose, a claimed non-consent basis, an
expiration event known to have occurred, records related to the asked-for one, a resource type
the server does not store, emergency facts from someone who is not medical personnel: see
`unexpressible`) are skipped, each saying which capability is missing. Rows where the gate
derives the request differently from the row are strict xfails naming the gap
(KNOWN_GATE_GAPS), so that closing the gap makes them fail until the mark is removed.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from consent import DataItem, DisclosureRequest, Outcome
from consent import vocabulary as v
from interop.app import create_app
from interop.services.forms import ConsentForms
from interop.services.partners import NewPartner, PartnerService
from interop.services.resources import internal_operations
from interop.services.search_parser import Paging
from interop.settings import Settings
from interop.store.database import make_engine, unit_of_work
from interop.store.search_params import SUPPORTED_TYPES
from interop.store.tables import DisclosureLogRow
from tests.builders import organization, part2_program, patient
from tests.conftest import RegisteredPartner, bearer
from tests.consent import (
    AS_OF,
    CLINIC,
    COURT,
    OTHER_PATIENT,
    OTHER_PROGRAM,
    PATIENT,
    PAYER,
    PROGRAM,
    STRANGER,
    WORLD,
)
from tests.consent.test_decisions import DECISION_CASES, DecisionCase
from tests.keys import ClientKey, rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}
PURPOSE_OF_USE = "urn:oid:2.16.840.1.113883.5.8#"
PARTNER_ID_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"
SCOPE = "system/*.rs"
UNKNOWN_ID = "no-such-record"

PROGRAMS = (PROGRAM, OTHER_PROGRAM)
OTHER_ORGANIZATIONS = (CLINIC, PAYER, STRANGER, COURT)

# How each stored type carries what the gate reads: its required elements; the patient as
# `subject` (`patient_of`); the source program in an element `sources_of` reads (an
# Organization even where R4 lists other targets, as the gate tests store it); the codes in an
# element `_concept_codings` reads. The clinical date goes where FHIR R4 keeps it for the type
# (see `record`), whether or not `_record_date` reads it: where it does not, KNOWN_GATE_GAPS.
REQUIRED: dict[str, dict[str, Any]] = {
    "Condition": {},
    "CarePlan": {"status": "active", "intent": "plan"},
    "DocumentReference": {
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "title": "Session note"}}],
    },
    "Goal": {"lifecycleStatus": "active", "description": {"text": "Stay in treatment"}},
    "MedicationStatement": {"status": "active", "medicationCodeableConcept": {"text": "Methadone"}},
}
SOURCE_ELEMENT = {
    "Condition": "asserter",
    "CarePlan": "author",
    "DocumentReference": "custodian",
    "Goal": "expressedBy",
    "MedicationStatement": "informationSource",
}
CODE_ELEMENT = {
    "Condition": "code",
    "DocumentReference": "type",
    "MedicationStatement": "medicationCodeableConcept",
}
AUTHOR_ELEMENT = {
    "Condition": "recorder",
    "CarePlan": "author",
    "DocumentReference": "author",
    "Goal": "expressedBy",
    "MedicationStatement": "informationSource",
}
"""Where each type names who authored it (any type of author), for `authoredby` provisions."""


def _authors(kind: str, item: DataItem) -> Any:
    """The row's authors as references, and its author identifiers as logical references."""
    named: list[dict[str, Any]] = [{"reference": author} for author in item.authors]
    named += [
        {"identifier": {"system": i.system, "value": i.value}} for i in item.author_identifiers
    ]
    return named if kind == "DocumentReference" else named[0]


KNOWN_GATE_GAPS: dict[str, str] = {}


def unexpressible(case: DecisionCase) -> str | None:
    """Why the API cannot pose this row's request, or None when it can."""
    request = case.request
    item = request.item
    if case.facts != WORLD:
        return (
            "the row's facts around its consents (Provenance signatures, approved forms other "
            "than WORLD's, a birth date or an unnamed Patient) are not stored by this replay"
        )
    if request.intermediary is not None or request.treating_relationship:
        return (
            "this replay runs no intermediary (INTERMEDIARY_ORGANIZATION unset) and stores no "
            "record of care; tests/interop/disclosure/test_intermediary.py poses these"
        )
    if item.authors or item.author_identifiers:
        return "this replay stores a record's source program only, not other authors"
    if request.action != v.DISCLOSE:
        return f"a FHIR read always asks to disclose; no API asks for {request.action!r}"
    if request.non_consent_basis is not None:
        return (
            f"no API lets a requester claim {request.non_consent_basis.value!r} as its basis; "
            "the gate never sets DisclosureRequest.non_consent_basis"
        )
    if request.occurred_events:
        return (
            "no API records that an expiration event (e.g. end of treatment) has occurred; "
            "the gate never sets DisclosureRequest.occurred_events"
        )
    if item.related:
        return (
            "the gate never derives DataItem.related from a stored record (no reverse lookup "
            "of e.g. CarePlan.goal), and an R4 Goal cannot reference its CarePlan"
        )
    if item.source_identifiers:
        return "the gate never sets DataItem.source_identifiers from a stored record"
    if any(coding.system != v.RESOURCE_TYPES for coding in item.classes):
        return "the gate classes a record by its resource type only"
    if item.is_counseling_note and all(c.code != v.COUNSELING_NOTE for c in item.security_labels):
        return "through the API a counseling note is one labelled PSYTHPN"
    if item.resource_type not in SUPPORTED_TYPES:
        return f"the FHIR API does not store {item.resource_type} (not in SUPPORTED_TYPES)"
    if request.emergency is not None and not request.requester.is_medical_personnel:
        return (
            "the service derives 'medical personnel' from the emergency facts in the token, so "
            "a requester with facts who is not medical personnel cannot be posed"
        )
    return None


def _param(case: DecisionCase) -> Any:
    marks: list[pytest.MarkDecorator] = []
    reason = unexpressible(case)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=reason))
    elif case.id in KNOWN_GATE_GAPS:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GATE_GAPS[case.id]))
    return pytest.param(case, id=case.id, marks=marks)


@dataclass
class PinnedClock:
    """The gate's clock: consents are judged at the row's `as_of`, not at the wall clock."""

    now: datetime = AS_OF

    def __call__(self) -> datetime:
        return self.now


@cache
def shared_key() -> ClientKey:
    """One key for every partner: RSA generation would dominate the suite's run time."""
    return rsa_key()


def register(
    app_client: TestClient,
    name: str,
    identifiers: list[tuple[str | None, str]],
    *,
    covered_entity: bool = False,
    part2_program: bool = False,
    first_party: bool = False,
) -> RegisteredPartner:
    """A partner registered through the partner registry, with the given identifiers (the
    conftest's `register_partner` names every partner by one synthetic identifier)."""
    service: PartnerService = app_client.app.state.partners  # type: ignore[attr-defined]
    key = shared_key()
    partner = service.register(
        NewPartner(
            name=name,
            identifiers=[(system or PARTNER_ID_SYSTEM, value) for system, value in identifiers],
            scopes="system/*.cruds" if first_party else SCOPE,
            jwks=key.jwks(),
            covered_entity=covered_entity,
            part2_program=part2_program,
            first_party=first_party,
        )
    )
    return RegisteredPartner(partner.client_id, partner.organization, key)


@pytest.fixture
def clock() -> PinnedClock:
    return PinnedClock()


@pytest.fixture
def service(settings: Settings, clock: PinnedClock) -> Iterator[TestClient]:
    """The app over the test's database, its gate judging consents at the pinned clock."""
    with TestClient(create_app(settings, clock=clock)) as anonymous:
        yield anonymous


@pytest.fixture
def ehr(service: TestClient) -> TestClient:
    """The program's own EHR (first party), which stores the world of each row."""
    harness = register(service, "Test Harness EHR", [(None, "harness")], first_party=True)
    authenticated = TestClient(service.app)
    authenticated.headers["Authorization"] = bearer(service, harness)
    return authenticated


@pytest.fixture
def log(settings: Settings) -> Iterator[Session]:
    """A session on the disclosure log, read as compliance staff would (A1)."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def put(ehr: TestClient, resource: dict[str, Any]) -> None:
    """Update as create: the resource keeps the id the row uses."""
    response = ehr.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.text


def store_as(settings: Settings, origin: str, resource: dict[str, Any]) -> None:
    """The record as its source program wrote it: its recorded origin is what makes it Part 2
    data (P1), written through the product's own write path on that program's behalf."""
    engine = make_engine(settings.database_url, chain_key=settings.chain_key())
    with (
        unit_of_work(engine) as session,
        internal_operations(session, "test-seed", paging=Paging(1, 1), on_behalf_of=origin) as ops,
    ):
        ops.update(resource["resourceType"], resource["id"], resource)
    engine.dispose()


def ident(reference: str) -> str:
    return reference.split("/", 1)[1]


def display(reference: str) -> str:
    return ident(reference).replace("-", " ").title()


def related_people(consents: tuple[dict[str, Any], ...]) -> set[str]:
    """The RelatedPersons who sign the row's consents for the patient."""
    return {
        performer["reference"]
        for resource in consents
        for performer in resource.get("performer", [])
        if performer.get("reference", "").startswith("RelatedPerson/")
    }


def store_world(ehr: TestClient, case: DecisionCase) -> None:
    """The patients, organizations and signers the row names, except the requester."""
    put(ehr, {**patient(family="Testperson", given="Alex", mrn="MRN-SUD-1"), "id": ident(PATIENT)})
    put(ehr, {**patient(family="Otherperson", mrn="MRN-SUD-2"), "id": ident(OTHER_PATIENT)})
    requester = case.request.requester.reference
    for reference in PROGRAMS:
        if reference != requester:
            put(ehr, {**part2_program(display(reference)), "id": ident(reference)})
    for reference in OTHER_ORGANIZATIONS:
        if reference != requester:
            put(ehr, {**organization(display(reference)), "id": ident(reference)})
    for reference in sorted(related_people(case.consents)):
        put(
            ehr,
            {
                "resourceType": "RelatedPerson",
                "id": ident(reference),
                "patient": {"reference": PATIENT},
                "name": [{"family": "Testperson", "given": [display(reference)]}],
            },
        )


def approve_forms(service: TestClient, case: DecisionCase) -> None:
    """The forms the row's facts hold approved, approved once by compliance staff (C9)."""
    forms: ConsentForms = service.app.state.consent_forms  # type: ignore[attr-defined]
    for form, statements in case.facts.approved_forms.items():
        forms.approve(form, "Part 2 consent form", sorted(statements), "cora.compliance")


def consents_for(case: DecisionCase, recipient: str) -> list[dict[str, Any]]:
    """The row's consents with its requester reference rewritten to the registered partner."""
    text = json.dumps(list(case.consents))
    if case.request.requester.reference is not None:
        text = text.replace(f'"{case.request.requester.reference}"', f'"{recipient}"')
    rewritten: list[dict[str, Any]] = json.loads(text)
    return rewritten


def record(item: DataItem, subject: str) -> dict[str, Any]:
    """The asked-for record as FHIR: what the row's DataItem says, where FHIR R4 keeps it."""
    assert item.reference is not None
    kind = item.resource_type
    resource: dict[str, Any] = {"resourceType": kind, "id": ident(item.reference)}
    if item.security_labels:
        resource["meta"] = {
            "security": [
                {"system": label.system, "code": label.code} for label in item.security_labels
            ]
        }
    resource.update(REQUIRED[kind])
    resource["subject"] = {"reference": subject}
    if item.source_program is not None and item.is_part2:
        resource[SOURCE_ELEMENT[kind]] = {"reference": item.source_program}
    if item.authors or item.author_identifiers:
        resource[AUTHOR_ELEMENT[kind]] = _authors(kind, item)
    if item.codes:
        resource[CODE_ELEMENT[kind]] = {
            "coding": [{"system": code.system, "code": code.code} for code in item.codes]
        }
    if item.date is not None:
        instant = item.date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind == "Condition":
            resource["recordedDate"] = instant
        elif kind == "CarePlan":
            resource["period"] = {"start": instant}
        elif kind == "DocumentReference":
            resource["date"] = instant
        elif kind == "Goal":
            resource["startDate"] = item.date.date().isoformat()
        elif kind == "MedicationStatement":
            resource["effectiveDateTime"] = instant
    return resource


def requester_of(service: TestClient, request: DisclosureRequest) -> RegisteredPartner:
    """The row's requester as a registered partner with its flags and identifiers."""
    who = request.requester
    name = display(who.reference) if who.reference else "Unnamed Requester"
    identifiers = [(i.system, i.value) for i in who.identifiers] or [(None, name)]
    return register(
        service,
        name,
        identifiers,
        covered_entity=who.is_covered_entity,
        part2_program=who.is_part2_program,
    )


def token(service: TestClient, partner: RegisteredPartner, request: DisclosureRequest) -> str:
    """A real access token with the row's purposes and, for an emergency, the §2.51 facts."""
    extensions: dict[str, Any] = {
        "hl7-b2b": {
            "version": "1",
            "organization_id": PARTNER_ID_SYSTEM,
            "purpose_of_use": [PURPOSE_OF_USE + purpose for purpose in request.purposes],
        }
    }
    facts = request.emergency
    if facts is not None:
        extensions["recovery-interop-emergency"] = {
            "personnel_name": facts.personnel_name,
            "personnel_affiliation": facts.personnel_affiliation,
            "nature_of_emergency": facts.nature_of_emergency,
            "patient": request.patient,
        }
    return bearer(service, partner, scope=SCOPE, extra={"extensions": extensions})


def security_codes(resource: dict[str, Any]) -> set[str]:
    return {coding["code"] for coding in resource.get("meta", {}).get("security", [])}


def logged(log: Session, partner: RegisteredPartner) -> list[DisclosureLogRow]:
    statement = (
        select(DisclosureLogRow)
        .where(col(DisclosureLogRow.requester) == partner.organization)
        .order_by(col(DisclosureLogRow.seq))
    )
    return list(log.exec(statement).all())


@pytest.mark.parametrize("case", [_param(case) for case in DECISION_CASES])
def test_the_gate_decides_as_the_engine(
    case: DecisionCase,
    service: TestClient,
    ehr: TestClient,
    clock: PinnedClock,
    log: Session,
    settings: Settings,
) -> None:
    """The row's outcome, labels, rule and consent, through the FHIR API with a real token."""
    clock.now = case.as_of
    request = case.request
    item = request.item
    assert item.reference is not None
    approve_forms(service, case)
    store_world(ehr, case)
    partner = requester_of(service, request)
    for resource in consents_for(case, partner.organization):
        put(ehr, resource)
    stored = record(item, request.patient)
    if item.source_program is not None and item.is_part2:
        store_as(settings, item.source_program, stored)
    else:
        put(ehr, stored)
    headers = {"Authorization": token(service, partner, request)}

    response = service.get(f"/fhir/{item.reference}", headers=headers)

    if case.outcome is Outcome.PERMIT:
        assert response.status_code == 200, response.text
        if case.labels is not None:
            released = security_codes(response.json())
            assert set(case.labels) <= released
            assert released - set(case.labels) <= security_codes(stored) - {
                v.NO_REDISCLOSURE_RETIRED
            }
    else:
        unknown = service.get(f"/fhir/{item.resource_type}/{UNKNOWN_ID}", headers=headers)
        assert response.status_code == unknown.status_code == 404, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
        assert response.text.replace(ident(item.reference), "X") == unknown.text.replace(
            UNKNOWN_ID, "X"
        )
    [entry] = logged(log, partner)
    assert (entry.decision, entry.rule) == (case.outcome.value, case.deciding_rule)
    assert entry.resources.split() == [item.reference]
    assert entry.emergency is case.emergency
    if case.consent_id is not None:
        assert entry.consent == f"Consent/{case.consent_id}"
    if case.provision_path is not None:
        assert entry.provision == case.provision_path
