"""Three organizations, each its own installation of this service (issue 12, item 3): a detox
unit A and a residential program B, both Part 2 programs, and a primary care clinic C, each
with its own database and processes (`interop serve`, `mllp`, `sync dispatch`, `sync poll`),
registered at each other with the CLI as the README's two-instance section says.

One synthetic client, Robin Quill, goes C -> A over HL7 v2 (REF^I12, answered RRI^I12 once she
consents), A -> B over FHIR (declined at capacity, then re-referred, accepted, admitted and
completed, each move of B's reaching A through B's Subscription within a second), and B -> A's
intensive outpatient program over FHIR, cancelled by the handshake of REFERRALS.md, and A
refers her back to C with a C-CDA Referral Note posted to C's `/inbound/ccda`. Part 2 data
leaves only with her consent. Every assertion reads a side's FHIR API with a real token.

Then fault rounds between A and B (a fault-injecting proxy, SIGKILLed receiver and dispatcher,
a consent revoked after queueing) and, with TEST_POSTGRES_URL, two dispatchers on PostgreSQL:
after each, every referral is at B exactly once and A's delivery states say so.
"""

import os
import random
import re
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from interop.store.fhirdates import parse_range
from mappings import model as m
from mappings import task as task_mapping
from mappings.terminology import TASK_CODE
from tests.e2e.fault_proxy import FaultProxy, proxying
from tests.e2e.instances import (
    Instance,
    client_record,
    connect,
    consent,
    eventually,
    in_parallel,
    postgres_database,
    refer,
    set_up,
    subscribe,
    wait_started,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    # One story, told in order: every test of this module runs on one xdist worker.
    pytest.mark.xdist_group("three-instances"),
]


@dataclass
class Story:
    a: Instance
    b: Instance
    c: Instance
    notes: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    folder = tmp_path_factory.mktemp("three")
    made = [
        Instance(key, program, part2, folder / key, f"sqlite:///{folder / key}/{key}.sqlite3")
        for key, program, part2 in (
            ("a", "Harbor Detox", True),
            ("b", "Riverside Residential", True),
            ("c", "Northside Primary Care", False),
        )
    ]
    a, b, c = made
    try:
        set_up(made)
        channels = {
            "a": [(b, "fhir"), (c, "hl7v2-mllp")],
            "b": [(a, "fhir")],
            "c": [(a, "hl7v2-mllp")],
        }
        roles = {
            "a": ("mllp", "dispatch", "poll"),
            "b": ("dispatch", "poll"),
            "c": ("mllp", "dispatch"),
        }

        def wire(at: Instance) -> None:
            for other, kind in channels[at.key]:
                connect(at, other, kind)
            for role in roles[at.key]:
                at.start(role)

        in_parallel(wire, made)
        # Each FHIR side subscribes at the other to the referrals it sent there.
        in_parallel(lambda pair: subscribe(*pair), [(a, b), (b, a)])
        yield Story(a, b, c)
    finally:
        for instance in made:
            instance.stop()


def one(resources: list[Any]) -> Any:
    assert len(resources) == 1, resources
    return resources[0]


def moved(
    instance: Instance, current: dict[str, Any], status: str, **elements: Any
) -> dict[str, Any]:
    """The instance's EHR moves its Task (as read) to `status`, with `elements`."""
    body = {k: v for k, v in current.items() if k != "meta"}
    return instance.put({**body, "status": status, **elements})


def coded(**task_fields: Any) -> dict[str, Any]:
    """statusReason / businessStatus as the task mapping writes them."""
    sample = m.ReferralTask(
        id=m.Id("x"),
        referral_id=m.Ref("x"),
        client_id=m.Ref("x"),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref("x")),
        status=m.TaskStatus.REQUESTED,
        authored_on=datetime.now(UTC),
        **task_fields,
    )
    written = task_mapping.to_fhir(sample)
    return {k: written[k] for k in ("statusReason", "businessStatus") if k in written}


