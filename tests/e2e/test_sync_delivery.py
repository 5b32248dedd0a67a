"""The sync outbox delivered to real partner servers on loopback (REFERRALS.md, "How partners
learn of changes"; ARCHITECTURE.md rule 5): FHIR, C-CDA over HTTP and into a directory, HL7 v2
over MLLP; partners that are down, slow or wrong; Part 2 decided when sending."""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from adapters.ccda import read_document
from adapters.ccda.templates import DocumentKind
from adapters.hl7v2 import read_message
from adapters.hl7v2.errors import AckCode
from adapters.hl7v2.messages import EntityIdentifier, HierarchicDesignator, PersonName
from adapters.hl7v2.messages import Identifier as V2Identifier
from adapters.hl7v2.outbound import (
    Envelope,
    OutgoingPatient,
    Party,
    ReferralStatus,
    ReturnedReferral,
    write_return,
)
from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig, NewPartner, PartnerService
from interop.settings import Settings
from interop.store import outbox
from interop.store.database import make_engine, unit_of_work
from interop.store.outbox import TransportState
from interop.store.tables import DisclosureLogRow, OutboxRow
from interop.sync.dispatcher import Dispatcher
from interop.sync.runtime import dispatcher, poller
from mappings import model as m
from mappings import service_request, task
from mappings.terminology import PATIENT_REFERRAL
from tests.builders import organization, part2_consent, part2_program, patient
from tests.e2e.partners import (
    DocumentDrop,
    FhirPartner,
    MllpPartner,
    listening,
    serving,
)
from tests.keys import rsa_key

FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "http://testserver/fhir"


