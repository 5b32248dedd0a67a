"""Search (R4 §3.1.1): parameters of each kind, modifiers, prefixes, sorting, paging, includes."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from consent.vocabulary import ACT_CODE, ICD10CM, LOINC, SNOMED_CT
from tests.builders import (
    MRN,
    PLACER,
    care_plan,
    organization,
    part2_consent,
    part2_program,
    patient,
    service_request,
    task,
)
from tests.conftest import RegisteredPartner
from tests.interop.fhir.test_crud import create


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def search(client: TestClient, resource_type: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/fhir/{resource_type}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "searchset"
    return body


@pytest.fixture
def people(client: TestClient) -> dict[str, str]:
    made = {
        "ines": create(
            client, patient(family="Núñez", given="Inés", mrn="MRN-10", birthDate="1985-07-01")
        ),
        "jo": create(
            client, patient(family="Nunn", given="Jo", mrn="MRN-11", birthDate="1992-01-20")
        ),
        "kim": create(
            client, patient(family="Okafor", given="Kim", mrn="MRN-12", birthDate="1992-11-03")
        ),
    }
    return {name: body["id"] for name, body in made.items()}


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _coded(
    resource_type: str, subject: str, element: str, coding: dict[str, str]
) -> dict[str, Any]:
    """A Condition or MedicationStatement with `coding` (code "X" when it names none) in the
    CodeableConcept `element` (a Condition's category is a list of them)."""
    concept = {"coding": [{"code": "X", **coding}]}
    resource: dict[str, Any] = {"resourceType": resource_type, "subject": {"reference": subject}}
    if resource_type == "Condition":
        resource["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        }
    else:
        resource["status"] = "active"
    resource[element] = [concept] if element == "category" else concept
    return resource


class TestTokenAndString:
    def test_identifier_system_and_code(self, client: TestClient, people: dict[str, str]) -> None:
        assert ids(search(client, "Patient", identifier=f"{MRN}|MRN-11")) == [people["jo"]]
        assert ids(search(client, "Patient", identifier="MRN-11")) == [people["jo"]]
        assert search(client, "Patient", identifier="other-system|MRN-11")["total"] == 0
        assert search(client, "Patient", identifier=f"{MRN}|")["total"] == 3

    @pytest.mark.parametrize(
        ("stored", "asked"),
        [
            ("http://hl7.org/fhir/sid/us-ssn", "urn:oid:2.16.840.1.113883.4.1"),
            ("urn:oid:2.16.840.1.113883.4.1", "http://hl7.org/fhir/sid/us-ssn"),
        ],
        ids=["stored-url-asked-oid", "stored-oid-asked-url"],
    )
    def test_an_identifier_system_in_either_spelling_finds_the_other(
        self, client: TestClient, stored: str, asked: str
    ) -> None:
        """Review 9 F7: the SSN's and the NPI's OIDs are their FHIR URLs (consent.vocabulary),
        in the index as in the consent engine."""
        ssn = {"system": stored, "value": "123-45-6789"}
        made = create(client, patient(family="Spelling", mrn="MRN-20", identifier=[ssn]))
        assert ids(search(client, "Patient", identifier=f"{asked}|123-45-6789")) == [made["id"]]
        assert ids(search(client, "Patient", identifier=f"{stored}|123-45-6789")) == [made["id"]]

    @pytest.mark.parametrize(
        ("resource_type", "element", "param", "url", "oid", "code"),
        [
            ("Condition", "code", "code", ICD10CM, "urn:oid:2.16.840.1.113883.6.90", "F11.20"),
            ("Condition", "code", "code", SNOMED_CT, "urn:oid:2.16.840.1.113883.6.96", "5602001"),
            (
                "Condition",
                "category",
                "category",
                LOINC,
                "urn:oid:2.16.840.1.113883.6.1",
                "75310-3",
            ),
            (
                "MedicationStatement",
                "medicationCodeableConcept",
                "code",
                RXNORM,
                "urn:oid:2.16.840.1.113883.6.88",
                "1010600",
            ),
        ],
        ids=["icd-10-cm", "snomed", "loinc", "rxnorm"],
    )
    @pytest.mark.parametrize("stored_as_oid", [False, True], ids=["stored-url", "stored-oid"])
    def test_a_code_system_in_either_spelling_finds_the_other(
        self,
        client: TestClient,
        people: dict[str, str],
        resource_type: str,
        element: str,
        param: str,
        url: str,
        oid: str,
        code: str,
        stored_as_oid: bool,
    ) -> None:
        """A code system's HL7 OID is its FHIR URL (consent.vocabulary.canonical_system), in
        the index as in the consent engine: C-CDA writes the OID, partners search by the URL.
        The stored resource keeps the spelling it was written with."""
        stored, asked = (oid, url) if stored_as_oid else (url, oid)
        subject = f"Patient/{people['jo']}"
        written = _coded(resource_type, subject, element, {"system": stored, "code": code})
        made = create(client, written)["id"]
        sibling = create(client, _coded(resource_type, subject, element, {"system": url}))["id"]
        for system in (asked, stored):
            assert ids(search(client, resource_type, **{param: f"{system}|{code}"})) == [made]
            assert sorted(ids(search(client, resource_type, **{param: f"{system}|"}))) == sorted(
                [made, sibling]
            )
        icd10_who = "urn:oid:2.16.840.1.113883.6.3"  # a system none of these is
        assert search(client, resource_type, **{param: f"{icd10_who}|{code}"})["total"] == 0
        read = client.get(f"/fhir/{resource_type}/{made}")
        assert read.status_code == 200, read.text
        assert read.json()[element] == written[element]

    @pytest.mark.parametrize(
        ("stored", "asked"),
        [(ACT_CODE, "urn:oid:2.16.840.1.113883.5.4"), ("urn:oid:2.16.840.1.113883.5.4", ACT_CODE)],
        ids=["stored-url-asked-oid", "stored-oid-asked-url"],
    )
    def test_a_security_label_system_in_either_spelling_finds_the_other(
        self, client: TestClient, people: dict[str, str], stored: str, asked: str
    ) -> None:
        """Consent?security-label= reads the same token index: the v3-ActCode OID a C-CDA
        consent writes finds its THO URL, and the URL the OID."""
        subject = f"Patient/{people['jo']}"
        program = create(client, part2_program())["id"]
        recipient = create(client, organization("Bayview Clinic"))["id"]
        consent = part2_consent(subject, f"Organization/{program}", f"Organization/{recipient}")
        consent["provision"]["provision"][0]["securityLabel"] = [{"system": stored, "code": "SUD"}]
        made = create(client, consent)["id"]
        assert ids(search(client, "Consent", **{"security-label": f"{asked}|SUD"})) == [made]
        assert ids(search(client, "Consent", **{"security-label": f"{stored}|SUD"})) == [made]

    def test_string_is_prefix_case_and_accent_insensitive(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        assert sorted(ids(search(client, "Patient", name="nun"))) == sorted(
            [people["ines"], people["jo"]]
        )
        assert ids(search(client, "Patient", **{"name:exact": "Núñez"})) == [people["ines"]]
        assert search(client, "Patient", **{"name:exact": "nunez"})["total"] == 0
        assert ids(search(client, "Patient", **{"family:contains": "kafo"})) == [people["kim"]]

    def test_values_are_ored_and_parameters_anded(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        either = search(client, "Patient", identifier="MRN-10,MRN-12")
        assert sorted(ids(either)) == sorted([people["ines"], people["kim"]])
        both = client.get("/fhir/Patient", params=[("name", "nun"), ("birthdate", "ge1990")]).json()
        assert ids(both) == [people["jo"]]

    def test_not_and_missing(self, client: TestClient, people: dict[str, str]) -> None:
        pat = f"Patient/{people['jo']}"
        active = create(client, care_plan(pat, status="active"))
        create(client, care_plan(pat, status="completed", period=None))
        assert ids(search(client, "CarePlan", **{"status:not": "completed"})) == [active["id"]]
        assert search(client, "CarePlan", **{"date:missing": "true"})["total"] == 1


class TestDates:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("1992", ["jo", "kim"]),
            ("1992-01", ["jo"]),
            ("gt1990", ["jo", "kim"]),
            ("lt1990-01-01", ["ines"]),
            ("ge1992-11-03", ["kim"]),
            ("le1985-07-01", ["ines"]),
            ("ne1992", ["ines"]),
            ("sa1992-01-20", ["kim"]),
            ("eb1992-01-20", ["ines"]),
        ],
    )
    def test_prefixes_compare_ranges(
        self, client: TestClient, people: dict[str, str], value: str, expected: list[str]
    ) -> None:
        found = search(client, "Patient", birthdate=value, _sort="birthdate")
        assert ids(found) == [people[name] for name in expected]

    def test_period_overlap(self, client: TestClient, people: dict[str, str]) -> None:
        plan = create(client, care_plan(f"Patient/{people['jo']}"))  # 2026-01-05 .. 2026-06-30
        assert ids(search(client, "CarePlan", date="ge2026-03-01")) == [plan["id"]]
        assert search(client, "CarePlan", date="gt2026-07-01")["total"] == 0
        assert ids(search(client, "CarePlan", date="lt2026-01-06")) == [plan["id"]]

    def test_last_updated(self, client: TestClient, people: dict[str, str]) -> None:
        assert search(client, "Patient", _lastUpdated="gt2000-01-01")["total"] == 3
        assert search(client, "Patient", _lastUpdated="lt2000-01-01")["total"] == 0

    def test_bad_date_is_400(self, client: TestClient) -> None:
        response = client.get("/fhir/Patient", params={"birthdate": "yesterday"})
        assert response.status_code == 400
        assert response.json()["issue"][0]["code"] == "invalid"


class TestReferences:
    def test_referral_task_by_focus_owner_and_patient(
        self, client: TestClient, people: dict[str, str], harness: RegisteredPartner
    ) -> None:
        pat = f"Patient/{people['kim']}"
        program = create(client, organization("Riverside Residential"))
        referral = create(
            client,
            service_request(
                pat,
                requester=harness.organization,
                performer=[{"reference": f"Organization/{program['id']}"}],
            ),
        )
        fulfil = create(
            client,
            task(
                f"ServiceRequest/{referral['id']}",
                pat,
                requester=harness.organization,
                owner={"reference": f"Organization/{program['id']}"},
                businessStatus={"text": "awaiting review"},
            ),
        )
        assert ids(search(client, "Task", focus=f"ServiceRequest/{referral['id']}")) == [
            fulfil["id"]
        ]
        assert ids(search(client, "Task", owner=program["id"])) == [fulfil["id"]]
        assert ids(search(client, "Task", patient=pat)) == [fulfil["id"]]
        assert ids(search(client, "Task", patient=f"http://testserver/fhir/{pat}")) == [
            fulfil["id"]
        ]
        assert ids(search(client, "ServiceRequest", performer=f"Organization/{program['id']}")) == [
            referral["id"]
        ]
        assert ids(search(client, "ServiceRequest", identifier=f"{PLACER}|REF-1")) == [
            referral["id"]
        ]
        assert search(client, "Task", patient="Patient/someone-else")["total"] == 0

    def test_absolute_reference_to_another_server_is_not_local(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        remote = "https://partner.example.org/fhir/Patient/" + people["kim"]
        create(client, care_plan(remote))
        assert search(client, "CarePlan", patient=f"Patient/{people['kim']}")["total"] == 0
        assert search(client, "CarePlan", subject=remote)["total"] == 1

    def test_include_and_revinclude(
        self, client: TestClient, people: dict[str, str], harness: RegisteredPartner
    ) -> None:
        pat = f"Patient/{people['ines']}"
        referral = create(client, service_request(pat, requester=harness.organization))
        fulfil = create(
            client, task(f"ServiceRequest/{referral['id']}", pat, requester=harness.organization)
        )
        found = search(client, "Task", _id=fulfil["id"], _include=["Task:focus", "Task:patient"])
        assert ids(found) == [fulfil["id"]]
        assert sorted(ids(found, "include")) == sorted([referral["id"], people["ines"]])
        assert found["total"] == 1
        rev = search(client, "ServiceRequest", _id=referral["id"], _revinclude="Task:focus")
        assert ids(rev, "include") == [fulfil["id"]]
        iterate = client.get(
            "/fhir/Task",
            params=[
                ("_id", fulfil["id"]),
                ("_include", "Task:focus"),
                ("_include:iterate", "ServiceRequest:subject"),
            ],
        ).json()
        assert sorted(ids(iterate, "include")) == sorted([referral["id"], people["ines"]])
        everything = search(client, "Task", _id=fulfil["id"], _include="*")
        assert sorted(ids(everything, "include")) == sorted(
            [referral["id"], people["ines"], harness.organization.partition("/")[2]]
        )

    def test_consent_actor_found_at_any_depth(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        program = create(client, organization("County Primary Care"))
        consent = {
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
            "patient": {"reference": f"Patient/{people['jo']}"},
            "policyRule": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
                ]
            },
            "provision": {
                "type": "deny",
                "provision": [
                    {
                        "type": "permit",
                        "actor": [
                            {
                                "role": {
                                    "coding": [
                                        {
                                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP",
                                        }
                                    ]
                                },
                                "reference": {"reference": f"Organization/{program['id']}"},
                            }
                        ],
                        "purpose": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                "code": "TREAT",
                            }
                        ],
                    }
                ],
            },
        }
        made = create(client, consent)
        assert ids(search(client, "Consent", actor=f"Organization/{program['id']}")) == [made["id"]]
        assert ids(
            search(client, "Consent", purpose="TREAT", patient=f"Patient/{people['jo']}")
        ) == [made["id"]]


