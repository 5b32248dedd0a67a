"""The leak suite of the gate issue (issue 10, "How it is checked"), property-based.

Over generated worlds (leak_world.py) of programs, Part 2 or not, their clients, records of
the stored types each wrote with its own token, shared referral Tasks and consents, an
observer partner that wrote none of a record and holds no consent for it must learn nothing of
it on any path: every answer is the answer for a record that does not exist (PART2.md P1, P2,
S3), while its own and non-Part 2 records still come through (so that hiding everything
cannot pass), and every decision leaves the disclosure log's chain intact (A1).
"""

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings

from interop.services.staff import Role
from tests.builders import MRN, part2_consent, patient
from tests.conftest import bearer
from tests.interop.cases.test_story import staff
from tests.interop.disclosure.conftest import make
from tests.interop.disclosure.leak_world import (
    FHIR_JSON,
    RECORD_TYPES,
    RecordPlan,
    Stored,
    World,
    WorldPlan,
    as_unknown,
    build,
    fresh_app,
    marker,
    record_body,
    world_plans,
)
from tests.interop.disclosure.test_gate import referral_task

LEAK_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PATIENT_PARAM = {t: "patient" for t in RECORD_TYPES}
PARTNER_SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"


def in_world(plan: WorldPlan, check: Callable[[World], None]) -> None:
    """Builds the world in an app of its own, runs `check`, then A1: the chain verifies."""
    with fresh_app() as anonymous:
        world = build(anonymous, plan)
        event(f"withheld records: {min(len(world.hidden()), 3)}")
        event(f"records that must come through: {min(len(world.seen()), 6)}")
        check(world)
        report = anonymous.app.state.compliance.verify()  # type: ignore[attr-defined]
        assert report.intact, report


def unknown_like(stored: Stored) -> str:
    """An id of the same shape that names nothing."""
    return str(uuid.uuid4())[: len(stored.id)]


def entries(bundle: dict[str, Any], mode: str | None = None) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e
        and e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or e.get("search", {}).get("mode") == mode)
    ]


def assert_tells_nothing_of_hidden(world: World, text: str, where: str) -> None:
    """No withheld record's content anywhere, and no withheld record among the resources,
    full URLs or locations of the answer (visible records may still reference its id, and
    paging links and outcomes may echo what the request itself named)."""
    listed = set(_identities(orjson.loads(text))) if text.startswith("{") else set()
    for hidden in world.hidden():
        assert hidden.marker not in text, f"{where} shows {hidden.reference}'s content"
        assert hidden.reference not in listed, f"{where} lists {hidden.reference}"


