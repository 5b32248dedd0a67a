"""The queries that read a patient's stored consents, and what surrounds them, for the gate;
and the consent forms compliance staff approved (PART2.md C9)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import and_, bindparam, exists, select
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from interop.store import markers
from interop.store.identifiers import patient_custodians
from interop.store.search_params import IDENTIFIER_MODIFIER
from interop.store.tables import (
    INDEX_TABLE,
    OPERATOR_ORIGIN,
    PARTNER_TABLE,
    RESOURCE_TABLE,
    STAFF_TABLE,
    VERSION_TABLE,
    ConsentFormRow,
)

CONSENT_VERSIONS: Final = select(
    RESOURCE_TABLE.c.pk,
    RESOURCE_TABLE.c.resource_id,
    RESOURCE_TABLE.c.version_id,
    RESOURCE_TABLE.c.origin,
).where(
    RESOURCE_TABLE.c.resource_type == "Consent",
    RESOURCE_TABLE.c.deleted.is_(False),
    RESOURCE_TABLE.c.pk.in_(
        select(INDEX_TABLE.c.resource_pk).where(
            INDEX_TABLE.c.resource_type == "Consent",
            INDEX_TABLE.c.param == "patient",
            INDEX_TABLE.c.value == bindparam("patient"),
            INDEX_TABLE.c.norm.is_(None),
        )
    ),
)
"""Built once: the per-request cost is then the query alone, not its construction."""


def consent_versions(session: Session, patient_id: str) -> list[tuple[int, str, int, str]]:
    """(pk, id, version, origin) of every current Consent naming the patient."""
    return [
        (pk, ident, version, origin)
        for pk, ident, version, origin in session.execute(
            CONSENT_VERSIONS, {"patient": patient_id}
        ).all()
    ]


_CONSENT_INDEX = INDEX_TABLE.alias("consent_index")
_PATIENT_INDEX = INDEX_TABLE.alias("patient_index")
_PATIENT_ROW = RESOURCE_TABLE.alias("patient_row")
_PATIENT_IDENTIFIERS = (
    select(_PATIENT_INDEX.c.system, _PATIENT_INDEX.c.value)
    .join(_PATIENT_ROW, _PATIENT_ROW.c.pk == _PATIENT_INDEX.c.resource_pk)
    .where(
        _PATIENT_ROW.c.resource_type == "Patient",
        _PATIENT_ROW.c.resource_id == bindparam("patient"),
        _PATIENT_ROW.c.deleted.is_(False),
        _PATIENT_INDEX.c.resource_type == "Patient",
        _PATIENT_INDEX.c.param == "identifier",
        _PATIENT_INDEX.c.system.is_not(None),
    )
    .subquery()
)
CONSENTS_BY_IDENTIFIER: Final = (
    select(
        RESOURCE_TABLE.c.pk,
        RESOURCE_TABLE.c.resource_id,
        RESOURCE_TABLE.c.version_id,
        RESOURCE_TABLE.c.origin,
        _CONSENT_INDEX.c.system,
        _CONSENT_INDEX.c.value,
    )
    .join(_CONSENT_INDEX, _CONSENT_INDEX.c.resource_pk == RESOURCE_TABLE.c.pk)
    .join(
        _PATIENT_IDENTIFIERS,
        and_(
            _PATIENT_IDENTIFIERS.c.system == _CONSENT_INDEX.c.system,
            _PATIENT_IDENTIFIERS.c.value == _CONSENT_INDEX.c.value,
        ),
    )
    .where(
        RESOURCE_TABLE.c.resource_type == "Consent",
        RESOURCE_TABLE.c.deleted.is_(False),
        _CONSENT_INDEX.c.resource_type == "Consent",
        _CONSENT_INDEX.c.param == "patient" + IDENTIFIER_MODIFIER,
        ~exists().where(  # per row, by its key: not a scan of every Consent's patient
            INDEX_TABLE.c.resource_pk == RESOURCE_TABLE.c.pk, INDEX_TABLE.c.param == "patient"
        ),
    )
)
"""Consents whose `patient` is a logical reference only (an identifier, no literal
reference), matched to the identifiers (system and value) of one stored Patient."""


def consents_by_identifier(
    session: Session, patient_id: str
) -> dict[str, tuple[int, int, str, bool]]:
    """id -> (pk, version, origin, ambiguous) of every current Consent naming the patient by
    an identifier (system and value) its current Patient carries, and no literal reference
    (R4 logical references).

    An identifier is only as good as who assigned it: a Consent counts for a Patient only
    when its recorder's side holds that Patient (wrote a version of it; this service's own
    side counts as one), and it is ambiguous when its side holds another Patient carrying the
    identifier too. Anyone may create a Patient carrying any MRN: such a Patient must neither
    lend a stranger's refusal to another program's client nor void that program's permit."""
    rows = session.execute(CONSENTS_BY_IDENTIFIER, {"patient": patient_id}).all()
    if not rows:
        return {}
    local = local_authors(session)
    carriers: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    found: dict[str, tuple[int, int, str, bool]] = {}
    for pk, ident, version, origin, system, value in rows:
        if (system, value) not in carriers:
            carriers[(system, value)] = patient_custodians(session, system, value)
        held = _held(carriers[(system, value)], _side(local, origin))
        if patient_id in held:
            found[ident] = (pk, version, origin, len(held) > 1)
    return found


def held_carriers(session: Session, system: str, value: str, recorder: str) -> list[str]:
    """The ids of the current Patients carrying the identifier that the recorder's side holds
    (wrote a version of): the recorder, or this service's own side as a whole."""
    return _held(patient_custodians(session, system, value), holding_side(session, recorder))


