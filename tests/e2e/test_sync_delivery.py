"""The sync outbox delivered to real partner servers on loopback (REFERRALS.md, "How partners
learn of changes"; ARCHITECTURE.md rule 5): FHIR, C-CDA over HTTP and into a directory, HL7 v2
over MLLP; partners that are down, slow or wrong; Part 2 decided when sending."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from adapters.ccda import read_document
from adapters.ccda.templates import DocumentKind
from adapters.hl7v2 import read_message
from adapters.hl7v2.errors import AckCode
from adapters.hl7v2.messages import EntityIdentifier, HierarchicDesignator, PersonName, Referral
from adapters.hl7v2.messages import Identifier as V2Identifier
from adapters.hl7v2.outbound import (
    Envelope,
    OutgoingPatient,
    Party,
    ReferralStatus,
    ReturnedReferral,
    write_return,
)
from consent import NOTICE_FULL
from interop.services.outbox import ChannelKind
from interop.services.partners import ChannelConfig
from interop.store import outbox
from interop.store.database import unit_of_work
from interop.store.outbox import TransportState
from interop.store.tables import DisclosureLogRow
from interop.sync.dispatcher import Dispatcher
from interop.sync.payloads import URI_SYSTEM
from interop.sync.runtime import deliverer, dispatcher, poller
from interop.sync.subscribing import PartnerSubscriptions
from mappings import model as m
from mappings import task
from mappings.terminology import BUSINESS_STATUS
from tests.builders import part2_consent
from tests.e2e.partners import (
    DocumentDrop,
    FhirPartner,
    MllpPartner,
    listening,
    serving,
)
from tests.e2e.sync_world import (
    BASE,
    World,
    consent_for,
    fhir_channel,
    put,
    refer,
    set_task,
)

ADMITTED = {"businessStatus": {"coding": [{"system": BUSINESS_STATUS.url, "code": "admitted"}]}}


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
            [client] = partner.resources("Patient")  # pushed too: the copies name it
            assert shared["for"]["reference"] == f"Patient/{client['id']}"
            assert {"system": URI_SYSTEM, "value": f"{BASE}/Patient/robin"} in client["identifier"]
            assert order["requester"]["reference"] == f"{BASE}/Organization/sender"
            assert {"system": "urn:ietf:rfc:3986", "value": f"{BASE}/Task/task-1"} in shared[
                "identifier"
            ]
            assert client["name"] == [{"family": "Quill", "given": ["Robin"]}]  # as released
            set_task(world.client, program, "cancelled")
            [second] = world.run()
            assert second.state is TransportState.ACKNOWLEDGED
            [updated] = partner.resources("Task")
            assert (updated["id"], updated["status"]) == (shared["id"], "cancelled")
            assert updated["meta"]["versionId"] == "2"
        states = [(row.event, row.state, row.receipt[:5]) for row in world.rows]
        assert states == [("task-changed", "acknowledged", "Servi")] * 2

    def test_a_client_whose_record_came_from_the_partner_is_named_by_its_record_there(
        self, world: World
    ) -> None:
        """Our client record is a copy of the partner's (it pushed it with a referral): the
        copies name the partner's own record, relatively, and no second record is sent."""
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            robin = world.client.get("/fhir/Patient/robin").json()
            theirs = {"system": URI_SYSTEM, "value": f"{partner.base}/Patient/p-9"}
            put(world.client, {**robin, "identifier": [*robin.get("identifier", []), theirs]})
            [outcome] = world.run()
        assert outcome.state is TransportState.ACKNOWLEDGED
        assert partner.resources("Patient") == []
        [order] = partner.resources("ServiceRequest")
        [shared] = partner.resources("Task")
        assert order["subject"] == shared["for"] == {"reference": "Patient/p-9"}

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
        assert pushed(world) == []  # probe 11 M1: nothing left, nothing to account for
        world.clock.advance(60)
        with serving(partner):
            [second] = world.run()
        assert second.state is TransportState.ACKNOWLEDGED
        assert len(partner.resources("Task")) == 1
        assert sorted(pushed(world)) == [
            "Patient/robin",
            "ServiceRequest/referral-1",
            "Task/task-1",
        ]

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
        assert "Task/task-1" in pushed(world)  # it read what it refused: a disclosure


