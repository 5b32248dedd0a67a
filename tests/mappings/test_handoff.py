"""Handoff <-> a Bundle of the referral to the next level of care and its fulfillment Task."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from mappings import fhir, handoff, service_request, task
from mappings.errors import MappingError, Unmapped
from mappings.model import (
    ChecklistItem,
    Handoff,
    Id,
    LevelOfCare,
    Ref,
    Referral,
    ReferralTask,
    RequestStatus,
    TaskStatus,
    TransitionItem,
)
from mappings.terminology import LEVEL_OF_CARE, TRANSITION_ITEM


def a_handoff(**changes: Any) -> Handoff:
    values: dict[str, Any] = {
        "id": Id("t1"),
        "referral_id": Id("sr1"),
        "client_id": Ref("c1"),
        "from_program_id": Ref("harbor"),
        "from_episode_id": Ref("ep1"),
        "from_level": LevelOfCare.WM_INPATIENT_MONITORED,
        "to_program_id": Ref("https://riverside.example.org/fhir/Organization/r1"),
        "to_level": LevelOfCare.RESIDENTIAL_HIGH_INTENSITY,
        "planned_date": date(2025, 3, 8),
        "authored_on": datetime(2025, 3, 5, 14, 0, tzinfo=UTC),
        "status": TaskStatus.REQUESTED,
        "transfer_summary": Ref("doc-transfer"),
        "consent": Ref("consent1"),
        "medication_reconciliation": Ref("doc-medrec"),
        "checklist": (
            ChecklistItem(TransitionItem.MEDICATIONS_ON_HAND, True),
            ChecklistItem(TransitionItem.INTAKE_CONFIRMED, False),
        ),
        "transportation_arranged": True,
    }
    return Handoff(**(values | changes))


def _entries(bundle: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    referral, fulfillment = (entry["resource"] for entry in bundle["entry"])
    return referral, fulfillment


class TestToFhir:
    def test_a_collection_of_the_referral_and_its_task(self) -> None:
        bundle = handoff.to_fhir(a_handoff())

        fhir.validate(bundle)
        referral, fulfillment = _entries(bundle)
        assert bundle["type"] == "collection"
        assert isinstance(service_request.from_fhir(referral).value, Referral)
        assert isinstance(task.from_fhir(fulfillment).value, ReferralTask)
        assert fulfillment["focus"] == {"reference": "ServiceRequest/sr1"}
        assert referral["orderDetail"][0]["coding"][0]["code"] == "3.5"
        assert referral["occurrenceDateTime"] == "2025-03-08"
        assert referral["supportingInfo"] == [
            {"reference": "Consent/consent1"},
            {"reference": "EpisodeOfCare/ep1"},
        ]

    def test_the_task_carries_the_transition_documents_and_checklist(self) -> None:
        _, fulfillment = _entries(handoff.to_fhir(a_handoff()))

        inputs = [
            (
                entry["type"]["coding"][0]["system"],
                entry["type"]["coding"][0]["code"],
                entry.get("valueReference")
                or entry.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code")
                or entry.get("valueBoolean"),
            )
            for entry in fulfillment["input"]
        ]
        assert inputs == [
            ("http://loinc.org", "18761-7", {"reference": "DocumentReference/doc-transfer"}),
            (TRANSITION_ITEM.url, "from-level-of-care", "3.7-WM"),
            ("http://snomed.info/sct", "430193006", {"reference": "DocumentReference/doc-medrec"}),
            (TRANSITION_ITEM.url, "medications-on-hand", True),
            (TRANSITION_ITEM.url, "intake-confirmed", False),
            (TRANSITION_ITEM.url, "transportation-arranged", True),
        ]
        assert fulfillment["input"][1]["valueCodeableConcept"]["coding"][0]["system"] == (
            LEVEL_OF_CARE.url
        )

    @pytest.mark.parametrize(
        ("status", "order"),
        [
            (TaskStatus.DRAFT, RequestStatus.DRAFT),
            (TaskStatus.ACCEPTED, RequestStatus.ACTIVE),
            (TaskStatus.ON_HOLD, RequestStatus.ON_HOLD),
            (TaskStatus.REJECTED, RequestStatus.REVOKED),
            (TaskStatus.COMPLETED, RequestStatus.COMPLETED),
        ],
    )
    def test_the_order_follows_the_task(self, status: TaskStatus, order: RequestStatus) -> None:
        referral, _ = _entries(handoff.to_fhir(a_handoff(status=status)))

        assert referral["status"] == order.value


class TestFromFhir:
    def test_reads_what_it_wrote(self) -> None:
        mapped = handoff.from_fhir(handoff.to_fhir(a_handoff()))

        assert (mapped.value, mapped.unmapped) == (a_handoff(), ())

    def test_reports_what_the_referral_says_beyond_the_handoff(self) -> None:
        bundle = handoff.to_fhir(a_handoff())
        referral, _ = _entries(bundle)
        referral["extension"] = [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                "valueReference": {"reference": "Goal/g1"},
            }
        ]
        referral["status"] = "on-hold"

        mapped = handoff.from_fhir(bundle)

        assert mapped.value == a_handoff()
        assert mapped.unmapped == (
            Unmapped("Bundle.entry[0].resource.status", "a handoff does not keep this (status)"),
            Unmapped(
                "Bundle.entry[0].resource.extension", "a handoff does not keep this (goal_ids)"
            ),
        )

    def test_needs_the_transfer_summary(self) -> None:
        bundle = handoff.to_fhir(a_handoff())
        _, fulfillment = _entries(bundle)
        del fulfillment["input"][0]

        with pytest.raises(MappingError) as raised:
            handoff.from_fhir(bundle)
        assert raised.value.path == "Bundle.entry[1].resource.input"

    def test_errors_inside_an_entry_name_their_place_in_the_bundle(self) -> None:
        bundle = handoff.to_fhir(a_handoff())
        referral, _ = _entries(bundle)
        referral["intent"] = "plan"

        with pytest.raises(MappingError) as raised:
            handoff.from_fhir(bundle)
        assert raised.value.path == "Bundle.entry[0].resource.intent"

    def test_is_one_referral_and_one_task(self) -> None:
        bundle = handoff.to_fhir(a_handoff())
        bundle["entry"].pop()

        with pytest.raises(MappingError, match="one ServiceRequest and one Task"):
            handoff.from_fhir(bundle)


def test_each_checklist_item_once() -> None:
    with pytest.raises(ValueError, match="must not repeat"):
        a_handoff(
            checklist=(
                ChecklistItem(TransitionItem.RECORDS_SENT, True),
                ChecklistItem(TransitionItem.RECORDS_SENT, False),
            )
        )
