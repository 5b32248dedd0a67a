"""Concurrent writers against a real server: no lost update, no half-written version."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.builders import patient
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e


def test_only_one_of_many_racing_updates_wins(live_server: LiveServer) -> None:
    created = httpx.post(
        f"{live_server.base}/Patient", json=patient(), headers=live_server.headers
    ).json()
    url = f"{live_server.base}/Patient/{created['id']}"

    def attempt(n: int) -> int:
        body = {**created, "name": [{"family": f"Racer{n}"}]}
        headers = {**live_server.headers, "If-Match": 'W/"1"'}
        return httpx.put(url, json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(8)))
    assert statuses.count(200) == 1
    assert set(statuses) <= {200, 409, 412}
    history = httpx.get(f"{url}/_history", headers=live_server.headers).json()
    assert history["total"] == 2
    current = httpx.get(url, headers=live_server.headers).json()
    assert current["meta"]["versionId"] == "2"