class TestTogether:
    """Several changes to one partner's FHIR server share a transaction (SYNC_BATCH), each
    still its own delivery."""

    def test_one_transaction_carries_them_with_shared_entries_once(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            for index in range(3):
                put(world.client, extra_task(program, index))
            outcomes = world.run()
        assert [o.state for o in outcomes] == [TransportState.ACKNOWLEDGED] * 4
        [bundle] = partner.transactions
        urls = [entry["fullUrl"].removeprefix(f"{BASE}/") for entry in bundle["entry"]]
        assert sorted(urls) == sorted(
            ["ServiceRequest/referral-1", "Patient/robin", "Task/task-1"]
            + [f"Task/task-extra-{n}" for n in range(3)]
        )
        # each row's receipt is its own first entry's location: the referral's copy
        [order] = partner.resources("ServiceRequest")
        assert {row.receipt for row in world.rows} == {f"ServiceRequest/{order['id']}/_history/1"}
        assert sorted(pushed(world)).count("Task/task-extra-2") == 1

    def test_a_change_the_partner_refuses_holds_back_none_of_the_others(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, refuse="Task/task-extra-1")
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            for index in range(3):
                put(world.client, extra_task(program, index))
            world.run()
        states = {row.resource_id: (row.state, row.error) for row in world.rows}
        assert states.pop("task-extra-1") == ("failed", "HTTP 422: bad Task")
        assert {state for state, _ in states.values()} == {"acknowledged"}
        assert partner.refused == 2  # the transaction of all four, then that change alone
        tasks = {task["identifier"][-1]["value"] for task in partner.resources("Task")}
        assert tasks == {
            f"{BASE}/Task/{ident}" for ident in ("task-1", "task-extra-0", "task-extra-2")
        }

    def test_a_withheld_change_goes_nowhere_and_the_others_go(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            orphan = extra_task(program, 0)
            put(world.client, {**orphan, "focus": {"reference": "ServiceRequest/nowhere"}})
            put(world.client, extra_task(program, 1))
            world.run()
        states = {row.resource_id: row.state for row in world.rows}
        assert states == {
            "task-1": "acknowledged",
            "task-extra-0": "withheld",
            "task-extra-1": "acknowledged",
        }
        [bundle] = partner.transactions
        assert f"{BASE}/Task/task-extra-0" not in {e["fullUrl"] for e in bundle["entry"]}

    def test_a_change_tried_before_goes_alone(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, mode="busy")
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            put(world.client, extra_task(program, 0))
            world.run()
            partner.mode = "ok"
            world.clock.advance(600)
            world.run()
        assert {row.state for row in world.rows} == {"acknowledged"}
        assert [len(bundle["entry"]) for bundle in partner.transactions] == [3, 3]

    def test_sync_batch_1_sends_each_alone(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            put(world.client, extra_task(program, 0))
            world.run(sync_batch=1)
        assert len(partner.transactions) == 2


def extra_task(program: str, index: int) -> dict[str, Any]:
    """Another Task on the referral of `refer`, owned by `program`: a row of its own."""
    return task.to_fhir(
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
                select(DisclosureLogRow).where(DisclosureLogRow.interaction == "sync-prepare")
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
        # PRD RT names the program referred to (ServiceRequest.performer is a list).
        referred = first.content.referred_to  # type: ignore[union-attr]
        assert referred is not None
        assert referred.location is not None
        assert referred.location.facility is not None
        assert referred.location.facility.namespace_id == "Lakeside Behavioral"
        assert [row.receipt for row in world.rows] == ["RI1", "RI2"]  # MSA-2 echoes MSH-10
        # Not Part 2 data: no marking (MSH-8, the 42CFRPart2 NTE), only the reason's note.
        assert first.header.segment.value(8) == second.header.segment.value(8) == ""
        assert [n.type.code for n in first.content.notes if n.type] == ["1R"]

    def test_part2_data_travels_with_the_notice_the_consent_and_its_labels(
        self, world: World
    ) -> None:
        """§2.32(a), PART2.md S1 and S2, as the FHIR and C-CDA channels carry them: MSH-8 the
        confidentiality, an NTE of type 42CFRPart2 the gate's notice, consent and labels; the
        REF^I12 and the REF^I14 after it both read without a problem."""
        partner = MllpPartner()
        with listening(partner):
            program = world.register(
                "Lakeside Behavioral", ChannelConfig(ChannelKind.HL7V2_MLLP, partner.address)
            )
            consent_for(world.client, program)
            refer(world.client, program, part2=True)
            world.run()
            set_task(world.client, program, "cancelled")
            world.run()
        assert [row.state for row in world.rows] == ["acknowledged"] * 2
        for raw in partner.received:
            inbound = read_message(raw)
            assert inbound.problems == ()
            assert isinstance(inbound.content, Referral)
            assert inbound.content.header.segment.value(8) == "R"
            [notice] = [n for n in inbound.content.notes if n.type and n.type.code == "42CFRPart2"]
            statement, consent, labels = notice.text.split("\n")
            assert statement == NOTICE_FULL
            assert consent == "Consent relied on: Consent/consent-robin"
            assert {"R", "42CFRPart2", "NORDSCLCD"} <= set(labels.split(": ")[1].split())

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
        [accepted] = inbound.receive(answer(ReferralStatus.ACCEPTED, "RRI-1"), "mllp")
        assert b"MSA|AA|RRI-1" in accepted
        ours = world.client.get("/fhir/Task/task-1").json()
        assert (ours["status"], ours["meta"]["versionId"]) == ("accepted", "2")
        [declined] = inbound.receive(answer(ReferralStatus.REJECTED, "RRI-2"), "mllp")
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
                put(world.client, extra_task(program, index))
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
        # Each row's Task went once (task-1 twice: requested, then cancelled), several rows
        # to the partner sharing a transaction (SYNC_BATCH).
        sent = Counter(
            entry["fullUrl"].rpartition("/")[2]
            for bundle in partner.transactions
            for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == "Task"
        )
        assert len(world.rows) == 10
        assert sent == {"task-1": 2, **{f"task-extra-{n}": 1 for n in range(8)}}
        assert len(partner.transactions) < 10


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
            partner.work(
                "Task", status="in-progress", executionPeriod={"start": "2026-11-04"}, **ADMITTED
            )
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
        started = history["entry"][1]["resource"]  # probe 9 L3: not yet ended, no outcome
        assert started["executionPeriod"] == {"start": "2026-11-04"}
        assert "output" not in started

    def test_a_copy_read_again_keeps_our_labels_and_our_later_changes(self, world: World) -> None:
        """The partner's copy replaces only its side's elements, once per version: the Task's
        security labels stay, and a note we wrote after applying it is not undone."""
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program, part2=True)
            labelled = world.client.get("/fhir/Task/task-1").json()
            label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUD"}
            put(world.client, {**labelled, "meta": {"security": [label]}})
            consent_for(world.client, program)  # Part 2 data: it travels with consent only
            world.run()
            partner.work("Task", status="accepted")
            self.poll(world)
            ours = world.client.get("/fhir/Task/task-1").json()
            assert label in ours["meta"]["security"]
            noted = {**ours, "note": [{"text": "Intake call booked for Monday"}]}
            put(world.client, noted)
            [again] = self.poll(world)
        assert (again.seen, again.applied) == (1, 0)
        final = world.client.get("/fhir/Task/task-1").json()
        assert final["note"] == [{"text": "Intake call booked for Monday"}]
        assert (final["status"], label in final["meta"]["security"]) == ("accepted", True)

    def test_a_move_the_workflow_refuses_is_held_once_and_ours_stays(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            world.run()
            partner.work("Task", status="completed")  # no start, no end, no output
            [first] = self.poll(world)
            [again] = self.poll(world)
        assert (first.applied, first.held, again.held) == (0, 1, 0)  # kept once
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
                ("in-progress", {"executionPeriod": {"start": "2026-11-04"}, **ADMITTED}),
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

    def test_a_notification_from_the_partners_server_asks_for_a_poll(self, world: World) -> None:
        """`interop sync subscribe` leaves our Subscription at the partner with a secret; the
        partner's notification with it makes the next requested-poll round read it back."""
        partner = FhirPartner(world.key_jwks)
        with serving(partner):
            program = world.register("Bayview Outpatient", fhir_channel(partner))
            refer(world.client, program)
            world.run()
            client_id = world.rows[0].partner_client_id
            with deliverer(world.settings, world.engine) as channels:
                subscriptions = PartnerSubscriptions(world.engine, channels, "http://testserver")
                location = subscriptions.subscribe(client_id)
            [ours] = partner.subscriptions
            assert location == f"{partner.base}/Subscription/1"
            assert (
                ours["channel"]["endpoint"] == f"http://testserver/sync/notifications/{client_id}"
            )
            [header] = ours["channel"]["header"]
            secret = header.removeprefix("Authorization: ")
            url = f"/sync/notifications/{client_id}"
            notice = {"resourceType": "Bundle", "type": "history", "entry": []}
            wrong = world.client.post(url, json=notice, headers={"Authorization": "Bearer guess"})
            unknown = world.client.post(
                "/sync/notifications/nobody", json=notice, headers={"Authorization": secret}
            )
            assert (wrong.status_code, unknown.status_code) == (401, 401)
            assert wrong.json()["detail"] == unknown.json()["detail"]
            with poller(world.settings, world.engine, world.clock) as reader:
                assert reader.run_requested() == []
                partner.work("Task", status="accepted")
                told = world.client.post(url, json=notice, headers={"Authorization": secret})
                assert told.status_code == 204
                [report] = reader.run_requested()
                assert reader.run_requested() == []
        assert report.applied == 1
        assert world.client.get("/fhir/Task/task-1").json()["status"] == "accepted"

    def test_a_partner_that_is_down_is_reported_and_nothing_changes(self, world: World) -> None:
        partner = FhirPartner(world.key_jwks, port=_free_port())
        program = world.register("Bayview Outpatient", fhir_channel(partner))
        refer(world.client, program)
        [report] = self.poll(world)
        assert report.error.startswith("token endpoint")
        assert world.client.get("/fhir/Task/task-1").json()["meta"]["versionId"] == "1"


def pushed(world: World) -> list[str]:
    """What the log records as disclosed by pushes (`sync-push`: what the accounting lists)."""
    with unit_of_work(world.engine, writes=False) as session:
        rows = session.exec(
            select(DisclosureLogRow).where(
                DisclosureLogRow.interaction == "sync-push", DisclosureLogRow.decision == "permit"
            )
        ).all()
    return [name for row in rows for name in row.resources.split()]