def copy_at(receiver: Instance, sender: Instance, task_id: str) -> dict[str, Any]:
    """The receiver's copy of the sender's Task, found by the sender's URL as identifier."""
    url = f"{sender.fhir}/Task/{task_id}"
    found: dict[str, Any] = one(receiver.search("Task", identifier=f"urn:ietf:rfc:3986|{url}"))
    return found


def delivery(instance: Instance, resource: str, event: str) -> list[dict[str, Any]]:
    return [d for d in instance.deliveries() if d["resource"] == resource and d["event"] == event]


def finished(instance: Instance, resource: str, event: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        rows = delivery(instance, resource, event)
        return rows[-1] if rows and rows[-1]["state"] not in ("queued", "sending") else None

    row: dict[str, Any] = eventually(done, timeout=30, every=0.3)
    return row


def business_status(instance: Instance, task_id: str) -> str:
    codings = instance.get(f"Task/{task_id}").get("businessStatus", {}).get("coding", [])
    return str(codings[0].get("code")) if codings else ""


def status_of(instance: Instance, task_id: str) -> str:
    return str(instance.get(f"Task/{task_id}")["status"])


def lag_to(instance: Instance, task_id: str, status: str, timeout: float = 10.0) -> float:
    """Seconds until the instance's Task shows `status`."""
    started = time.monotonic()
    eventually(lambda: status_of(instance, task_id) == status, timeout=timeout, every=0.05)
    return time.monotonic() - started


class TestTheClientsJourney:
    def test_primary_care_refers_to_detox_over_hl7v2_and_hears_back_only_with_consent(
        self, story: Story
    ) -> None:
        a, c = story.a, story.c
        c.put(client_record("robin", "Quill", "Robin"))
        refer(c, "pc-1", "robin", c.organizations["a"], "Opioid withdrawal, needs detox")
        sent = finished(c, "Task/pc-1-task", "referral-sent")
        assert sent["state"] == "acknowledged", sent
        at_a = one(a.search("Task", requester=f"Organization/{a.organizations['c']}"))
        assert (at_a["status"], at_a["owner"]["reference"]) == ("requested", a.organization)
        client = at_a["for"]["reference"].removeprefix("Patient/")
        assert a.get(f"Patient/{client}")["name"][0]["family"] == "Quill"
        story.notes.update(client=client, detox_task=at_a["id"])

        moved(a, at_a, "accepted")
        withheld = finished(a, f"Task/{at_a['id']}", "status-returned")
        assert withheld["state"] == "withheld", withheld  # A's answer is Part 2 data
        assert status_of(c, "pc-1-task") == "requested"
        as_c = a.as_partner(c)
        hidden = httpx.get(f"{a.fhir}/Task/{at_a['id']}", headers=as_c)
        assert hidden.status_code == 404, hidden.text

        a.put(consent(a, client, c))
        a.cli("sync", "retry", str(withheld["id"]))
        assert finished(a, f"Task/{at_a['id']}", "status-returned")["state"] == "acknowledged"
        eventually(lambda: status_of(c, "pc-1-task") == "accepted")
        assert httpx.get(f"{a.fhir}/Task/{at_a['id']}", headers=as_c).status_code == 200

    def test_detox_refers_to_residential_declined_at_capacity_heard_within_a_second(
        self, story: Story
    ) -> None:
        a, b = story.a, story.b
        client = story.notes["client"]
        refer(a, "res-1", client, a.organizations["b"], "Residential after withdrawal management")
        held = finished(a, "Task/res-1-task", "task-changed")
        assert held["state"] == "withheld", held  # no consent naming B yet
        assert b.search("Task") == []
        assert b.search("Patient") == []

        a.put(consent(a, client, b))
        a.cli("sync", "retry", str(held["id"]))
        assert finished(a, "Task/res-1-task", "task-changed")["state"] == "acknowledged"
        copy = copy_at(b, a, "res-1-task")
        assert copy["requester"]["reference"] == f"Organization/{b.organizations['a']}"
        assert copy["owner"]["reference"] == b.organization
        assert copy["status"] == "requested"
        local = copy["for"]["reference"].removeprefix("Patient/")
        assert b.get(f"Patient/{local}")["name"][0]["family"] == "Quill"
        # What B writes into its copy is B's Part 2 record: told to A under her consent at B.
        b.put(consent(b, local, a))
        story.notes["client_at_b"] = local

        reason = coded(status_reason=m.StatusReason(m.StatusReasonCode.AT_CAPACITY, "No bed"))
        changed = moved(b, copy, "rejected", **reason)
        lag = lag_to(a, "res-1-task", "rejected")
        ours = a.get("Task/res-1-task")
        assert ours["statusReason"]["text"] == "No bed"
        notified = [
            d
            for d in b.deliveries()
            if d["event"] == "notification" and d["resource"] == f"Task/{copy['id']}"
        ]
        assert notified
        assert all(d["state"] == "acknowledged" for d in notified), notified
        written = parse_range(changed["meta"]["lastUpdated"])[0]
        told = datetime.fromisoformat(notified[-1]["finished_at"])
        assert (told - written).total_seconds() < 1.0, (written, told)
        assert lag < 3.0, lag
        story.notes["decline_lag"] = lag

    def test_re_referred_accepted_admitted_and_completed_the_loop_closes(
        self, story: Story
    ) -> None:
        a, b = story.a, story.b
        refer(a, "res-2", story.notes["client"], a.organizations["b"], "Bed available now")
        assert finished(a, "Task/res-2-task", "task-changed")["state"] == "acknowledged"
        copy = copy_at(b, a, "res-2-task")
        copy = moved(b, copy, "accepted")
        lag_to(a, "res-2-task", "accepted")
        copy = moved(
            b,
            copy,
            "in-progress",
            executionPeriod={"start": "2026-12-01"},
            **coded(business_status=m.BusinessStatus.ADMITTED),
        )
        lag_to(a, "res-2-task", "in-progress")
        summary = {"type": {"text": "discharge summary"}}
        moved(
            b,
            copy,
            "completed",
            executionPeriod={"start": "2026-12-01", "end": "2026-12-29"},
            output=[{**summary, "valueReference": {"reference": "DocumentReference/dc-1"}}],
        )
        lag_to(a, "res-2-task", "completed")
        ours = a.get("Task/res-2-task")
        assert ours["output"][0]["valueReference"]["reference"] == (
            f"{b.fhir}/DocumentReference/dc-1"
        )
        history = a.get("Task/res-2-task/_history")
        statuses = [entry["resource"]["status"] for entry in history["entry"]]
        assert statuses == ["completed", "in-progress", "accepted", "requested"]
        # Nothing B did came back to A as a second referral, nor went to B twice.
        assert len(a.search("Task", owner=f"Organization/{a.organizations['b']}")) == 2
        assert len(b.search("Task", requester=f"Organization/{b.organizations['a']}")) == 2

    def test_residential_refers_to_intensive_outpatient_cancelled_by_the_handshake(
        self, story: Story
    ) -> None:
        a, b = story.a, story.b
        client = story.notes["client_at_b"]
        refer(b, "iop-1", client, b.organizations["a"], "Step down to intensive outpatient")
        assert finished(b, "Task/iop-1-task", "task-changed")["state"] == "acknowledged"
        copy = copy_at(a, b, "iop-1-task")
        assert copy["requester"]["reference"] == f"Organization/{a.organizations['b']}"
        assert copy["owner"]["reference"] == a.organization
        # B's record of the client is a copy of A's: the copy names A's own record, under
        # whose consent (naming B, from the referral to residential) A's answers go back.
        assert copy["for"]["reference"] == f"Patient/{story.notes['client']}"
        assert len(a.search("Patient", family="Quill")) == 1
        copy = moved(a, copy, "accepted")
        lag_to(b, "iop-1-task", "accepted")
        copy = moved(
            a,
            copy,
            "in-progress",
            executionPeriod={"start": "2026-12-30"},
            **coded(business_status=m.BusinessStatus.SCHEDULED),
        )
        lag_to(b, "iop-1-task", "in-progress")

        reason = coded(status_reason=m.StatusReason(m.StatusReasonCode.OUT_OF_AREA, "Moved"))
        ours = b.get("Task/iop-1-task")
        asked = coded(business_status=m.BusinessStatus.CANCELLATION_REQUESTED)
        b.put({**{k: v for k, v in ours.items() if k != "meta"}, **asked})
        eventually(lambda: business_status(a, copy["id"]) == "cancellation-requested")
        moved(a, a.get(f"Task/{copy['id']}"), "cancelled", **reason)
        # B's poller applies A's cancellation as the owner's move, through the workflow check
        # that holds an owner's cancellation of work under way unless the requester asked.
        lag_to(b, "iop-1-task", "cancelled")
        assert b.get("Task/iop-1-task")["statusReason"]["text"] == "Moved"
        history = b.get("Task/iop-1-task/_history")["entry"]
        asked_then = [
            (e["resource"]["status"], e["resource"].get("businessStatus", {}).get("text", ""))
            for e in reversed(history)
        ]
        assert [status for status, _ in asked_then] == [
            "requested",
            "accepted",
            "in-progress",
            "in-progress",
            "cancelled",
        ]

    def test_residential_asks_by_an_abort_task_and_intensive_outpatient_cancels(
        self, story: Story
    ) -> None:
        """Probe 11 M2: the README's other way to ask, a Task with code `abort` focused on the
        referral's Task, crosses to the owner's server and lets it cancel work under way."""
        a, b = story.a, story.b
        client = story.notes["client_at_b"]
        refer(b, "iop-2", client, b.organizations["a"], "Step down, second try")
        assert finished(b, "Task/iop-2-task", "task-changed")["state"] == "acknowledged"
        copy = moved(a, copy_at(a, b, "iop-2-task"), "accepted")
        copy = moved(
            a,
            copy,
            "in-progress",
            executionPeriod={"start": "2027-01-04"},
            **coded(business_status=m.BusinessStatus.ADMITTED),
        )
        lag_to(b, "iop-2-task", "in-progress")
        b.put(
            {
                "resourceType": "Task",
                "id": "iop-2-abort",
                "status": "requested",
                "intent": "order",
                "code": {"coding": [{"system": TASK_CODE, "code": "abort"}]},
                "focus": {"reference": "Task/iop-2-task"},
                "for": {"reference": f"Patient/{client}"},
                "requester": {"reference": b.organization},
                "owner": {"reference": f"Organization/{b.organizations['a']}"},
                "authoredOn": "2027-01-05T09:00:00Z",
            }
        )
        assert finished(b, "Task/iop-2-abort", "task-changed")["state"] == "acknowledged"
        asked = copy_at(a, b, "iop-2-abort")
        assert (asked["focus"], asked["for"]) == (
            {"reference": f"Task/{copy['id']}"},
            {"reference": f"Patient/{story.notes['client']}"},
        )
        reason = coded(status_reason=m.StatusReason(m.StatusReasonCode.OUT_OF_AREA, "Moved"))
        moved(a, a.get(f"Task/{copy['id']}"), "cancelled", **reason)
        lag_to(b, "iop-2-task", "cancelled")

    def test_the_clinic_without_consent_sees_nothing_of_the_residential_program(
        self, story: Story
    ) -> None:
        b, c = story.b, story.c
        as_c = b.as_partner(c, "system/Task.rs system/Patient.r")
        assert b.search("Task", as_c) == []
        client = httpx.get(f"{b.fhir}/Patient/{story.notes['client_at_b']}", headers=as_c)
        assert client.status_code == 404, client.text  # as if unknown
        assert all(d["partner"] != b.registrations["c"] for d in b.deliveries())

    def test_no_delivery_failed_and_each_side_holds_each_referral_once(self, story: Story) -> None:
        for instance in (story.a, story.b, story.c):
            states = {d["state"] for d in instance.deliveries()}
            assert states <= {"acknowledged", "sent", "withheld"}, (instance.key, states)
        from_a = story.b.search(
            "ServiceRequest", requester=f"Organization/{story.b.organizations['a']}"
        )
        assert len(from_a) == 2
        assert (
            len(
                story.a.search(
                    "ServiceRequest", requester=f"Organization/{story.a.organizations['b']}"
                )
            )
            == 2
        )

    def test_detox_refers_back_to_primary_care_with_a_ccda_referral_note(
        self, story: Story
    ) -> None:
        """A's channel to C becomes C's document drop (`POST /inbound/ccda`) for this leg."""
        a, c = story.a, story.c
        a.cli(
            "partners", "set-channel", a.registrations["c"],
            "--channel", "ccda-http", "--channel-address", f"{c.root}/inbound/ccda",
            "--channel-client-id", c.registrations["a"],
            "--channel-token-url", f"{c.root}/auth/token",
        )  # fmt: skip
        try:
            refer(a, "pcp-1", story.notes["client"], a.organizations["c"], "Follow-up care")
            sent = finished(a, "Task/pcp-1-task", "referral-sent")
            assert sent["state"] in ("sent", "acknowledged"), sent
        finally:
            connect(a, c, "hl7v2-mllp")
        at_c = one(c.search("Task", requester=f"Organization/{c.organizations['a']}"))
        assert (at_c["status"], at_c["owner"]["reference"]) == ("requested", c.organization)
        codes = {label["code"] for label in at_c["meta"].get("security", [])}
        assert {"42CFRPart2", "R"} <= codes  # the document's DS4P labels came along
        client = c.get(at_c["for"]["reference"])
        assert client["name"][0]["family"] == "Quill"


# -- fault rounds between the detox unit and the residential program ---------------------------


@pytest.fixture(scope="module")
def proxy(story: Story) -> Iterator[FaultProxy]:
    """A's channel to B goes through a proxy that misbehaves on demand."""
    with proxying(FaultProxy(story.b.root)) as made:
        connect(story.a, story.b, "fhir", address=f"{made.root}/fhir")
        yield made
        connect(story.a, story.b, "fhir")


def batch(story: Story, prefix: str, count: int, client: str | None = None) -> list[str]:
    """`count` new referrals of the client from A to B; their Task ids."""
    a = story.a
    idents = [f"{prefix}-{index}" for index in range(count)]
    for ident in idents:
        refer(a, ident, client or story.notes["client"], a.organizations["b"], "Fault round")
    return [f"{ident}-task" for ident in idents]


def settled(a: Instance, tasks: list[str], timeout: float = 60.0) -> dict[str, str]:
    """Once every Task's latest delivery to B is finished: Task id -> its transport state."""

    def states() -> dict[str, str] | None:
        latest: dict[str, str] = {}
        for row in a.deliveries():
            name = row["resource"].removeprefix("Task/")
            if row["channel"] == "fhir" and name in tasks:
                latest[name] = row["state"]
        done = len(latest) == len(tasks)
        return (
            latest
            if done and all(s not in ("queued", "sending") for s in latest.values())
            else None
        )

    found: dict[str, str] = eventually(states, timeout=timeout, every=0.5)
    return found


def copies_at_b(story: Story) -> dict[str, int]:
    """How many copies B holds of each of A's Tasks, by A's URL."""
    counted: dict[str, int] = {}
    prefix = f"{story.a.fhir}/Task/"
    for copy in story.b.search("Task", requester=f"Organization/{story.b.organizations['a']}"):
        for identifier in copy.get("identifier", []):
            if identifier.get("value", "").startswith(prefix):
                name = identifier["value"].removeprefix(prefix)
                counted[name] = counted.get(name, 0) + 1
    return counted


def assert_delivered_once(story: Story, tasks: list[str], states: dict[str, str]) -> None:
    """Every referral at B exactly once, and A's delivery states say so."""
    held = copies_at_b(story)
    assert {task: states[task] for task in tasks} == dict.fromkeys(tasks, "acknowledged")
    assert {task: held.get(task, 0) for task in tasks} == dict.fromkeys(tasks, 1)


@pytest.mark.usefixtures("proxy")
class TestFaultRounds:
    def test_errors_drops_late_answers_and_garbage_between_the_instances(
        self, story: Story, proxy: FaultProxy
    ) -> None:
        proxy.inject("500", "drop", "late", "garbage", "500", "drop", "garbage")
        tasks = batch(story, "proxy", 6)
        states = settled(story.a, tasks)
        assert proxy.pending == deque()  # every fault was met
        assert_delivered_once(story, tasks, states)

    def test_the_receiver_killed_mid_stream_and_restarted(self, story: Story) -> None:
        a, b = story.a, story.b
        tasks = batch(story, "kill-b", 12)
        eventually(lambda: any(t in copies_at_b(story) for t in tasks), timeout=30)
        b.kill("serve")  # SIGKILL, mid-stream
        time.sleep(0.5)
        b.start("serve")
        assert_delivered_once(story, tasks, settled(a, tasks))

    def test_the_dispatcher_killed_at_random_moments(self, story: Story) -> None:
        a = story.a
        a.kill("dispatch")
        tasks = batch(story, "kill-dispatcher", 12)
        chance = random.Random(12)  # noqa: S311  (moments to kill at, not a secret)
        for _ in range(3):
            a.start("dispatch")
            time.sleep(chance.uniform(0.3, 1.5))
            a.kill("dispatch")  # SIGKILL: its claimed rows wait out their lease
        a.start("dispatch")
        assert_delivered_once(story, tasks, settled(a, tasks, timeout=90))

    def test_a_consent_revoked_after_queueing_sends_nothing(self, story: Story) -> None:
        a = story.a
        a.kill("dispatch", signal.SIGTERM)
        a.put(client_record("casey", "Testperson", "Casey"))
        given = a.put(consent(a, "casey", story.b))
        [task] = batch(story, "revoked", 1, client="casey")
        a.put({**{k: v for k, v in given.items() if k != "meta"}, "status": "inactive"})
        a.start("dispatch")
        assert settled(a, [task]) == {task: "withheld"}
        assert task not in copies_at_b(story)
        assert [
            p for p in story.b.search("Patient") if p["name"][0]["family"] == "Testperson"
        ] == []


@pytest.fixture(scope="module")
def on_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """A and B again, each on its own PostgreSQL database, A with two dispatchers."""
    server = os.environ.get("TEST_POSTGRES_URL")
    if not server:
        pytest.skip("TEST_POSTGRES_URL is not set: the two-dispatcher round needs PostgreSQL")
    folder = tmp_path_factory.mktemp("postgres")
    made = [
        Instance(key, program, True, folder / key, postgres_database(server, f"e2e_three_{key}"))
        for key, program in (("a", "Harbor Detox"), ("b", "Riverside Residential"))
    ]
    a, b = made
    try:
        set_up(made)
        connect(a, b, "fhir")
        a.put(client_record("robin", "Quill", "Robin"))
        a.put(consent(a, "robin", b))
        yield Story(a, b, Instance("c", "unused", False, folder / "c", ""), {"client": "robin"})
    finally:
        for instance in made:
            instance.stop()


def test_two_dispatchers_on_postgresql_deliver_each_referral_once(on_postgres: Story) -> None:
    a = on_postgres.a
    for role in ("dispatch", "dispatch-2"):
        a.start(role)
        wait_started(a, role)
    tasks = batch(on_postgres, "pg", 30)
    states = settled(a, tasks, timeout=90)
    assert_delivered_once(on_postgres, tasks, states)
    # No row was claimed by both: each was acknowledged once, by one of them (a slow machine
    # may time an attempt out and try again, which the receiver deduplicates), and neither
    # lost a lease to the other.
    logs = {role: a.log(role).read_text() for role in ("dispatch", "dispatch-2")}
    acknowledged = [
        int(found)
        for text in logs.values()
        for found in re.findall(r"delivery id=(\d+) .*event=task-changed state=acknowledged", text)
    ]
    assert len(acknowledged) == len(set(acknowledged)) == len(tasks)
    assert all("state=acknowledged" in text for text in logs.values())
    assert not any("lease lost" in text for text in logs.values())
