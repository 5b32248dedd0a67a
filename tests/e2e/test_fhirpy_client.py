"""An independent FHIR client library (fhirpy) against the server running as its own process."""

from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound, ResourceNotFound

from tests.builders import MRN, patient, service_request, task
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def test_create_read_search_and_page(live_server: LiveServer) -> None:
    client = SyncFHIRClient(live_server.base, authorization=live_server.authorization)
    created = [
        client.resource("Patient", **patient(mrn=f"E2E-{n}", family=f"Pagewalker{n}"))
        for n in range(12)
    ]
    for resource in created:
        resource.save()
    first = created[0]
    fetched = client.reference("Patient", first.id).to_resource()
    assert fetched["name"][0]["family"] == "Pagewalker0"
    everyone = client.resources("Patient").search(identifier=f"{MRN}|").limit(5).fetch_all()
    assert sorted(p.id for p in everyone) == sorted(p.id for p in created)
    assert client.resources("Patient").search(family="pagewalker1").count() == 3  # 1, 10, 11
    with pytest.raises(ResourceNotFound):
        client.reference("Patient", "nobody-here").to_resource()


def test_update_with_a_stale_version_is_refused(live_server: LiveServer) -> None:
    client = SyncFHIRClient(live_server.base, authorization=live_server.authorization)
    resource = client.resource("Patient", **patient(family="Versioned"))
    resource.save()
    resource["active"] = True
    resource.save()
    assert resource["meta"]["versionId"] == "2"
    stale = SyncFHIRClient(
        live_server.base,
        authorization=live_server.authorization,
        extra_headers={"If-Match": 'W/"1"'},
    )
    with pytest.raises(MultipleResourcesFound) as refused:  # fhirpy's name for any 412
        stale.resource("Patient", **{**resource.serialize(), "active": False}).save()
    assert "current version is 2" in str(refused.value)
    assert client.reference("Patient", resource.id).to_resource()["active"] is True


def test_transaction_through_the_client(live_server: LiveServer) -> None:
    client = SyncFHIRClient(live_server.base, authorization=live_server.authorization)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:aaaa0000-0000-4000-8000-000000000001",
                "resource": patient(mrn="E2E-T"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:aaaa0000-0000-4000-8000-000000000002",
                "resource": service_request(
                    "urn:uuid:aaaa0000-0000-4000-8000-000000000001",
                    requester=live_server.organization,
                ),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "resource": task(
                    "urn:uuid:aaaa0000-0000-4000-8000-000000000002",
                    "urn:uuid:aaaa0000-0000-4000-8000-000000000001",
                    requester=live_server.organization,
                ),
                "request": {"method": "POST", "url": "Task"},
            },
        ],
    }
    response = client.execute("", method="post", data=bundle)
    assert [entry["response"]["status"] for entry in response["entry"]] == ["201 Created"] * 3
    tasks = (
        client.resources("Task")
        .search(patient=response["entry"][0]["response"]["location"].split("/_history")[0])
        .fetch()
    )
    assert len(tasks) == 1
    assert tasks[0]["focus"]["reference"].startswith("ServiceRequest/")
