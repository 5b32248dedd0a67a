"""Patient/{id}/$everything through the disclosure gate: the compartment the requester may see,
paged by key, `_type`, `_since` and `_count` (R4 Patient-everything)."""

import time
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from interop.store.fhirdates import format_instant
from tests.builders import care_plan
from tests.interop.disclosure.conftest import make
from tests.interop.export.conftest import World, as_


def kinds(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["resourceType"] for entry in bundle.get("entry", [])]


def walk(client: TestClient, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every page, following `next`."""
    pages: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        links = {link["relation"]: link["url"] for link in pages[-1]["link"]}
        next_url = links.get("next")
    return pages


class TestEverything:
    def test_consented_partner_gets_the_compartment_labelled(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        response = anonymous.get(f"/fhir/{world.client_ref}/$everything", headers=headers)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "searchset"
        assert kinds(bundle) == ["Patient", "CarePlan", "Consent"]
        assert "42CFRPart2" in {c["code"] for c in bundle["meta"]["security"]}

    def test_without_consent_the_patient_is_unknown(
        self, anonymous: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.b)
        hidden = anonymous.get(f"/fhir/{world.client_ref}/$everything", headers=headers)
        unknown = anonymous.get("/fhir/Patient/nobody/$everything", headers=headers)
        assert hidden.status_code == unknown.status_code == 404
        assert "Partwo" not in hidden.text

    def test_pages_by_count_type_and_since(
        self, anonymous: TestClient, client: TestClient, world: World
    ) -> None:
        headers = as_(anonymous, world.a)
        url = f"/fhir/{world.client_ref}/$everything"
        pages = walk(anonymous, f"{url}?_count=1", headers)
        # A full page always links on (whether anything follows is not told, lest a withheld
        # record be inferred), so the walk may end on an empty page.
        assert [kinds(page) for page in pages] == [["Patient"], ["CarePlan"], ["Consent"], []]
        assert "total" not in pages[0]
        plans = anonymous.get(url, params={"_type": "CarePlan"}, headers=headers).json()
        assert kinds(plans) == ["CarePlan"]
        time.sleep(0.01)
        since = format_instant(datetime.now(UTC))
        time.sleep(0.01)
        # The detox unit's own new plan, released to A under the same consent.
        from tests.interop.disclosure.conftest import acting_as

        later = make(acting_as(anonymous, world.detox_partner), care_plan(world.client_ref))
        recent = anonymous.get(url, params={"_since": since}, headers=headers).json()
        assert [e["resource"]["id"] for e in recent["entry"]] == [later["id"]]
        assert anonymous.get(url, params={"start": "2020"}, headers=headers).status_code == 400
        assert client is not None
