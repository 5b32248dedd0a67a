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