def _identities(value: Any) -> list[str]:
    """Every resource ("Type/id") an answer carries, at any depth, by body, fullUrl or
    response location."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            found.append(f"{value['resourceType']}/{value['id']}")
        for key in ("fullUrl", "location"):
            if isinstance(value.get(key), str):
                parts = value[key].split("/_history")[0].split("/")
                found.append("/".join(parts[-2:]))
        for item in value.values():
            found += _identities(item)
    elif isinstance(value, list):
        for item in value:
            found += _identities(item)
    return found


def without_volatile(bundle: dict[str, Any], *values: str) -> str:
    """A Bundle with its fresh id and timestamp dropped and `values` replaced: what it tells."""
    kept = {k: v for k, v in bundle.items() if k != "id"}
    meta = {k: v for k, v in kept.get("meta", {}).items() if k != "lastUpdated"}
    kept["meta"] = meta
    text = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()
    for value in values:
        text = text.replace(value, "<value>")
    return text


@LEAK_SETTINGS
@given(world_plans())
def test_reads_of_withheld_records_answer_as_for_unknown_ids(plan: WorldPlan) -> None:
    """P2, S3: read, vread and instance history of a withheld record give the status, body,
    ETag and Location of an unknown id; records the observer may see (its own, non-Part 2:
    P1) come through."""

    def check(world: World) -> None:
        observer = world.as_observer
        for stored in world.records:
            base = f"/fhir/{stored.resource_type}"
            other = unknown_like(stored)
            if stored.sight.name == "SEE":
                answer = observer.get(f"{base}/{stored.id}")
                assert answer.status_code == 200, (stored, answer.text)
                assert stored.marker in answer.text
                continue
            if stored.sight.name != "HIDE":
                continue
            for suffix in ("", "/_history/1", "/_history/2", "/_history"):
                hidden = observer.get(f"{base}/{stored.id}{suffix}")
                unknown = observer.get(f"{base}/{other}{suffix}")
                assert as_unknown(hidden, stored.id, other) == as_unknown(
                    unknown, stored.id, other
                ), (stored, suffix)
                assert stored.marker not in hidden.text

    in_world(plan, check)


@LEAK_SETTINGS
@given(world_plans())
def test_searches_neither_list_nor_count_withheld_records(plan: WorldPlan) -> None:
    """S3: no entry, include, revinclude or total reveals a withheld record, for every search
    parameter the records are found by; a search by a withheld record's identifier answers as
    one by an identifier nobody uses; what the observer may see is listed and counted."""

    def check(world: World) -> None:
        observer = world.as_observer
        types = {"Patient", *RECORD_TYPES}
        for resource_type in sorted(types):
            searches: list[dict[str, str]] = [{}, {"_summary": "count"}]
            if resource_type == "Patient":
                searches += [{"_revinclude": f"{t}:patient"} for t in RECORD_TYPES]
                searches += [{"organization": p.organization} for p in world.programs]
            else:
                searches += [{PATIENT_PARAM[resource_type]: client} for client in world.clients] + [
                    {"patient": client, "_include": f"{resource_type}:patient"}
                    for client in world.clients
                ]
            for params in searches:
                answer = observer.get(f"/fhir/{resource_type}", params={**params, "_count": "100"})
                assert answer.status_code == 200, (params, answer.text)
                bundle = answer.json()
                where = f"{resource_type}?{params}"
                assert_tells_nothing_of_hidden(world, answer.text, where)
                matched = entries(bundle, "match")
                assert bundle["total"] == (0 if params.get("_summary") else len(matched)) or (
                    params.get("_summary")
                    and bundle["total"] == _unsummarised(world, resource_type)
                ), where
                if not params or list(params) == ["_revinclude"]:
                    mine = {s.reference for s in world.seen() if s.resource_type == resource_type}
                    assert mine <= set(matched), (where, mine - set(matched))
        for program in world.programs:
            answer = observer.get(
                "/fhir/Organization",
                params={
                    "_id": program.organization.removeprefix("Organization/"),
                    "_revinclude": "Patient:organization",
                },
            )
            assert_tells_nothing_of_hidden(world, answer.text, "Organization?_revinclude")
        for stored in world.records:
            if stored.sight.name != "HIDE":
                continue
            fresh = marker()
            by_hidden = observer.get(
                f"/fhir/{stored.resource_type}", params={"identifier": stored.marker}
            )
            by_unknown = observer.get(f"/fhir/{stored.resource_type}", params={"identifier": fresh})
            assert by_hidden.status_code == by_unknown.status_code == 200
            assert without_volatile(by_hidden.json(), stored.marker, fresh) == without_volatile(
                by_unknown.json(), stored.marker, fresh
            ), stored
            by_id = observer.get(f"/fhir/{stored.resource_type}", params={"_id": stored.id})
            assert by_id.json()["total"] == 0, stored
            assert stored.marker not in by_id.text

    in_world(plan, check)


def _unsummarised(world: World, resource_type: str) -> int:
    bundle = world.as_observer.get(f"/fhir/{resource_type}", params={"_count": "100"}).json()
    return len(entries(bundle, "match"))


@LEAK_SETTINGS
@given(world_plans())
def test_history_at_every_level_shows_no_withheld_version(plan: WorldPlan) -> None:
    """S3: type and system history list no version of a withheld record and count none;
    versions the observer may see are there."""

    def check(world: World) -> None:
        observer = world.as_observer
        system = observer.get("/fhir/_history", params={"_count": "100"})
        assert system.status_code == 200
        assert_tells_nothing_of_hidden(world, system.text, "/_history")
        listed = entries(system.json())
        assert system.json()["total"] == len(listed)
        for stored in world.seen():
            assert stored.reference in listed, stored
        for resource_type in sorted({"Patient", *RECORD_TYPES}):
            answer = observer.get(f"/fhir/{resource_type}/_history", params={"_count": "100"})
            assert answer.status_code == 200
            assert_tells_nothing_of_hidden(world, answer.text, f"{resource_type}/_history")
            assert answer.json()["total"] == len(entries(answer.json()))

    in_world(plan, check)


@LEAK_SETTINGS
@given(world_plans())
def test_batch_get_entries_answer_as_for_unknown_ids(plan: WorldPlan) -> None:
    """Bundle batch and transaction GET entries pass the same door: a withheld record's entry
    is an unknown id's entry, and searches inside count nothing withheld (P2, S3)."""

    def check(world: World) -> None:
        hidden = world.hidden()
        if not hidden:
            return
        requests: list[dict[str, Any]] = []
        for stored in hidden:
            other = unknown_like(stored)
            requests += [
                {"request": {"method": "GET", "url": f"{stored.reference}"}},
                {"request": {"method": "GET", "url": f"{stored.resource_type}/{other}"}},
                {"request": {"method": "GET", "url": f"{stored.reference}/_history/1"}},
                {"request": {"method": "GET", "url": f"{stored.resource_type}/{other}/_history/1"}},
            ]
        for client in world.clients:
            requests.append({"request": {"method": "GET", "url": f"Goal?patient={client}"}})
        for kind in ("batch", "transaction"):
            answer = world.as_observer.post(
                "/fhir",
                json={"resourceType": "Bundle", "type": kind, "entry": requests},
                headers=FHIR_JSON,
            )
            assert_tells_nothing_of_hidden(world, answer.text, f"a {kind}")
            if kind == "transaction" and answer.status_code != 200:
                continue  # a failed transaction is one OperationOutcome, checked above
            assert answer.status_code == 200, answer.text
            results = answer.json()["entry"]
            for number, stored in enumerate(hidden):
                other = unknown_like(stored)
                for offset in (0, 2):
                    seen = results[4 * number + offset]["response"]
                    none = results[4 * number + offset + 1]["response"]
                    shown = orjson.dumps(seen).decode().replace(stored.id, "<id>")
                    absent = orjson.dumps(none).decode()
                    for candidate in (other, unknown_like(stored)):
                        absent = absent.replace(candidate, "<id>")
                    assert seen["status"] == none["status"], (kind, stored)
                    assert set(seen) == set(none), (kind, stored, shown, absent)
            for entry in results[4 * len(hidden) :]:
                searched = entry.get("resource", {})
                assert searched.get("total") == len(entries(searched, "match")), kind

    in_world(plan, check)