class Clock:
    """The dispatcher's time: the wall clock, moved on by the test to make retries due."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def now(self) -> datetime:
        return self()

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class World:
    client: TestClient
    engine: Engine
    settings: Settings
    clock: Clock
    partners: PartnerService
    key_jwks: dict[str, Any]

    def register(self, name: str, channel: ChannelConfig) -> str:
        """A partner with a channel; its Organization id."""
        partner = self.partners.register(
            NewPartner(
                name=name,
                identifiers=[("http://hl7.org/fhir/sid/us-npi", str(abs(hash(name)))[:10])],
                scopes="system/*.rs",
                jwks=rsa_key().jwks(),
                covered_entity=True,
                channel=channel,
            )
        )
        return partner.organization.split("/")[1]

    @property
    def rows(self) -> list[OutboxRow]:
        with unit_of_work(self.engine, writes=False) as session:
            return list(reversed(outbox.listing(session, (), None, 100)))

    def held(self) -> list[dict[str, Any]]:
        """What staff see at GET /inbound/held, read through the service."""
        inbound = self.client.app.state.inbound  # type: ignore[attr-defined]
        return [{"channel": held.channel, "problems": held.problems} for held in inbound.held()]

    def run(self, **overrides: Any) -> list[Any]:
        settings = self.settings.model_copy(update=overrides)
        with dispatcher(settings, self.engine, self.clock) as worker:
            return worker.run_once()


@pytest.fixture
def world(client: TestClient, settings: Settings, tmp_path: Path) -> Iterator[World]:
    key = rsa_key("sync-1")
    pem = key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "sync.pem").write_bytes(pem)
    configured = settings.model_copy(
        update={
            "sync_signing_key_file": tmp_path / "sync.pem",
            "sync_signing_kid": "sync-1",
            "sync_timeout_seconds": 0.5,
            "sync_backoff_seconds": 10.0,
            "sync_max_attempts": 3,
        }
    )
    engine = make_engine(settings.database_url)
    yield World(client, engine, configured, Clock(), PartnerService(engine), key.jwks())
    engine.dispose()


def put(client: TestClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


def refer(client: TestClient, to: str, *, part2: bool = False, status: str = "requested") -> None:
    """Our program refers the client to `to`: the ServiceRequest and its Task (owner `to`)."""
    sender = part2_program("Harbor Detox") if part2 else organization("Harbor Clinic")
    put(client, {**sender, "id": "sender"})
    put(client, {**patient(family="Quill", given="Robin"), "id": "robin"})
    referral = m.Referral(
        id=m.Id("referral-1"),
        client_id=m.Ref("robin"),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref("sender")),
        status=m.RequestStatus.ACTIVE,
        service=PATIENT_REFERRAL,
        authored_on=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        performer_id=m.Ref(to),
        reason="Needs outpatient counselling after withdrawal management",
        placer_identifier=m.Identifier("urn:oid:2.16.840.1.113883.3.9999.20", "PLAC-77"),
    )
    put(client, service_request.to_fhir(referral))
    set_task(client, to, status)


def set_task(client: TestClient, owner: str, status: str) -> dict[str, Any]:
    fulfillment = m.ReferralTask(
        id=m.Id("task-1"),
        referral_id=m.Ref("referral-1"),
        client_id=m.Ref("robin"),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref("sender")),
        status=m.TaskStatus(status),
        authored_on=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        owner=m.Party(m.PartyKind.PROGRAM, m.Ref(owner)),
        status_reason=m.StatusReason(m.StatusReasonCode.OUT_OF_AREA, "Client moved away")
        if status == "cancelled"
        else None,
    )
    return put(client, task.to_fhir(fulfillment))


def consent_for(client: TestClient, recipient: str) -> None:
    consent = part2_consent("Patient/robin", "Organization/sender", f"Organization/{recipient}")
    put(client, {**consent, "id": "consent-robin"})


def fhir_channel(partner: FhirPartner) -> ChannelConfig:
    return ChannelConfig(ChannelKind.FHIR, partner.base, partner.client_id, partner.token_url)


class TestFhirPartner:
    def test_a_referral_arrives_once_with_absolute_references_and_updates_in_place(
        self, world: World
    ) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            [outcome] = world.run()
            assert outcome.state is TransportState.ACKNOWLEDGED
            [order] = partner.resources("ServiceRequest")
            [shared] = partner.resources("Task")
            assert shared["focus"]["reference"] == f"ServiceRequest/{order['id']}"
            assert shared["for"]["reference"] == f"{BASE}/Patient/robin"
            assert order["requester"]["reference"] == f"{BASE}/Organization/sender"
            assert {"system": "urn:ietf:rfc:3986", "value": f"{BASE}/Task/task-1"} in shared[
                "identifier"
            ]
            assert "Quill" not in orjson.dumps(partner.transactions).decode()
            set_task(world.client, program, "cancelled")
            [second] = world.run()
            assert second.state is TransportState.ACKNOWLEDGED
            [updated] = partner.resources("Task")
            assert (updated["id"], updated["status"]) == (shared["id"], "cancelled")
            assert updated["meta"]["versionId"] == "2"
        states = [(row.event, row.state, row.receipt[:5]) for row in world.rows]
        assert states == [("task-changed", "acknowledged", "Servi")] * 2

    def test_a_partner_that_is_down_gets_it_when_it_comes_back(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, port=_free_port())
        program = world.register("Bayview Outpatient", fhir_channel(partner))
        refer(world.client, program)
        [first] = world.run()
        assert first.state is TransportState.QUEUED
        [row] = world.rows
        assert (row.attempts, row.state) == (1, "queued")
        assert row.next_attempt_at > world.clock.now
        assert "token endpoint" in row.error
        assert world.run() == []  # not due yet
        world.clock.advance(60)
        with serving(partner):
            [second] = world.run()
        assert second.state is TransportState.ACKNOWLEDGED
        assert len(partner.resources("Task")) == 1

    @pytest.mark.parametrize("mode", ["slow", "garbage", "busy"])
    def test_slow_or_wrong_answers_are_retried_then_given_up(self, world: World, mode: str) -> None:
        partner = FhirPartner(world.key_jwks, mode=mode, delay=1.5)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            for _attempt in range(3):
                world.run()
                world.clock.advance(4000)
        [row] = world.rows
        assert (row.state, row.attempts) == ("failed", 3)
        assert row.error.startswith("gave up after 3 attempts")

    def test_a_busy_partner_is_left_alone_as_long_as_it_asks(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, mode="busy")
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            world.run()
        [row] = world.rows
        assert row.next_attempt_at - world.clock.now >= timedelta(seconds=110)

    def test_a_refusal_fails_at_once_with_the_partners_reason(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, mode="reject")
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            [outcome] = world.run()
        assert outcome.state is TransportState.FAILED
        [row] = world.rows
        assert (row.attempts, row.error) == (1, "HTTP 422: bad Task")


class TestPart2AtSending:
    def test_without_consent_nothing_leaves_and_the_denial_is_logged(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program, part2=True)
            [outcome] = world.run()
        assert outcome.state is TransportState.WITHHELD
        assert partner.transactions == []
        with unit_of_work(world.engine, writes=False) as session:
            decisions = session.exec(
                select(DisclosureLogRow).where(DisclosureLogRow.interaction == "sync-push")
            ).all()
        assert any(row.decision == "deny" and row.part2 for row in decisions)

    def test_with_consent_it_travels_labelled_with_the_notice(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            consent_for(world.client, program)
            refer(world.client, program, part2=True)
            [outcome] = world.run()
        assert outcome.state is TransportState.ACKNOWLEDGED
        [bundle] = partner.transactions
        codes = {label["code"] for label in bundle["meta"]["security"]}
        assert {"42CFRPart2", "NORDSCLCD"} <= codes
        order = bundle["entry"][0]["resource"]
        assert {"42CFRPart2"} <= {label["code"] for label in order["meta"]["security"]}

    def test_a_consent_revoked_after_queueing_is_honoured(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            consent_for(world.client, program)
            refer(world.client, program, part2=True)
            revoked = part2_consent(
                "Patient/robin", "Organization/sender", f"Organization/{program}"
            )
            put(world.client, {**revoked, "id": "consent-robin", "status": "inactive"})
            [outcome] = world.run()
        assert outcome.state is TransportState.WITHHELD
        assert partner.transactions == []


class TestDocuments:
    def test_a_referral_note_is_dropped_in_the_directory_atomically(
        self, world: World, tmp_path: Path
    ) -> None:
        drop = tmp_path / "outgoing"
        drop.mkdir()
        program = world.register(
            "Coastal Primary Care", ChannelConfig(ChannelKind.CCDA_DIRECTORY, str(drop))
        )
        refer(world.client, program)
        [outcome] = world.run()
        assert outcome.state is TransportState.SENT
        [written] = list(drop.iterdir())
        assert written.name == "referral-note-task-1-v1.xml"
        document = read_document(written.read_bytes())
        assert document.kind is DocumentKind.REFERRAL_NOTE
        assert "counselling" in (document.reason_for_referral or "")
        set_task(world.client, program, "cancelled")  # C-CDA carries no status: nothing queued
        assert [row.event for row in world.rows] == ["referral-sent"]

    def test_a_missing_directory_is_retried_never_created(
        self, world: World, tmp_path: Path
    ) -> None:
        drop = tmp_path / "unmounted"
        program = world.register(
            "Coastal Primary Care", ChannelConfig(ChannelKind.CCDA_DIRECTORY, str(drop))
        )
        refer(world.client, program)
        [outcome] = world.run()
        assert outcome.state is TransportState.QUEUED
        assert not drop.exists()

    def test_a_referral_note_is_posted_to_the_http_drop(self, world: World) -> None:
        partner = DocumentDrop()
        with serving(partner):
            program = world.register(
                "Coastal Primary Care", ChannelConfig(ChannelKind.CCDA_HTTP, partner.url)
            )
            refer(world.client, program)
            [outcome] = world.run()
        assert outcome.state is TransportState.ACKNOWLEDGED
        [(name, content)] = partner.received.items()
        assert name == '"referral-note-task-1-v1.xml"'
        assert read_document(content).patient is not None


class TestHl7v2:
    def test_referral_then_cancellation_reach_the_interface_engine(self, world: World) -> None:
        partner = MllpPartner()
        with listening(partner):
            program = world.register(
                "Lakeside Behavioral", ChannelConfig(ChannelKind.HL7V2_MLLP, partner.address)
            )
            refer(world.client, program)
            [sent] = world.run()
            set_task(world.client, program, "cancelled")
            [cancelled] = world.run()
        assert (sent.state, cancelled.state) == (TransportState.ACKNOWLEDGED,) * 2
        first, second = (read_message(raw) for raw in partner.received)
        assert first.header is not None
        assert second.header is not None
        assert (first.header.message_code, first.header.trigger_event) == ("REF", "I12")
        assert (second.header.message_code, second.header.trigger_event) == ("REF", "I14")
        assert first.content is not None
        assert first.content.originating_id.value == "PLAC-77"  # type: ignore[union-attr]
        assert [row.receipt for row in world.rows] == ["RI1", "RI2"]  # MSA-2 echoes MSH-10

    def test_the_partners_answer_closes_the_loop(self, world: World) -> None:
        """The interface engine answers our REF^I12 with RRI^I12 (RF1-1 A, then an R it may no
        longer give): the first moves our Task to accepted, the second is held."""
        partner = MllpPartner()
        with listening(partner):
            program = world.register(
                "Lakeside Behavioral", ChannelConfig(ChannelKind.HL7V2_MLLP, partner.address)
            )
            refer(world.client, program)
            world.run()
        inbound = world.client.app.state.inbound  # type: ignore[attr-defined]
        accepted = inbound.receive(answer(ReferralStatus.ACCEPTED, "RRI-1"), "mllp")
        assert b"MSA|AA|RRI-1" in accepted
        ours = world.client.get("/fhir/Task/task-1").json()
        assert (ours["status"], ours["meta"]["versionId"]) == ("accepted", "2")
        declined = inbound.receive(answer(ReferralStatus.REJECTED, "RRI-2"), "mllp")
        assert b"MSA|AE|RRI-2" in declined
        assert world.client.get("/fhir/Task/task-1").json()["status"] == "accepted"
        assert [row.event for row in world.rows] == ["referral-sent"]  # no echo to the partner

    def test_a_rejection_fails_the_delivery(self, world: World) -> None:
        partner = MllpPartner(answer=AckCode.REJECT)
        with listening(partner):
            program = world.register(
                "Lakeside Behavioral", ChannelConfig(ChannelKind.HL7V2_MLLP, partner.address)
            )
            refer(world.client, program)
            [outcome] = world.run()
        assert outcome.state is TransportState.FAILED
        assert world.rows[0].error.startswith("AR")


class TestAtLeastOnce:
    def test_a_dispatcher_that_died_mid_delivery_is_taken_over_after_its_lease(
        self, world: World
    ) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            with unit_of_work(world.engine) as session:  # claimed, then the process died
                outbox.claim(session, world.clock.now, timedelta(seconds=300), 10)
            assert world.run() == []
            world.clock.advance(301)
            [outcome] = world.run()
        assert outcome.state is TransportState.ACKNOWLEDGED
        assert world.rows[0].attempts == 2

    def test_concurrent_dispatchers_never_deliver_one_row_twice(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            for status in ("cancelled",):
                set_task(world.client, program, status)
            for index in range(8):  # more Tasks, each its own row
                put(
                    world.client,
                    {
                        **task.to_fhir(
                            m.ReferralTask(
                                id=m.Id(f"task-extra-{index}"),
                                referral_id=m.Ref("referral-1"),
                                client_id=m.Ref("robin"),
                                requester=m.Party(m.PartyKind.PROGRAM, m.Ref("sender")),
                                status=m.TaskStatus.REQUESTED,
                                authored_on=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
                                owner=m.Party(m.PartyKind.PROGRAM, m.Ref(program)),
                            )
                        )
                    },
                )
            outcomes: list[Any] = []
            errors: list[BaseException] = []

            def drain() -> None:
                try:
                    outcomes.extend(_drain(world))
                except BaseException as error:  # surfaced below, not lost in the thread
                    errors.append(error)

            workers = [threading.Thread(target=drain) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(30)
        assert errors == []
        delivered = [o.pk for o in outcomes if o.state is TransportState.ACKNOWLEDGED]
        assert sorted(delivered) == sorted(set(delivered))
        assert {row.state for row in world.rows} == {"acknowledged"}
        assert len(partner.transactions) == len(world.rows) == 10


def answer(status: ReferralStatus, control_id: str) -> bytes:
    """An RRI^I12 from the partner's interface engine about our referral PLAC-77."""
    patient = OutgoingPatient(
        (V2Identifier("MRN-1", "MR", HierarchicDesignator("HARBOR")),), (PersonName("Quill"),)
    )
    returned = ReturnedReferral(
        originating_id=EntityIdentifier("PLAC-77", "RECOVERY-INTEROP"),
        status=status,
        patient=patient,
        referring=Party("Harbor Clinic", "1", "L"),
        referred_to=Party("Lakeside Behavioral", "2", "L"),
        reason="No bed before next month" if status is ReferralStatus.REJECTED else "",
    )
    envelope = Envelope(
        "LAKESIDE", "LAKESIDE", "RECOVERY-INTEROP", "HARBOR", control_id, datetime.now(UTC)
    )
    return write_return(returned, envelope)


