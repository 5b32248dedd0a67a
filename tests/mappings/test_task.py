"""Actions and referral fulfillment Tasks <-> FHIR Task (SDOHCC Task For Referral Management)."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from mappings import fhir, task
from mappings.errors import MappingError, Unmapped
from mappings.model import (
    Action,
    ActionOwner,
    BusinessStatus,
    Code,
    Id,
    Party,
    PartyKind,
    Period,
    Ref,
    ReferralTask,
    StatusReason,
    StatusReasonCode,
    TaskInput,
    TaskIntent,
    TaskStatus,
    TypedRef,
)
from mappings.terminology import (
    ACTION_OWNER,
    BSER_BUSINESS_STATUS,
    BUSINESS_STATUS,
    RESULTING_ACTIVITY,
    SDOHCC_CODES,
    STATUS_REASON,
    TRANSFER_SUMMARY,
)

AUTHORED = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def a_referral_task(**changes: Any) -> ReferralTask:
    values: dict[str, Any] = {
        "id": Id("t1"),
        "referral_id": Ref("sr1"),
        "client_id": Ref("c1"),
        "requester": Party(PartyKind.PROGRAM, Ref("harbor")),
        "status": TaskStatus.REQUESTED,
        "authored_on": AUTHORED,
        "owner": Party(
            PartyKind.PROGRAM, Ref("https://riverside.example.org/fhir/Organization/r1")
        ),
        "business_status": BusinessStatus.CREATED,
        "response_deadline": date(2025, 3, 3),
        "inputs": (TaskInput(TRANSFER_SUMMARY, TypedRef("DocumentReference", Ref("d1"))),),
    }
    return ReferralTask(**(values | changes))


def an_action(**changes: Any) -> Action:
    values: dict[str, Any] = {
        "id": Id("a1"),
        "client_id": Ref("c1"),
        "title": "Call the housing authority about the waitlist",
        "owner": ActionOwner.CLIENT,
        "status": TaskStatus.READY,
        "assignee": Party(PartyKind.CLIENT, Ref("c1")),
        "requester": Party(PartyKind.CASE_MANAGER, Ref("cm1")),
        "plan_id": Ref("plan1"),
        "goal_ids": (Ref("g1"),),
        "due": date(2025, 3, 14),
    }
    return Action(**(values | changes))


class TestReferralTask:
    def test_writes_the_sdohcc_fulfillment_task(self) -> None:
        resource = task.to_fhir(a_referral_task())

        fhir.validate(resource)
        assert resource["meta"] == {"profile": [task.PROFILE]}
        assert (resource["intent"], resource["code"]["coding"][0]["code"]) == ("order", "fulfill")
        assert resource["focus"] == {"reference": "ServiceRequest/sr1"}
        assert resource["for"] == {"reference": "Patient/c1"}
        assert resource["restriction"] == {"period": {"end": "2025-03-03"}}
        assert resource["businessStatus"] == {
            "coding": [
                {"system": BUSINESS_STATUS.url, "code": "created", "display": "Referral created"},
                {
                    "system": BSER_BUSINESS_STATUS,
                    "code": "2.0",
                    "display": "Service Request Created",
                },
            ]
        }

    def test_business_statuses_bser_lacks_are_local_only(self) -> None:
        resource = task.to_fhir(a_referral_task(business_status=BusinessStatus.WAITLISTED))

        assert [c["system"] for c in resource["businessStatus"]["coding"]] == [BUSINESS_STATUS.url]

    def test_reads_a_bser_only_business_status(self) -> None:
        resource = task.to_fhir(a_referral_task())
        resource["businessStatus"] = {"coding": [{"system": BSER_BUSINESS_STATUS, "code": "5.1.1"}]}

        assert task.from_fhir(resource).value == a_referral_task(
            business_status=BusinessStatus.SCHEDULED
        )

    def test_refuses_a_code_bser_does_not_have(self) -> None:
        resource = task.to_fhir(a_referral_task())
        resource["businessStatus"] = {"coding": [{"system": BSER_BUSINESS_STATUS, "code": "9.9"}]}

        with pytest.raises(MappingError) as raised:
            task.from_fhir(resource)
        assert raised.value.path == "Task.businessStatus.coding[0].code"

    def test_a_rejection_carries_its_reason_as_code_and_text(self) -> None:
        rejected = a_referral_task(
            status=TaskStatus.REJECTED,
            business_status=BusinessStatus.DECLINED,
            status_reason=StatusReason(StatusReasonCode.AT_CAPACITY, "No beds until April"),
        )
        resource = task.to_fhir(rejected)

        assert resource["statusReason"] == {
            "coding": [
                {
                    "system": STATUS_REASON.url,
                    "code": "at-capacity",
                    "display": "Program at capacity",
                }
            ],
            "text": "No beds until April",
        }
        assert task.from_fhir(resource).value == rejected

    def test_a_reason_without_text_reads_its_display(self) -> None:
        resource = task.to_fhir(a_referral_task(status=TaskStatus.ON_HOLD))
        resource["statusReason"] = {"coding": [{"system": STATUS_REASON.url, "code": "payer"}]}

        assert task.from_fhir(resource).value.status_reason == StatusReason(  # type: ignore[union-attr]
            StatusReasonCode.PAYER, "Payer did not cover or authorize"
        )

    def test_outputs_what_was_delivered(self) -> None:
        done = a_referral_task(
            status=TaskStatus.COMPLETED,
            execution=Period(AUTHORED, datetime(2025, 3, 9, tzinfo=UTC)),
            outputs=(
                TaskInput(
                    Code(SDOHCC_CODES, RESULTING_ACTIVITY),
                    TypedRef("Procedure", Ref("https://riverside.example.org/fhir/Procedure/p9")),
                ),
            ),
        )
        resource = task.to_fhir(done)

        fhir.validate(resource)
        assert resource["output"][0]["valueReference"] == {
            "reference": "https://riverside.example.org/fhir/Procedure/p9"
        }
        assert task.from_fhir(resource).value == done

    def test_the_requester_is_a_role_or_an_organization(self) -> None:
        with pytest.raises(MappingError) as raised:
            task.to_fhir(a_referral_task(requester=Party(PartyKind.CLIENT, Ref("c1"))))
        assert raised.value.path == "Task.requester"

    def test_refuses_another_intent(self) -> None:
        resource = task.to_fhir(a_referral_task()) | {"intent": "proposal"}

        with pytest.raises(MappingError, match="an order"):
            task.from_fhir(resource)


class TestAction:
    def test_writes_who_owns_it(self) -> None:
        resource = task.to_fhir(an_action())

        fhir.validate(resource)
        assert resource["performerType"] == [
            {
                "coding": [
                    {
                        "system": ACTION_OWNER.url,
                        "code": "client",
                        "display": "Client does it (you do it)",
                    }
                ]
            }
        ]
        assert resource["owner"] == {"reference": "Patient/c1"}
        assert resource["basedOn"] == [{"reference": "CarePlan/plan1"}]
        assert resource["code"] == {"text": "Call the housing authority about the waitlist"}
        assert resource["intent"] == "plan"
        assert resource["extension"] == [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                "valueReference": {"reference": "Goal/g1"},
            }
        ]

    def test_reads_what_it_wrote(self) -> None:
        shared = an_action(
            owner=ActionOwner.SHARED, assignee=Party(PartyKind.CASE_MANAGER, Ref("cm1"))
        )

        assert task.from_fhir(task.to_fhir(shared)).value == shared

    @pytest.mark.parametrize(
        ("owner", "kind"),
        [
            ({"reference": "Patient/c1"}, ActionOwner.CLIENT),
            ({"reference": "Practitioner/pr1"}, ActionOwner.CASE_MANAGER),
        ],
    )
    def test_without_an_owner_code_the_owner_decides(
        self, owner: dict[str, str], kind: ActionOwner
    ) -> None:
        resource = task.to_fhir(an_action())
        del resource["performerType"]
        resource["owner"] = owner

        assert task.from_fhir(resource).value.owner is kind

    def test_refuses_an_action_nobody_owns(self) -> None:
        resource = task.to_fhir(an_action())
        del resource["performerType"], resource["owner"]

        with pytest.raises(MappingError) as raised:
            task.from_fhir(resource)
        assert raised.value.path == "Task.performerType"

    def test_keeps_the_intent_of_a_partners_task(self) -> None:
        resource = task.to_fhir(an_action()) | {"intent": "order"}

        assert task.from_fhir(resource).value == an_action(intent=TaskIntent.ORDER)

    def test_reports_the_focus(self) -> None:
        resource = task.to_fhir(an_action()) | {"focus": {"reference": "MedicationRequest/m1"}}

        assert task.from_fhir(resource).unmapped == (
            Unmapped("Task.focus", "this element has no place in the domain"),
        )