@LEAK_SETTINGS
@given(world_plans())
def test_writes_to_withheld_records_answer_as_for_unknown_ids_and_change_nothing(
    plan: WorldPlan,
) -> None:
    """ARCHITECTURE.md rule 4 (one door for reads and writes), P2: update and delete of a
    withheld record answer as for an unknown id (404, same OperationOutcome, no ETag or
    Location), a partner's PUT at a new id too, and the record is left as it was."""

    def check(world: World) -> None:
        observer = world.as_observer
        for stored in world.hidden():
            owner = world.writer_of(stored)
            before = owner.get(f"/fhir/{stored.reference}")
            assert before.status_code == 200, before.text
            body = {k: v for k, v in before.json().items() if k not in ("meta", "text", "status")}
            body = {**body, **_changed_status(stored.resource_type)}
            other = unknown_like(stored)
            hidden = observer.put(f"/fhir/{stored.reference}", json=body, headers=FHIR_JSON)
            unknown = observer.put(
                f"/fhir/{stored.resource_type}/{other}",
                json={**body, "id": other},
                headers=FHIR_JSON,
            )
            assert as_unknown(hidden, stored.id, other) == as_unknown(unknown, stored.id, other), (
                stored
            )
            assert hidden.status_code == 404, (stored, hidden.text)
            gone = observer.delete(f"/fhir/{stored.reference}")
            never = observer.delete(f"/fhir/{stored.resource_type}/{other}")
            assert as_unknown(gone, stored.id, other) == as_unknown(never, stored.id, other), stored
            for tag in ('W/"1"', "*"):  # If-Match: a withheld version is none to match either
                matched = {"If-Match": tag}
                gone = observer.delete(f"/fhir/{stored.reference}", headers=matched)
                never = observer.delete(f"/fhir/{stored.resource_type}/{other}", headers=matched)
                assert gone.status_code == 412, (stored, gone.text)
                assert as_unknown(gone, stored.id, other) == as_unknown(never, stored.id, other)
            after = owner.get(f"/fhir/{stored.reference}")
            assert after.status_code == 200, (stored, after.text)
            assert after.json()["meta"]["versionId"] == before.json()["meta"]["versionId"]

    in_world(plan, check)


