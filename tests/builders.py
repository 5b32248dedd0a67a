"""Plain builders of synthetic FHIR resources for tests (synthetic people only)."""

from typing import Any


def _without_nones(resource: dict[str, Any]) -> dict[str, Any]:
    """Builders take `element=None` to leave an element out."""
    return {key: value for key, value in resource.items() if value is not None}


PLACER = "urn:oid:2.16.840.1.113883.3.9999.1"
MRN = "urn:oid:2.16.840.1.113883.3.9999.2"


def patient(
    family: str = "Testperson", given: str = "Alex", mrn: str = "MRN-1", **extra: Any
) -> dict[str, Any]:
    return _without_nones(
        {
            "resourceType": "Patient",
            "identifier": [{"system": MRN, "value": mrn}],
            "name": [{"family": family, "given": [given]}],
            "gender": "unknown",
            "birthDate": "1990-04-12",
            **extra,
        }
    )


def organization(name: str = "Harbor Detox Unit", **extra: Any) -> dict[str, Any]:
    return _without_nones({"resourceType": "Organization", "name": name, "active": True, **extra})


def care_plan(patient_ref: str, status: str = "active", **extra: Any) -> dict[str, Any]:
    return _without_nones(
        {
            "resourceType": "CarePlan",
            "status": status,
            "intent": "plan",
            "subject": {"reference": patient_ref},
            "period": {"start": "2026-01-05", "end": "2026-06-30"},
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                            "code": "assess-plan",
                        }
                    ]
                }
            ],
            **extra,
        }
    )


def service_request(
    patient_ref: str, placer: str = "REF-1", requester: str | None = None, **extra: Any
) -> dict[str, Any]:
    return _without_nones(
        {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": PLACER, "value": placer}],
            "status": "active",
            "intent": "order",
            "subject": {"reference": patient_ref},
            "authoredOn": "2026-02-01T10:15:00Z",
            "requester": {"reference": requester} if requester else None,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "385828006"}]},
            **extra,
        }
    )


def task(
    focus_ref: str,
    patient_ref: str,
    status: str = "requested",
    requester: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return _without_nones(
        {
            "resourceType": "Task",
            "status": status,
            "intent": "order",
            "code": {
                "coding": [
                    {"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}
                ]
            },
            "focus": {"reference": focus_ref},
            "for": {"reference": patient_ref},
            "authoredOn": "2026-02-01T10:15:00Z",
            "lastModified": "2026-02-01T10:15:00Z",
            "requester": {"reference": requester} if requester else None,
            **extra,
        }
    )


ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
EXT = "http://recovery-interop.example.org/fhir/StructureDefinition/"
PART2_PROGRAM = EXT + "part2-program"
PART2_FORM = "https://forms.example.org/part2-consent/v1"
"""The form `part2_consent` is signed on (its `policy.uri`), as compliance staff approve it."""
PART2_FORM_STATEMENTS = ("right-to-revoke", "redisclosure-risk")
"""What that form states: the right to revoke (§2.31(a)(6)) and HIPAA redisclosure, which a
covered entity receiving for treatment needs (§2.31(a)(4)(iii))."""


def part2_program(name: str = "Harbor Detox Unit") -> dict[str, Any]:
    """An Organization that is a 42 CFR Part 2 program."""
    return organization(name, extension=[{"url": PART2_PROGRAM, "valueBoolean": True}])


def part2_consent(
    patient_ref: str,
    discloser: str,
    recipient: str,
    *,
    purposes: tuple[str, ...] = ("TREAT",),
    labels: tuple[str, ...] = ("SUD",),
    end: str = "2030-12-31",
    status: str = "active",
    nested_deny: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A §2.31-complete Consent in the representation of mappings/consent.py, signed on the
    form `PART2_FORM` (its signed copy at a URL of its own): relied on once compliance staff
    approved that form (`tests.conftest.approve_part2_form`, PART2.md C9)."""
    permit: dict[str, Any] = {
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
                "reference": {"reference": recipient},
            }
        ],
        "purpose": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": p}
            for p in purposes
        ],
        "securityLabel": [{"system": ACT_CODE, "code": code} for code in labels],
    }
    if nested_deny is not None:
        permit["provision"] = [{"type": "deny", **nested_deny}]
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": "64292-6"}]},
            {"coding": [{"system": ACT_CODE, "code": "42CFRPart2CD"}]},
        ],
        "patient": {"reference": patient_ref, "display": "Alex Testperson"},
        "dateTime": "2026-01-05T10:00:00Z",
        "performer": [{"reference": patient_ref}],
        "organization": [{"reference": discloser}],
        "sourceAttachment": {
            "contentType": "application/pdf",
            "title": "Signed 42 CFR Part 2 consent form",
            "url": "https://forms.example.org/consents/1.pdf",
        },
        "policy": [{"uri": PART2_FORM}],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "42CFRPart2"}]},
        "provision": {
            "type": "deny",
            "period": {"start": "2026-01-05", "end": end},
            "provision": [permit],
        },
    }
