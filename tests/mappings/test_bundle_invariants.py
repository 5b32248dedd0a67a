"""validate(): the R4 Bundle invariants bdl-1 to bdl-12 (hl7.org/fhir/R4/bundle.html#invs).

Each is reported as the other invariants are: an error of code "invariant" whose text starts
with the key, at the Bundle (bdl-5 and bdl-8, constraints on Bundle.entry, at the entry), as
the reference validator reports them. The Bundles the service itself builds keep to them.
"""

from datetime import UTC, datetime
from typing import Any

import pytest

from mappings import fhir, handoff, subscription
from mappings.errors import InvalidResource, Issue
from tests.mappings.test_handoff import a_handoff

UUID = "urn:uuid:0f3d28ae-4c27-49eb-987d-c35d536b40f8"
OTHER = "urn:uuid:9b9c2c1e-8c83-4bd1-a0a4-2b1d1c3f0a11"
BASE = "https://interop.example.org/fhir"
PATIENT = {"resourceType": "Patient", "id": "p1"}
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "information", "code": "informational"}],
}
COMPOSITION = {
    "resourceType": "Composition",
    "status": "final",
    "type": {"coding": [{"system": "http://loinc.org", "code": "18761-7"}]},
    "date": "2026-12-07T10:00:00Z",
    "author": [{"reference": "Organization/o1"}],
    "title": "Transfer summary",
}
MESSAGE_HEADER = {
    "resourceType": "MessageHeader",
    "eventCoding": {"system": "http://example.org/events", "code": "referral"},
    "source": {"endpoint": "https://interop.example.org/messages"},
}
DOCUMENT_HEADER = {
    "identifier": {"system": "urn:ietf:rfc:3986", "value": UUID},
    "timestamp": "2026-12-07T10:00:00Z",
}
REQUEST = {"method": "POST", "url": "Patient"}
RESPONSE = {"status": "201 Created"}


def bundle(kind: str, *entries: dict[str, Any], **elements: Any) -> dict[str, Any]:
    more = {"entry": list(entries)} if entries else {}
    return {"resourceType": "Bundle", "type": kind, **more, **elements}


def patient_entry(full_url: str = UUID, **elements: Any) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": PATIENT, **elements}


def document(*entries: dict[str, Any], **elements: Any) -> dict[str, Any]:
    return bundle("document", *entries, **{**DOCUMENT_HEADER, **elements})


def without(resource: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != name}


def _issues(resource: dict[str, Any]) -> list[Issue]:
    with pytest.raises(InvalidResource) as raised:
        fhir.validate(resource)
    return list(raised.value.issues)


