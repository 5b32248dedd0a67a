"""The disclosure world (a detox unit's client; partner A holds the client's consent, partner B
none) and a client for the Bulk Data protocol."""

import time
from typing import Any

from fastapi.testclient import TestClient

from tests.interop.disclosure.conftest import World, as_, world

__all__ = ["World", "as_", "export", "finished", "world"]

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def export(client: TestClient, path: str, headers: dict[str, str], **params: Any) -> str:
    """Kick off; the status URL from Content-Location."""
    response = client.get(path, params=params, headers={**ASYNC, **headers})
    assert response.status_code == 202, response.text
    location: str = response.headers["Content-Location"]
    return location


def finished(client: TestClient, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll as the IG says until the manifest comes (the app's worker runs the job)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = client.get(status_url, headers={"Accept": "application/json", **headers})
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert response.headers["Retry-After"].isdigit()
        assert len(response.headers["X-Progress"]) < 100
        time.sleep(0.05)
    raise AssertionError("the export did not finish")


def lines(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    import orjson

    response = client.get(url, headers={"Accept": "application/fhir+ndjson", **headers})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in response.content.splitlines() if line]