@LEAK_SETTINGS
@given(world_plans())
def test_deleted_withheld_records_stay_unknown(plan: WorldPlan) -> None:
    """P2, S3: once its program deletes a withheld record, the observer still gets an unknown
    id's answers (404, never 410 Gone) on read, vread of every version and instance history,
    and type history lists none of its versions."""

    def check(world: World) -> None:
        observer = world.as_observer
        deleted = []
        for stored in world.hidden():
            if stored.resource_type == "Task":
                continue  # a referral's Task is marked entered-in-error, not deleted
            answer = world.harness.delete(f"/fhir/{stored.reference}")
            assert answer.status_code == 204, answer.text
            deleted.append(stored)
        for stored in deleted:
            base, other = f"/fhir/{stored.resource_type}", unknown_like(stored)
            for suffix in ("", "/_history/1", "/_history/2", "/_history"):
                hidden = observer.get(f"{base}/{stored.id}{suffix}")
                unknown = observer.get(f"{base}/{other}{suffix}")
                assert as_unknown(hidden, stored.id, other) == as_unknown(
                    unknown, stored.id, other
                ), (stored, suffix, hidden.status_code)
            again = observer.delete(f"{base}/{stored.id}")
            never = observer.delete(f"{base}/{other}")
            assert as_unknown(again, stored.id, other) == as_unknown(never, stored.id, other)
            listed = observer.get(f"{base}/_history", params={"_count": "100"})
            assert stored.reference not in entries(listed.json()), stored
            assert_tells_nothing_of_hidden(world, listed.text, f"{base}/_history")

    in_world(plan, check)


def _changed_status(resource_type: str) -> dict[str, Any]:
    """A change any writer may make: a status the type allows."""
    return {
        "CarePlan": {"status": "on-hold"},
        "Task": {"status": "in-progress"},
        "ServiceRequest": {"status": "on-hold"},
        "EpisodeOfCare": {"status": "onhold"},
        "Goal": {},
        "Condition": {},
        "Patient": {},
    }.get(resource_type, {})


@LEAK_SETTINGS
@given(world_plans())
def test_conditional_writes_never_match_withheld_records(plan: WorldPlan) -> None:
    """Conditional create (If-None-Exist) and conditional update (PUT Type?criteria) see only
    what the writer may see: criteria naming a withheld record answer exactly as criteria
    naming nothing (a new record of the writer's own, 201 with its Location), and the
    withheld record is unchanged (P2, S3)."""

    def check(world: World) -> None:
        observer = world.as_observer
        for stored in world.hidden():
            if stored.resource_type != "Patient":
                continue
            owner = world.writer_of(stored)
            version = owner.get(f"/fhir/{stored.reference}").json()["meta"]["versionId"]
            fresh = marker()
            answers = []
            for value in (stored.marker, fresh):
                body = patient(family="Observerside", mrn=value)
                created = observer.post(
                    "/fhir/Patient",
                    json=body,
                    headers={**FHIR_JSON, "If-None-Exist": f"identifier={value}"},
                )
                updated = observer.put(
                    "/fhir/Patient", params={"identifier": value}, json=body, headers=FHIR_JSON
                )
                answers.append((created, updated, value))
            for (hidden_create, hidden_update, value), (unknown_create, unknown_update, _) in [
                (answers[0], answers[1])
            ]:
                assert hidden_create.status_code == unknown_create.status_code == 201, stored
                assert hidden_update.status_code == unknown_update.status_code, stored
                for hidden, unknown in (
                    (hidden_create, unknown_create),
                    (hidden_update, unknown_update),
                ):
                    assert _write_shape(hidden, value) == _write_shape(unknown, fresh), stored
                    assert stored.id not in hidden.headers.get("location", "")
                    assert stored.marker not in hidden.text.replace(f'"value":"{value}"', "")
            after = owner.get(f"/fhir/{stored.reference}").json()
            assert after["meta"]["versionId"] == version
            assert after["name"][0]["family"] == stored.marker

    in_world(plan, check)