def _broken(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(invariant key, expression) of every bdl-* issue validate() raises for the resource."""
    return {
        (issue.diagnostics.partition(":")[0], issue.expression[0])
        for issue in _issues(resource)
        if issue.diagnostics.startswith("bdl-")
    }


BROKEN = [
    # bdl-1: total only when a search or history
    pytest.param(bundle("collection", total=3), "bdl-1", "Bundle", id="bdl-1-collection"),
    pytest.param(
        bundle("transaction", {"resource": PATIENT, "request": REQUEST}, total=1),
        "bdl-1",
        "Bundle",
        id="bdl-1-transaction",
    ),
    # bdl-2: entry.search only when a search
    pytest.param(
        bundle("collection", patient_entry(search={"mode": "match"})),
        "bdl-2",
        "Bundle",
        id="bdl-2-collection",
    ),
    pytest.param(
        bundle(
            "history",
            patient_entry(request=REQUEST, response=RESPONSE, search={"mode": "match"}),
        ),
        "bdl-2",
        "Bundle",
        id="bdl-2-history",
    ),
    # bdl-3: entry.request mandatory for batch/transaction/history, otherwise prohibited
    pytest.param(bundle("transaction", patient_entry()), "bdl-3", "Bundle", id="bdl-3-missing"),
    pytest.param(
        bundle("history", patient_entry(response=RESPONSE)), "bdl-3", "Bundle", id="bdl-3-history"
    ),
    pytest.param(
        bundle("collection", patient_entry(request=REQUEST)), "bdl-3", "Bundle", id="bdl-3-extra"
    ),
    # bdl-4: entry.response mandatory for batch-response/transaction-response/history
    pytest.param(
        bundle("batch-response", {"resource": OUTCOME}), "bdl-4", "Bundle", id="bdl-4-missing"
    ),
    pytest.param(
        bundle("history", patient_entry(request=REQUEST)), "bdl-4", "Bundle", id="bdl-4-history"
    ),
    pytest.param(
        bundle("searchset", patient_entry(response=RESPONSE)), "bdl-4", "Bundle", id="bdl-4-extra"
    ),
    # bdl-5: a resource unless there's a request or response
    pytest.param(
        bundle("collection", patient_entry(), {"fullUrl": OTHER}),
        "bdl-5",
        "Bundle.entry[1]",
        id="bdl-5",
    ),
    # bdl-7: fullUrl unique, or versions told apart by meta.versionId (except in histories)
    pytest.param(
        bundle("collection", patient_entry(), patient_entry()), "bdl-7", "Bundle", id="bdl-7"
    ),
    pytest.param(
        bundle(
            "collection",
            {"fullUrl": UUID, "resource": {**PATIENT, "meta": {"versionId": "2"}}},
            {"fullUrl": UUID, "resource": {**PATIENT, "meta": {"versionId": "2"}}},
        ),
        "bdl-7",
        "Bundle",
        id="bdl-7-same-version",
    ),
    # bdl-8: fullUrl cannot be a version specific reference
    pytest.param(
        bundle("collection", patient_entry(f"{BASE}/Patient/p1/_history/2")),
        "bdl-8",
        "Bundle.entry[0]",
        id="bdl-8",
    ),
    # bdl-9: a document has an identifier with a system and a value
    pytest.param(
        without(document(patient_entry(OTHER, resource=COMPOSITION)), "identifier"),
        "bdl-9",
        "Bundle",
        id="bdl-9-none",
    ),
    pytest.param(
        document(patient_entry(OTHER, resource=COMPOSITION), identifier={"value": "d1"}),
        "bdl-9",
        "Bundle",
        id="bdl-9-no-system",
    ),
    # bdl-10: a document has a date
    pytest.param(
        without(document(patient_entry(OTHER, resource=COMPOSITION)), "timestamp"),
        "bdl-10",
        "Bundle",
        id="bdl-10",
    ),
    # bdl-11: a document starts with a Composition
    pytest.param(
        document(patient_entry(), patient_entry(OTHER, resource=COMPOSITION)),
        "bdl-11",
        "Bundle",
        id="bdl-11",
    ),
    pytest.param(document(), "bdl-11", "Bundle", id="bdl-11-no-entries"),
    # bdl-12: a message starts with a MessageHeader
    pytest.param(
        bundle("message", patient_entry(), patient_entry(OTHER, resource=MESSAGE_HEADER)),
        "bdl-12",
        "Bundle",
        id="bdl-12",
    ),
    # a Bundle inside a Bundle is held to them too, with its own type
    pytest.param(
        bundle("collection", {"fullUrl": UUID, "resource": bundle("collection", total=0)}),
        "bdl-1",
        "Bundle.entry[0].resource",
        id="nested",
    ),
]


@pytest.mark.parametrize(("resource", "key", "expression"), BROKEN)
def test_refuses_a_bundle_breaking_an_invariant(
    resource: dict[str, Any], key: str, expression: str
) -> None:
    assert (key, expression) in _broken(resource)


def test_reports_as_the_other_invariants_are_reported() -> None:
    """The tester's Bundle: no longer "no errors found"."""
    [issue] = _issues({"resourceType": "Bundle", "type": "collection", "total": 3})

    assert (issue.severity, issue.code, issue.expression) == ("error", "invariant", ("Bundle",))
    assert issue.diagnostics == (
        "bdl-1: total only when a search or history (the type is 'collection')"
    )


def test_names_the_entries_that_break_a_rule() -> None:
    entries = [
        patient_entry(f"urn:uuid:{index:08d}-0000-4000-8000-000000000000") for index in range(8)
    ]
    resource = bundle("transaction", *entries, {"resource": PATIENT, "request": REQUEST})

    [issue] = _issues(resource)

    assert issue.diagnostics.endswith(
        "(the type is 'transaction'; a request is missing from entries 0, 1, 2, 3, 4 and 3 more)"
    )


VALID = [
    pytest.param(
        bundle(
            "searchset",
            patient_entry(f"{BASE}/Patient/p1", search={"mode": "match"}),
            {"resource": OUTCOME, "search": {"mode": "outcome"}},
            total=1,
        ),
        id="searchset",
    ),
    pytest.param(
        bundle(
            "history",
            patient_entry(f"{BASE}/Patient/p1", request=REQUEST, response=RESPONSE),
            {  # the deletion: a version without a resource
                "fullUrl": f"{BASE}/Patient/p1",
                "request": {"method": "DELETE", "url": "Patient/p1"},
                "response": {"status": "204 No Content"},
            },
            total=2,
        ),
        id="history-repeats-full-urls",
    ),
    pytest.param(
        bundle(
            "transaction",
            patient_entry(request=REQUEST),
            {"request": {"method": "DELETE", "url": "Patient/p2"}},
        ),
        id="transaction",
    ),
    pytest.param(bundle("batch", {"request": {"method": "GET", "url": "Patient/p1"}}), id="batch"),
    pytest.param(
        bundle(
            "transaction-response",
            {"response": {"status": "201 Created", "location": "Patient/p1/_history/1"}},
            {  # a GET search entry answered with its searchset (interop.services.bundles)
                "resource": bundle("searchset", patient_entry(search={"mode": "match"}), total=1),
                "response": {"status": "200 OK"},
            },
        ),
        id="transaction-response",
    ),
    pytest.param(
        bundle("batch-response", {"response": {"status": "404 Not Found", "outcome": OUTCOME}}),
        id="batch-response",
    ),
    pytest.param(
        bundle(
            "collection",
            {"fullUrl": UUID, "resource": {**PATIENT, "meta": {"versionId": "1"}}},
            {"fullUrl": UUID, "resource": {**PATIENT, "meta": {"versionId": "2"}}},
        ),
        id="collection-of-versions",
    ),
    pytest.param(
        document(patient_entry(OTHER, resource=COMPOSITION), patient_entry()), id="document"
    ),
    pytest.param(
        bundle("message", patient_entry(OTHER, resource=MESSAGE_HEADER), patient_entry()),
        id="message",
    ),
]


@pytest.mark.parametrize("resource", VALID)
def test_accepts_a_bundle_keeping_to_them(resource: dict[str, Any]) -> None:
    fhir.validate(resource)


@pytest.mark.parametrize(
    "full_url",
    [
        f"{BASE}/Patient/p2",
        f"{BASE}/Patient/p2/_history/1",
        f"{BASE}/Observation/p1",
        "http://x/Patient/2",
    ],
)
def test_a_restful_full_url_names_its_resources_type_and_id(full_url: str) -> None:
    """R4 Bundle.entry.fullUrl: "if the fullUrl looks like a RESTful server URL (e.g. meets
    the regex), then the 'id' portion of the fullUrl SHALL end with the Resource.id"."""
    issues = [
        issue
        for issue in _issues(bundle("collection", patient_entry(full_url)))
        if not issue.diagnostics.startswith("bdl-")
    ]

    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("error", "value", ("Bundle.entry[0]",))
    ]
    assert "R4 Bundle.entry.fullUrl" in issues[0].diagnostics


@pytest.mark.parametrize(
    "entry",
    [
        patient_entry(f"{BASE}/Patient/p1"),
        patient_entry("urn:oid:1.2.840.10008.1"),
        patient_entry("https://records.example.org/people/Jane/2"),  # no resource type there
        {"fullUrl": f"{BASE}/Patient/2", "resource": {"resourceType": "Patient"}},  # no id
    ],
)
def test_a_full_url_that_names_no_other_resource_is_kept(entry: dict[str, Any]) -> None:
    fhir.validate(bundle("collection", entry))


@pytest.mark.parametrize("kind", ["handshake", "event-notification"])
@pytest.mark.parametrize("content", ["empty", "id-only"])
def test_a_subscription_notification_keeps_to_them(kind: str, content: str) -> None:
    """A history Bundle: every entry with a request and a response, the focus unversioned."""
    focus = f"{BASE}/Task/t1" if kind == "event-notification" else None
    notification = subscription.notification(
        f"{BASE}/Subscription/s1", kind, 1, focus, datetime(2026, 12, 7, tzinfo=UTC), content
    )

    fhir.validate(notification)


def test_a_handoff_bundle_keeps_to_them() -> None:
    fhir.validate(handoff.to_fhir(a_handoff()))
