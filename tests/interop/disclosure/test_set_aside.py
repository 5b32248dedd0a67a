"""A partner's search sets aside, by recorded columns alone, the Part 2 records of patients
whose directives refuse it everything (issue 13.3: a page costs what may be released, not
every match). Setting aside must change no answer: what the search returns and counts is
exactly what the partner may read one by one, and every record withheld is still logged."""

from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from interop.services.disclosure import patient_of
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.tables import RESOURCE_TABLE, DisclosureLogRow
from tests.builders import care_plan, patient
from tests.conftest import register_partner
from tests.interop.disclosure.conftest import World, acting_as, as_, make

SUD = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}


def mixed_plans(anonymous: TestClient, world: World) -> dict[str, str]:
    """CarePlans of every kind a partner's search meets, by what each is: the consented
    client's, two clients' who never consented, one naming its patient by identifier only,
    an ordinary clinic's plain one and its SUD-labelled one, and partner A's own."""
    detox = acting_as(anonymous, world.detox_partner)
    clinic = acting_as(anonymous, register_partner(anonymous, name="Ordinary Clinic Two"))
    writer_a = register_partner(anonymous, name="Riverside Writer")
    strangers = [
        make(detox, patient(family=f"Noconsent{n}", mrn=f"MRN-N{n}"))["id"] for n in (1, 2)
    ]
    by_identifier = care_plan(world.client_ref)
    by_identifier["subject"] = {"identifier": {"system": "urn:example:mrn", "value": "MRN-P2"}}
    return {
        "consented": world.plan_id,
        "stranger 1": make(detox, care_plan(f"Patient/{strangers[0]}"))["id"],
        "stranger 2": make(detox, care_plan(f"Patient/{strangers[1]}"))["id"],
        "by identifier": make(detox, by_identifier)["id"],
        "ordinary": make(clinic, care_plan(world.ordinary_ref))["id"],
        "labelled": make(clinic, care_plan(world.ordinary_ref, meta={"security": [SUD]}))["id"],
        "own": make(acting_as(anonymous, writer_a), care_plan(f"Patient/{strangers[0]}"))["id"],
    }


def search_ids(anonymous: TestClient, world: World, **params: Any) -> tuple[int, set[str]]:
    response = anonymous.get(
        "/fhir/CarePlan",
        params={"_count": "100", "_total": "accurate", **params},
        headers=as_(anonymous, world.a),
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    found = {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
    return bundle["total"], found


def readable(anonymous: TestClient, world: World, ids: dict[str, str]) -> set[str]:
    """The plans partner A may read one by one."""
    headers = as_(anonymous, world.a)
    return {
        i for i in ids.values() if anonymous.get(f"/fhir/CarePlan/{i}", headers=headers).is_success
    }


def search_denials(settings: Settings, requester: str) -> list[DisclosureLogRow]:
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(DisclosureLogRow)
                .where(col(DisclosureLogRow.requester) == requester)
                .where(col(DisclosureLogRow.interaction) == "search")
                .where(col(DisclosureLogRow.decision) == "deny")
            )
        )
    engine.dispose()
    return rows


def forget_patients(settings: Settings) -> None:
    """The rows as an earlier release stored them: whose record each is not recorded."""
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        connection.execute(update(RESOURCE_TABLE).values(patient=None))
    engine.dispose()


def test_a_search_returns_and_counts_exactly_what_the_partner_may_read(
    anonymous: TestClient, world: World
) -> None:
    ids = mixed_plans(anonymous, world)
    total, found = search_ids(anonymous, world)
    expected = readable(anonymous, world, ids)
    assert found == expected
    assert total == len(expected)
    assert {ids["consented"], ids["ordinary"], ids["own"]} <= found
    assert not {ids["stranger 1"], ids["stranger 2"], ids["by identifier"]} & found


def test_records_set_aside_are_logged_as_one_denial_listing_them(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    ids = mixed_plans(anonymous, world)
    search_ids(anonymous, world)
    denials = search_denials(settings, world.a.organization)
    set_aside = [row for row in denials if row.patient is None and row.rule == "P2"]
    assert len(set_aside) == 1
    listed = str(set_aside[0].resources)
    for kind in ("stranger 1", "stranger 2", "by identifier"):
        assert f"CarePlan/{ids[kind]}" in listed
    assert f"CarePlan/{ids['consented']}" not in listed
    decided = " ".join(str(row.resources) for row in denials if row.patient is not None)
    assert decided.split() == [f"CarePlan/{ids['labelled']}"]  # only its content tells


def test_rows_stored_before_patients_were_recorded_are_decided_by_content(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    ids = mixed_plans(anonymous, world)
    before = search_ids(anonymous, world)
    forget_patients(settings)
    assert search_ids(anonymous, world) == before
    per_patient = [row for row in search_denials(settings, world.a.organization) if row.patient]
    assert any(f"CarePlan/{ids['stranger 1']}" in str(row.resources) for row in per_patient)


def test_a_record_naming_no_storable_patient_is_stored_and_withheld(
    anonymous: TestClient, world: World
) -> None:
    """A subject no record here could be (an id longer than R4's 64 characters) names no
    patient: the write is stored on every database (it overflowed the recorded column on
    PostgreSQL, a 500), and its Part 2 data is released under no consent."""
    detox = acting_as(anonymous, world.detox_partner)
    plan = make(detox, care_plan("Patient/" + "x" * 300))
    _total, found = search_ids(anonymous, world)
    assert plan["id"] not in found
    assert (
        anonymous.get(f"/fhir/CarePlan/{plan['id']}", headers=as_(anonymous, world.a)).status_code
        == 404
    )


def test_the_recorded_patient_is_whose_record_the_gate_reads_it_as(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    """The column `set_aside` reads is `patient_of` of the stored content, for every way a
    record names (or fails to name) its patient."""
    detox = acting_as(anonymous, world.detox_partner)
    subjects: list[dict[str, Any]] = [
        {"reference": world.client_ref},
        {"reference": f"{world.client_ref}/_history/1"},
        {"reference": f"https://elsewhere.example.org/fhir/{world.client_ref}"},
        {"identifier": {"system": "urn:example:mrn", "value": "MRN-P2"}},
        {"reference": "#contained-patient"},
        {"reference": "Group/some-group"},
    ]
    for subject in subjects:
        make(detox, {**care_plan(world.client_ref), "subject": subject})
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(RESOURCE_TABLE.c.content, RESOURCE_TABLE.c.patient).where(
                RESOURCE_TABLE.c.deleted.is_(False)
            )
        ).all()
    engine.dispose()
    assert len(rows) >= len(subjects)
    for content, recorded in rows:
        assert recorded == (patient_of(orjson.loads(content)) or "")