def _write_shape(response: Any, value: str) -> tuple[int, str, bool, bool]:
    """What a write's answer tells beyond the new record's own id and time."""
    text = response.text.replace(value, "<value>")
    try:
        body = response.json()
    except ValueError:
        return response.status_code, text, False, False
    if isinstance(body, dict) and body.get("resourceType") == "Patient":
        body = {k: v for k, v in body.items() if k not in ("id", "meta")}
        text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode().replace(value, "<value>")
    return (
        response.status_code,
        text,
        bool(response.headers.get("etag")),
        bool(response.headers.get("location")),
    )


def _without_local_subject(body: dict[str, Any], client: str, variant: str) -> dict[str, Any]:
    """The record naming its client other than by a local literal reference."""
    element = "for" if body["resourceType"] == "Task" else "subject"
    if body["resourceType"] == "Consent":
        element = "patient"
    kept = {k: v for k, v in body.items() if k != element}
    if variant == "identifier":
        kept[element] = {
            "identifier": {"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": "1"}
        }
    elif variant == "display":
        kept[element] = {"display": "Alex Partwo"}
    elif variant == "contained":
        kept["contained"] = [{"resourceType": "Patient", "id": "p", "name": [{"family": "Inner"}]}]
        kept[element] = {"reference": "#p"}
    elif variant == "group":
        kept[element] = {"reference": "Group/g1"}
    elif variant == "focus":
        kept["focus"] = {"reference": client}
    if body["resourceType"] == "Consent" and variant != "absent":
        kept["performer"] = [{"display": "Alex Partwo"}]
    return kept


PATIENTLESS = [
    ("Goal", "identifier", False),
    ("Goal", "display", False),
    ("Goal", "contained", False),
    ("Condition", "group", True),
    ("Task", "absent", False),
    ("Task", "focus", False),
    ("Consent", "absent", False),
]


@pytest.mark.parametrize(("resource_type", "variant", "labelled"), PATIENTLESS)
def test_a_part2_programs_record_without_a_local_patient_reference_is_still_part2(
    anonymous: TestClient, resource_type: str, variant: str, labelled: bool
) -> None:
    """P1: a record a Part 2 program wrote is Part 2 data "whatever its elements say", and so
    is one labelled SUD; naming the client by identifier, display, a contained Patient or not
    at all (all valid R4) must not take it out of the gate: an observer without consent reads,
    searches and sees history of it as of an unknown id (P2, S3)."""
    world = build(anonymous, WorldPlan((True,), False, (), (), frozenset()))
    organization, client = world.programs[0].organization, world.clients[0]
    secret = marker()
    if resource_type == "Consent":
        body = part2_consent(client, organization, world.programs[0].organization)
        body["sourceAttachment"]["title"] = secret
    else:
        body = record_body(resource_type, client, organization, secret, labelled)
    created = make(world.writers[0], _without_local_subject(body, client, variant))
    record = Stored(f"{resource_type}/{created['id']}", secret, (organization,), 0, labelled)
    other = unknown_like(record)
    observer = world.as_observer
    hidden = observer.get(f"/fhir/{record.reference}")
    unknown = observer.get(f"/fhir/{resource_type}/{other}")
    assert as_unknown(hidden, record.id, other) == as_unknown(unknown, record.id, other), (
        f"{record.reference} ({variant}) answers {hidden.status_code} to an observer"
    )
    for path in (f"/fhir/{resource_type}", f"/fhir/{resource_type}/_history", "/fhir/_history"):
        assert secret not in observer.get(path, params={"_count": "100"}).text, path
    assert anonymous.app.state.compliance.verify().intact  # type: ignore[attr-defined]