def holding_side(session: Session, organization: str) -> frozenset[str]:
    """Whose records count as the organization's own: this service's side as a whole for one
    of its own (`local_authors`), else the organization alone."""
    return _side(local_authors(session), organization)


def _side(local: frozenset[str], organization: str) -> frozenset[str]:
    return local if organization in local else frozenset({organization})


def _held(carriers: dict[str, frozenset[str]], side: frozenset[str]) -> list[str]:
    return sorted(carrier for carrier, custodians in carriers.items() if custodians & side)


def local_authors(session: Session, own: frozenset[str] | None = None) -> frozenset[str]:
    """The organizations this service records consents for itself: the operator, the
    program's own systems (first-party registrations) and the programs its staff work for,
    as long as they are switched on; a change moves the CONSENT_HOLDERS counter. `own` is
    `own_side`, when the caller has read it already."""
    programs = session.execute(
        select(STAFF_TABLE.c.programs).where(STAFF_TABLE.c.enabled.is_(True))
    ).scalars()
    staffed = (f"Organization/{ident}" for listed in programs for ident in listed.split())
    return (own_side(session) if own is None else own) | frozenset(staffed)


def own_side(session: Session) -> frozenset[str]:
    """The organizations whose consents this service holds whatever they name: the operator
    and the program's own systems (first-party registrations)."""
    return frozenset((OPERATOR_ORIGIN, *operating_programs(session)))


def operating_programs(session: Session) -> frozenset[str]:
    """The Organizations of the enabled first-party registrations: the program(s) whose own
    systems this service is."""
    first_party = session.execute(
        select(PARTNER_TABLE.c.organization_id).where(
            PARTNER_TABLE.c.first_party.is_(True), PARTNER_TABLE.c.enabled.is_(True)
        )
    ).scalars()
    return frozenset(f"Organization/{ident}" for ident in first_party)


def contents(session: Session, pks: list[int]) -> dict[int, bytes]:
    """The stored JSON of the given rows."""
    statement = select(RESOURCE_TABLE.c.pk, RESOURCE_TABLE.c.content).where(
        RESOURCE_TABLE.c.pk.in_(pks)
    )
    return {pk: content for pk, content in session.execute(statement).all()}


def current(session: Session, resource_type: str, resource_id: str) -> bytes | None:
    """The current JSON of one resource, or None when it is absent or deleted."""
    statement = select(RESOURCE_TABLE.c.content).where(
        RESOURCE_TABLE.c.resource_type == resource_type,
        RESOURCE_TABLE.c.resource_id == resource_id,
        RESOURCE_TABLE.c.deleted.is_(False),
    )
    content: bytes | None = session.execute(statement).scalar()
    return content


def recorded_versions(
    session: Session, resource_type: str, resource_id: str
) -> list[tuple[str, bytes | None]]:
    """Every version of one resource, newest first, each with who recorded it (its origin);
    a delete's content is None."""
    statement = (
        select(VERSION_TABLE.c.origin, VERSION_TABLE.c.content)
        .where(
            VERSION_TABLE.c.resource_type == resource_type,
            VERSION_TABLE.c.resource_id == resource_id,
        )
        .order_by(VERSION_TABLE.c.version_id.desc())
    )
    return [(origin, content) for origin, content in session.execute(statement).all()]


def referring(
    session: Session, resource_type: str, param: str, target_type: str, target_ids: Sequence[str]
) -> list[bytes]:
    """The current JSON of every resource of a type whose reference parameter names one of
    the targets (e.g. the RelatedPersons whose `patient` is the patient)."""
    found = recorded_referring(session, resource_type, param, target_type, target_ids)
    return [content for content, _origin in found]


def recorded_referring(
    session: Session, resource_type: str, param: str, target_type: str, target_ids: Sequence[str]
) -> list[tuple[bytes, str]]:
    """`referring`, each with who recorded its current version (its origin)."""
    if not target_ids:
        return []
    statement = select(RESOURCE_TABLE.c.content, RESOURCE_TABLE.c.origin).where(
        RESOURCE_TABLE.c.deleted.is_(False),
        RESOURCE_TABLE.c.pk.in_(
            select(INDEX_TABLE.c.resource_pk).where(
                INDEX_TABLE.c.resource_type == resource_type,
                INDEX_TABLE.c.param == param,
                INDEX_TABLE.c.system == target_type,
                INDEX_TABLE.c.value.in_(list(target_ids)),
                INDEX_TABLE.c.norm.is_(None),
            )
        ),
    )
    return [
        (content, origin)
        for content, origin in session.execute(statement).all()
        if content is not None
    ]


def approved_forms(session: Session) -> list[ConsentFormRow]:
    """Every approved consent form, by the key consents name it by."""
    return list(session.exec(select_rows(ConsentFormRow).order_by(col(ConsentFormRow.form))).all())


def approve_form(
    session: Session,
    form: str,
    title: str,
    statements: Sequence[str],
    approved_by: str,
    approved_at: datetime,
) -> ConsentFormRow:
    """Record (or replace) the approval of a form with the statements it contains."""
    row = session.exec(select_rows(ConsentFormRow).where(col(ConsentFormRow.form) == form)).first()
    if row is None:
        row = ConsentFormRow(form=form, approved_by=approved_by, approved_at=approved_at)
    row.title = title
    row.statements = " ".join(statements)
    row.approved_by = approved_by
    row.approved_at = approved_at
    session.add(row)
    markers.note_write(session, markers.CONSENT_FORMS)
    session.flush()
    return row
