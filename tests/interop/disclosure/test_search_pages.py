"""Search pages through the gate (issue 13.3): R4 `_total`, paging without a total, and a search
that discloses its page only: the records it decided merely to count are neither logged as
disclosed nor labelled in the Bundle."""

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.tables import DisclosureLogRow
from tests.builders import care_plan
from tests.interop.disclosure.conftest import World, acting_as, as_, make


def three_plans(anonymous: TestClient, world: World) -> list[str]:
    """The client's plan and two more, all the detox unit's (Part 2 data): ids, oldest first."""
    detox = acting_as(anonymous, world.detox_partner)
    more = [make(detox, care_plan(world.client_ref))["id"] for _ in range(2)]
    return [world.plan_id, *more]


def plans(anonymous: TestClient, world: World, **params: Any) -> dict[str, Any]:
    response = anonymous.get(
        "/fhir/CarePlan",
        params={"patient": world.client_ref, **params},
        headers=as_(anonymous, world.a),
    )
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    return bundle


def relations(bundle: dict[str, Any]) -> list[str]:
    return [link["relation"] for link in bundle["link"]]


def disclosed(settings: Settings, requester: str) -> list[str]:
    """The references the log holds as permitted to `requester` in searches."""
    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = session.exec(
            select(DisclosureLogRow)
            .where(col(DisclosureLogRow.requester) == requester)
            .where(col(DisclosureLogRow.interaction) == "search")
            .where(col(DisclosureLogRow.decision) == "permit")
        )
        found = [row.resources for row in rows]
    engine.dispose()
    return found


def test_total_none_pages_by_next_link_and_counts_nothing(
    anonymous: TestClient, world: World
) -> None:
    ids = three_plans(anonymous, world)
    first = plans(anonymous, world, _total="none", _count="2")
    assert "total" not in first
    assert [e["resource"]["id"] for e in first["entry"]] == ids[:2]
    assert relations(first) == ["self", "first", "next"]
    last = plans(anonymous, world, _total="none", _count="2", _offset="2")
    assert [e["resource"]["id"] for e in last["entry"]] == ids[2:]
    assert "next" not in relations(last)
    assert "_total=none" in last["link"][0]["url"]


def test_total_accurate_counts_only_what_is_released(anonymous: TestClient, world: World) -> None:
    three_plans(anonymous, world)
    counted = plans(anonymous, world, _total="accurate", _count="1")
    assert counted["total"] == 3
    assert relations(counted) == ["self", "first", "next", "last"]
    unconsented = anonymous.get(
        "/fhir/CarePlan",
        params={"patient": world.client_ref, "_total": "accurate"},
        headers=as_(anonymous, world.b),
    ).json()
    assert unconsented["total"] == 0
    assert "entry" not in unconsented or unconsented["entry"] == []


def test_a_search_logs_as_disclosed_only_the_page_it_sends(
    anonymous: TestClient, world: World, settings: Settings
) -> None:
    ids = three_plans(anonymous, world)
    page = plans(anonymous, world, _count="1", _offset="1")
    assert page["total"] == 3
    assert [e["resource"]["id"] for e in page["entry"]] == [ids[1]]
    logged = " ".join(disclosed(settings, world.a.organization))
    assert f"CarePlan/{ids[1]}" in logged
    assert f"CarePlan/{ids[0]}" not in logged
    assert f"CarePlan/{ids[2]}" not in logged


def test_an_unknown_total_mode_is_a_client_error(anonymous: TestClient, world: World) -> None:
    response = anonymous.get(
        "/fhir/CarePlan", params={"_total": "exact"}, headers=as_(anonymous, world.a)
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        "_total must be one of none, estimate, accurate, not 'exact'"
    )