@LEAK_SETTINGS
@given(world_plans())
def test_what_a_program_writes_into_the_observers_referral_is_its_own_record(
    plan: WorldPlan,
) -> None:
    """P1 on each version: the observer's referral Task, once a Part 2 program (its owner)
    accepts it with a note, carries the program's record; the observer without consent never
    sees that version's content or version on any path (read, vread, history at every level,
    search), while a non-Part 2 owner's answer comes through."""

    def check(world: World) -> None:
        if world.plan.observer_part2:
            return  # its referral would itself be Part 2 data, needing the client's consent
        observer = world.as_observer
        person = make(observer, patient(family="Referredout", mrn=marker()))
        for index, flag in enumerate(world.plan.part2):
            writer = world.writers[index]
            body = referral_task(
                f"Patient/{person['id']}",
                world.observer.organization,
                world.programs[index].organization,
            )
            sent = make(observer, body)
            received = writer.get(f"/fhir/Task/{sent['id']}")
            assert received.status_code == 200, received.text
            note = marker()
            accepted = {k: v for k, v in received.json().items() if k != "meta"}
            answer = writer.put(
                f"/fhir/Task/{sent['id']}",
                json={**accepted, "status": "accepted", "note": [{"text": note}]},
                headers=FHIR_JSON,
            )
            assert answer.status_code == 200, answer.text
            paths = [
                f"/fhir/Task/{sent['id']}",
                f"/fhir/Task/{sent['id']}/_history/2",
                f"/fhir/Task/{sent['id']}/_history",
                "/fhir/Task/_history",
                "/fhir/_history",
                "/fhir/Task",
                f"/fhir/Task?patient=Patient/{person['id']}",
                f"/fhir/Task?_id={sent['id']}&_summary=count",
            ]
            answers = {path: observer.get(path) for path in paths}
            if not flag:
                assert note in answers[f"/fhir/Task/{sent['id']}"].text
                continue
            for path, got in answers.items():
                assert note not in got.text, path
                if got.status_code == 200 and got.json().get("resourceType") == "Bundle":
                    bundle = got.json()
                    versions = [
                        e["resource"]["meta"]["versionId"]
                        for e in bundle.get("entry", [])
                        if e.get("resource", {}).get("id") == sent["id"]
                    ]
                    assert "2" not in versions, path
                    if "_summary=count" not in path:
                        assert bundle["total"] == len(entries(bundle)), path
            version = answers[f"/fhir/Task/{sent['id']}/_history/2"]
            unknown = observer.get(f"/fhir/Task/{sent['id']}/_history/3")
            assert (version.status_code, dict(version.headers)) == (
                unknown.status_code,
                {**dict(unknown.headers), "content-length": version.headers["content-length"]},
            )
            assert version.text.replace("version '2'", "version 'N'") == unknown.text.replace(
                "version '3'", "version 'N'"
            )

    in_world(plan, check)


CASE_KINDS = {
    "Patient": "clients",
    "CarePlan": "care-plans",
    "Goal": "goals",
    "Condition": "barriers",
    "Task": "actions",
    "ServiceRequest": "referrals",
    "EpisodeOfCare": "episodes",
}


def _every_type_by_a_part2_program() -> WorldPlan:
    """A Part 2 program and an ordinary clinic, the program's client with a record of every
    stored type, and no consent for anyone."""
    records = tuple(RecordPlan(0, t, 0, False) for t in RECORD_TYPES)
    return WorldPlan((True, False), False, records, (), frozenset())