def _drain(world: World) -> list[Any]:
    done: list[Any] = []
    with dispatcher(world.settings, world.engine, world.clock) as worker:
        while batch := _round(worker):
            done.extend(batch)
    return done


def _round(worker: Dispatcher) -> list[Any]:
    return worker.run_once(limit=2)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class TestReadingPartnersBack:
    """REFERRALS.md: the partner works its copy; we poll its server and apply its side."""

    def poll(self, world: World) -> list[Any]:
        with poller(world.settings, world.engine, world.clock) as reader:
            return reader.run_once()

    def test_the_owners_work_comes_back_to_our_task_move_by_move(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            world.run()
            partner.work("Task", status="accepted", businessStatus={"text": "accepted"})
            [report] = self.poll(world)
            assert (report.seen, report.applied, report.held, report.error) == (1, 1, 0, "")
            ours = world.client.get("/fhir/Task/task-1").json()
            assert (ours["status"], ours["meta"]["versionId"]) == ("accepted", "2")
            partner.work("Task", status="in-progress", executionPeriod={"start": "2026-11-04"})
            partner.work(
                "Task",
                status="completed",
                executionPeriod={"start": "2026-11-04", "end": "2026-12-01"},
                output=[
                    {
                        "type": {"text": "discharge summary"},
                        "valueReference": {"reference": "DocumentReference/summary-9"},
                    }
                ],
            )
            [late] = self.poll(world)  # two moves since the last poll: applied one by one
            assert (late.applied, late.held) == (1, 0)
        history = world.client.get("/fhir/Task/task-1/_history").json()
        statuses = [entry["resource"]["status"] for entry in history["entry"]]
        assert statuses == ["completed", "in-progress", "accepted", "requested"]

    def test_a_move_the_workflow_refuses_is_held_once_and_ours_stays(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            world.run()
            partner.work("Task", status="completed")  # no start, no end, no output
            [first] = self.poll(world)
            [again] = self.poll(world)
        assert (first.applied, first.held, again.held) == (0, 1, 1)
        held = [row for row in world.held() if row["channel"] == "fhir-poll"]
        assert held == [
            {
                "channel": "fhir-poll",
                "problems": ["a Task put in-progress carries executionPeriod.start"],
            }
        ]
        ours = world.client.get("/fhir/Task/task-1").json()  # no step kept: all or nothing
        assert (ours["status"], ours["meta"]["versionId"]) == ("requested", "1")

    def test_outputs_point_at_the_partners_server_and_a_copy_seen_again_changes_nothing(
        self, world: World
    ) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program, status="requested")
            world.run()
            for status, extra in (
                ("accepted", {}),
                ("in-progress", {"executionPeriod": {"start": "2026-11-04"}}),
            ):
                partner.work("Task", status=status, **extra)
                self.poll(world)
            output = [
                {
                    "type": {"text": "discharge summary"},
                    "valueReference": {"reference": "DocumentReference/summary-9"},
                }
            ]
            partner.work(
                "Task",
                status="completed",
                executionPeriod={"start": "2026-11-04", "end": "2026-12-01"},
                output=output,
            )
            [done] = self.poll(world)
            [quiet] = self.poll(world)
        assert (done.applied, quiet.applied, quiet.seen) == (1, 0, 1)
        ours = world.client.get("/fhir/Task/task-1").json()
        assert ours["status"] == "completed"
        assert ours["output"][0]["valueReference"]["reference"] == (
            f"{partner.base}/DocumentReference/summary-9"
        )
        assert ours["meta"]["versionId"] == "4"

    def test_a_partner_that_is_down_is_reported_and_nothing_changes(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, port=_free_port())
        program = world.register("Bayview Outpatient", fhir_channel(partner))
        refer(world.client, program)
        [report] = self.poll(world)
        assert report.error.startswith("token endpoint")
        assert world.client.get("/fhir/Task/task-1").json()["meta"]["versionId"] == "1"