class TestResultParameters:
    def test_paging_links_walk_every_match_once(self, client: TestClient) -> None:
        made = {create(client, patient(mrn=f"P-{n}"))["id"] for n in range(7)}
        seen: list[str] = []
        page = search(client, "Patient", _count=3)
        pages = 1
        while True:
            seen.extend(ids(page))
            following = [link["url"] for link in page["link"] if link["relation"] == "next"]
            if not following:
                break
            query = parse_qs(urlsplit(following[0]).query)
            page = search(client, "Patient", **{k: v[0] for k, v in query.items()})
            pages += 1
        assert pages == 3
        assert sorted(seen) == sorted(made)
        assert page["total"] == 7

    def test_sort_ascending_and_descending(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        ascending = ids(search(client, "Patient", _sort="birthdate"))
        assert ascending == [people["ines"], people["jo"], people["kim"]]
        assert ids(search(client, "Patient", _sort="-birthdate")) == ascending[::-1]
        assert ids(search(client, "Patient", _sort="family")) == [
            people["ines"],
            people["jo"],
            people["kim"],
        ]

    def test_summary_count_has_total_and_no_entries(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        counted = search(client, "Patient", _summary="count")
        assert counted["total"] == 3
        assert counted.get("entry", []) == []

    def test_unknown_parameter_is_reported_or_refused_when_strict(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        lenient = search(client, "Patient", shoe_size="42")
        assert lenient["total"] == 3
        outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
        assert "shoe_size" in outcome[0]["resource"]["issue"][0]["diagnostics"]
        assert all("shoe_size" not in link["url"] for link in lenient["link"])
        strict = client.get(
            "/fhir/Patient", params={"shoe_size": "42"}, headers={"Prefer": "handling=strict"}
        )
        assert strict.status_code == 400

    @pytest.mark.parametrize(
        "chained", ["general-practitioner:Organization.name", "general-practitioner.name"]
    )
    def test_a_chained_parameter_is_reported_not_answered_as_no_match(
        self, client: TestClient, people: dict[str, str], chained: str
    ) -> None:
        """Chaining is not supported: the search runs without it and says so (R4 §3.1.1.5),
        or is refused under handling=strict, rather than answering that nothing matches."""
        lenient = search(client, "Patient", **{chained: "Harbor"})
        assert lenient["total"] == 3
        outcome = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
        assert chained in outcome[0]["resource"]["issue"][0]["diagnostics"]
        strict = client.get(
            "/fhir/Patient", params={chained: "Harbor"}, headers={"Prefer": "handling=strict"}
        )
        assert strict.status_code == 400
        assert strict.json()["issue"][0]["diagnostics"] == (
            f"unsupported search parameter {chained!r} for Patient"
        )

    def test_a_type_modifier_must_name_a_resource_type(
        self, client: TestClient, people: dict[str, str]
    ) -> None:
        answer = client.get("/fhir/Patient", params={"general-practitioner:Clinic": "x"})
        assert answer.status_code == 400
        assert answer.json()["issue"][0]["diagnostics"] == (
            ":Clinic on general-practitioner is not a resource type"
        )

    def test_post_search_matches_get(self, client: TestClient, people: dict[str, str]) -> None:
        response = client.post("/fhir/Patient/_search", data={"family": "okafor"})
        assert response.status_code == 200
        assert ids(response.json()) == [people["kim"]]
        in_url = client.post("/fhir/Patient/_search?family=okafor")
        assert ids(in_url.json()) == [people["kim"]]

    @pytest.mark.parametrize("media_type", ["application/json", "multipart/form-data; b=x", ""])
    def test_post_search_criteria_in_another_format_are_refused_not_ignored(
        self, client: TestClient, people: dict[str, str], media_type: str
    ) -> None:
        response = client.post(
            "/fhir/Patient/_search",
            content=b'{"family": "okafor"}',
            headers={"Content-Type": media_type} if media_type else {},
        )
        assert response.status_code == 415, response.text
        issue = response.json()["issue"][0]
        assert "application/x-www-form-urlencoded" in issue["diagnostics"]
        assert "entry" not in response.json()