@pytest.mark.xfail(
    strict=True,
    reason="residual oracle, staff only: the case API creates records with the case model's "
    "ids (PUT at a free id answers 200), so a PUT at an id a withheld record holds cannot answer "
    "the same without overwriting it; closing it needs server-assigned or per-program ids for "
    "case-API creates (see the closing note)",
)
def test_the_case_api_answers_for_withheld_records_as_for_unknown_ids(
    anonymous: TestClient,
) -> None:
    """P2, S3 through the case API: a case manager of a program without consent reads, lists
    and writes another Part 2 program's records exactly as records that do not exist (status
    and problem details; a PUT at a withheld id must not answer differently from a PUT at a
    free id, or ids become an oracle for who is a program's client, §2.13(c))."""
    world = build(anonymous, _every_type_by_a_part2_program())
    program = world.observer.organization.removeprefix("Organization/")
    outsider, csrf = staff(anonymous, "olive.outsider", Role.CASE_MANAGER, (program,))
    administrator, _ = staff(anonymous, "ada.admin", Role.ADMINISTRATOR)
    for stored in world.hidden():
        kind = CASE_KINDS[stored.resource_type]
        other = unknown_like(stored)
        hidden = outsider.get(f"/cases/{kind}/{stored.id}")
        unknown = outsider.get(f"/cases/{kind}/{other}")
        assert as_unknown(hidden, stored.id, other) == as_unknown(unknown, stored.id, other), kind
        assert hidden.status_code == 404, (kind, hidden.text)
    client_id = world.clients[0].removeprefix("Patient/")
    fresh_client = str(uuid.uuid4())
    for kind in sorted(set(CASE_KINDS.values()) - {"clients"}):
        listed = outsider.get(f"/cases/{kind}", params={"client": client_id})
        nobody = outsider.get(f"/cases/{kind}", params={"client": fresh_client})
        assert (listed.status_code, listed.json()) == (nobody.status_code, nobody.json()), kind
    as_read = administrator.get(f"/cases/clients/{client_id}")
    assert as_read.status_code == 200, as_read.text
    value = as_read.json()["value"]
    taken = outsider.put(f"/cases/clients/{client_id}", json=value, headers=csrf)
    free = outsider.put(
        f"/cases/clients/{fresh_client}", json={**value, "id": fresh_client}, headers=csrf
    )
    assert taken.status_code == free.status_code, (
        f"PUT /cases/clients/<withheld id> answers {taken.status_code}, "
        f"PUT at a free id answers {free.status_code}"
    )
    kept = world.writers[0].get(f"/fhir/{world.clients[0]}").json()
    assert kept["meta"]["versionId"] == "1"
    assert anonymous.app.state.compliance.verify().intact  # type: ignore[attr-defined]


def test_a_consent_consult_tells_an_unrelated_caller_nothing_of_a_withheld_client(
    anonymous: TestClient,
) -> None:
    """P2, S3 on the CDS service: a partner with no part in a Part 2 program's client asking
    about that client (by the MRN the program registered) gets the answer it gets for a
    person nobody registered, whatever consents the program holds for others."""
    world = build(anonymous, WorldPlan((True, False), False, (), (), frozenset()))
    hidden = next(s for s in world.hidden() if s.resource_type == "Patient")
    recipient = world.programs[1]
    make(
        world.writers[0],
        part2_consent(world.clients[0], world.programs[0].organization, recipient.organization),
    )
    caller = {"Authorization": bearer(anonymous, world.observer, scope="system/Consent.rs")}
    recipient_name = world.as_observer.get(f"/fhir/{recipient.organization}").json()["name"]

    def consult(mrn: str) -> tuple[int, Any]:
        body = {
            "hook": "patient-consent-consult",
            "hookInstance": "0d3f4c59-8a51-4f8e-9b0e-6c2f1f6a7e10",
            "context": {
                "patientId": [{"system": MRN, "value": mrn}],
                "actor": [{"system": PARTNER_SYSTEM, "value": recipient_name}],
                "purposeOfUse": ["TREAT"],
            },
        }
        answer = anonymous.post("/cds-services/patient-consent-consult", json=body, headers=caller)
        return answer.status_code, orjson.loads(answer.text.replace(mrn, "<mrn>"))

    fresh = marker()
    assert consult(hidden.marker) == consult(fresh), (
        "the consult reveals the withheld client and the program's consent"
    )
    assert anonymous.app.state.compliance.verify().intact  # type: ignore[attr-defined]
