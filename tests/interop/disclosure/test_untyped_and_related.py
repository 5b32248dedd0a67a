"""Two refusals as partners write them were not honoured (external tester, findings 1 and 2).

1. The R4 examples' own withholdings (`consent-example-notThem`, `-notThis`) write the
   patient's refusal as an untyped provision under policyRule OPTIN: it was read as neither a
   permit nor a deny, so the refused partner went on reading. R4 makes a provision "an
   exception to the base policy"; untyped, it is now read as a deny (PART2.md C8).
2. `provision.data.meaning` `related` and `dependents` reached the instance alone. R4
   consent-data-meaning: related = "the instance of the resource and instances it refers
   to"; dependents = "the instance of the resource and instances that refer to it".

The world: a detox unit's client with a care plan, partner A holding the client's consent.
"""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import service_request, task
from tests.conftest import corpus, needs_corpus
from tests.interop.disclosure.conftest import FHIR_JSON, World, acting_as, as_, make

PRCP = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
    ]
}


def _not_them(world: World, reference: dict[str, Any]) -> dict[str, Any]:
    """`consent-example-notThem` as published (OPTIN, an untyped root naming a PRCP actor,
    actions access and correct), for the client, its actor pointed at `reference`."""
    published: dict[str, Any] = json.loads(
        (corpus("fhir-r4-examples") / "Consent-consent-example-notThem.json").read_text()
    )
    del published["id"]
    published["patient"] = {"reference": world.client_ref}
    published["organization"] = [{"reference": world.detox}]
    published["performer"] = [{"reference": world.client_ref}]
    published["provision"]["actor"][0]["reference"] = reference
    return published


def _refusal(world: World, provision: dict[str, Any]) -> dict[str, Any]:
    """A signed refusal for the client, written as the EHR writes it."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": world.client_ref},
        "dateTime": "2026-02-01T10:00:00Z",
        "performer": [{"reference": world.client_ref}],
        "organization": [{"reference": world.detox}],
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": provision,
    }


def _reads(anonymous: TestClient, world: World, path: str) -> int:
    return anonymous.get(f"/fhir/{path}", headers=as_(anonymous, world.a)).status_code


@pytest.mark.corpus
@needs_corpus("fhir-r4-examples")
@pytest.mark.parametrize(
    "names_a",
    [
        pytest.param(lambda w: {"reference": w.a.organization}, id="by-reference"),
        pytest.param(
            lambda w: {
                "identifier": {
                    "system": "urn:oid:2.16.840.1.113883.3.9999.10",
                    "value": "Riverside Residential",
                }
            },
            id="by-identifier",
        ),
    ],
)
def test_the_not_them_example_refuses_the_partner_it_names(
    anonymous: TestClient, world: World, names_a: Any
) -> None:
    """Finding 1: stored by the detox unit's EHR, the example refuses partner A at once; the
    answer to the write says how the untyped provision was read."""
    detox = acting_as(anonymous, world.detox_partner)
    plan = f"CarePlan/{world.plan_id}"
    assert _reads(anonymous, world, plan) == 200

    stored = detox.post(
        "/fhir/Consent",
        json=_not_them(world, names_a(world)),
        headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )

    assert stored.status_code == 201, stored.text
    assert _reads(anonymous, world, plan) == 404
    said = [issue["diagnostics"] for issue in stored.json()["issue"]]
    assert not any("no provision permits or denies anything" in text for text in said), said
    assert any("read as a deny" in text for text in said), said


def test_an_untyped_provision_naming_a_record_refuses_it(
    anonymous: TestClient, world: World
) -> None:
    """Finding 1, the notThis shape: an untyped provision with only `data`."""
    detox = acting_as(anonymous, world.detox_partner)
    plan = f"CarePlan/{world.plan_id}"
    other = make(detox, task(plan, world.client_ref, requester=world.detox))
    assert _reads(anonymous, world, plan) == 200

    make(
        detox,
        _refusal(world, {"data": [{"meaning": "instance", "reference": {"reference": plan}}]}),
    )

    assert _reads(anonymous, world, plan) == 404
    assert _reads(anonymous, world, f"Task/{other['id']}") == 200


def _referral(anonymous: TestClient, world: World) -> tuple[str, str]:
    """A ServiceRequest and the Task whose focus it is, both the detox unit's."""
    detox = acting_as(anonymous, world.detox_partner)
    order = make(detox, service_request(world.client_ref, requester=world.detox))
    job = make(
        detox, task(f"ServiceRequest/{order['id']}", world.client_ref, requester=world.detox)
    )
    return f"ServiceRequest/{order['id']}", f"Task/{job['id']}"


def _data_refusal(world: World, meaning: str, reference: str) -> dict[str, Any]:
    return _refusal(
        world,
        {"type": "deny", "data": [{"meaning": meaning, "reference": {"reference": reference}}]},
    )


def test_a_related_refusal_reaches_what_its_record_refers_to(
    anonymous: TestClient, world: World
) -> None:
    """Finding 2: a refusal of the Task "and related" reaches the ServiceRequest it focuses
    and the Patient it is for; the care plan, which the Task does not name, stays."""
    order, job = _referral(anonymous, world)
    for path in (order, job, world.client_ref):
        assert _reads(anonymous, world, path) == 200, path

    make(acting_as(anonymous, world.detox_partner), _data_refusal(world, "related", job))

    for path in (order, job, world.client_ref):
        assert _reads(anonymous, world, path) == 404, path
    assert _reads(anonymous, world, f"CarePlan/{world.plan_id}") == 200


def test_a_related_refusal_of_a_record_not_stored_refuses_that_record_alone(
    anonymous: TestClient, world: World
) -> None:
    """Fail closed where it matters: nothing is read of a record that is not here, and the
    refusal still names it; nothing else is refused on its account."""
    order, job = _referral(anonymous, world)

    make(acting_as(anonymous, world.detox_partner), _data_refusal(world, "related", "Task/nowhere"))

    assert _reads(anonymous, world, job) == 200
    assert _reads(anonymous, world, order) == 200


def test_a_dependents_refusal_reaches_what_refers_to_its_record(
    anonymous: TestClient, world: World
) -> None:
    """Finding 2: a refusal of the ServiceRequest "and dependents" reaches the Task pointing
    at it."""
    order, job = _referral(anonymous, world)

    make(acting_as(anonymous, world.detox_partner), _data_refusal(world, "dependents", order))

    assert _reads(anonymous, world, order) == 404
    assert _reads(anonymous, world, job) == 404


def test_a_dependents_refusal_leaves_records_that_do_not_refer_to_its_record(
    anonymous: TestClient, world: World
) -> None:
    order, _job = _referral(anonymous, world)

    make(acting_as(anonymous, world.detox_partner), _data_refusal(world, "dependents", order))

    assert _reads(anonymous, world, f"CarePlan/{world.plan_id}") == 200
