"""Limits a partner cannot exceed (issue 13, point 4): refused with a clear OperationOutcome
before anything is locked or stored, so that one write cannot hold the write lock for minutes
or store a narrative that breaks every XML read of it."""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from interop.services import limits
from interop.settings import Settings
from tests.builders import patient

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def nested_div(depth: int) -> str:
    inner = "<b>deep</b>"
    for _ in range(depth):
        inner = f"<span>{inner}</span>"
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>'


def refused(response: Any, words: str) -> None:
    assert response.status_code == 413, response.text
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert words in issue["diagnostics"]


def test_a_narrative_nested_past_the_limit_is_refused_and_xml_reads_keep_working(
    client: TestClient,
) -> None:
    deep = {**patient(family="Deep"), "text": {"status": "generated", "div": nested_div(300)}}
    refused(client.post("/fhir/Patient", json=deep, headers=FHIR_JSON), "narrative nests")
    fine = {**patient(family="Fine"), "text": {"status": "generated", "div": nested_div(20)}}
    assert client.post("/fhir/Patient", json=fine, headers=FHIR_JSON).status_code == 201
    xml = client.get("/fhir/Patient", params={"_format": "xml"})
    assert xml.status_code == 200, xml.text
    assert '<family value="Fine"/>' in xml.text


@pytest.mark.parametrize(
    "opening",
    ['<span title="/>">', "<span title='>'>", "<span><!-- <i/> -->"],
    ids=["attribute-reading-self-closing", "attribute-holding-gt", "comment"],
)
def test_no_attribute_value_or_comment_hides_a_level_of_a_narrative(
    client: TestClient, opening: str
) -> None:
    """Probe 7, M2: the depth was read off the markup by a pattern, which took an attribute
    value reading "/>" for a self-closing tag; it is counted by an XML parser now."""
    inner = "<b>deep</b>"
    for _ in range(100):
        inner = f"{opening}{inner}</span>"
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>'
    deep = {**patient(family="Hiding"), "text": {"status": "generated", "div": div}}
    refused(client.post("/fhir/Patient", json=deep, headers=FHIR_JSON), "narrative nests")


def test_a_resource_with_too_many_elements_is_refused_before_it_is_stored(
    client: TestClient,
) -> None:
    names = [{"family": f"Name{n}"} for n in range(limits.MAX_ELEMENTS // 2 + 1)]
    huge = {**patient(family="Many"), "name": names, "id": "many-names"}
    refused(client.put("/fhir/Patient/many-names", json=huge, headers=FHIR_JSON), "elements")
    assert client.get("/fhir/Patient/many-names").status_code == 404


def test_a_resource_nested_too_deep_is_refused(client: TestClient) -> None:
    value: dict[str, Any] = {"url": "http://example.org/deep", "valueString": "x"}
    for _ in range(limits.MAX_DEPTH):
        value = {"url": "http://example.org/deep", "extension": [value]}
    deep = {**patient(family="Nested"), "extension": [value]}
    refused(client.post("/fhir/Patient", json=deep, headers=FHIR_JSON), "nests deeper")


def test_a_bundle_with_too_many_entries_is_refused_whole(client: TestClient) -> None:
    entry = {"request": {"method": "GET", "url": "Patient?family=Nobody"}}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [entry] * (limits.MAX_BUNDLE_ENTRIES + 1),
    }
    refused(client.post("/fhir", json=bundle, headers=FHIR_JSON), "at most")


def test_a_transaction_too_costly_in_all_is_refused_before_the_write_lock(
    client: TestClient, settings: Settings
) -> None:
    """Probe 7, H2: a thousand resources each within the limits held the write lock for
    minutes, and everyone else's reads and writes failed meanwhile. What a transaction writes
    in all is bounded, and checked before it takes the lock: here another writer holds the
    lock, and the refusal comes at once."""
    per_patient = limits.MAX_ELEMENTS // 2 - 10
    names = [{"family": "Same"}] * (per_patient // 2)
    entries = [
        {"request": {"method": "POST", "url": "Patient"}, "resource": {**patient(), "name": names}}
        for _ in range(limits.MAX_REQUEST_ELEMENTS // per_patient + 1)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    with held_write_lock(settings) as held:
        started = time.monotonic()
        answer = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        waited = time.monotonic() - started
    refused(answer, "elements in all")
    if held:  # one that waited for the lock would end at the 30 s busy timeout, unrefused
        assert waited < 25
    assert client.get("/fhir/Patient", params={"family": "Same"}).json()["total"] == 0


@contextmanager
def held_write_lock(settings: Settings) -> Iterator[bool]:
    """Another process's writer holding SQLite's write lock (True), or nothing to hold on
    PostgreSQL, whose writers do not take one lock for the database (False)."""
    url = settings.database_url
    if not url.startswith("sqlite"):
        yield False
        return
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield True
    finally:
        connection.execute("ROLLBACK")
        connection.close()


SEARCHES_AT_THE_LIMIT = {
    "name": "family-{n}",
    "_id": "id-{n}",
    "identifier": "urn:example:mrn|MRN-{n}",
    "birthdate": "ge19{n:02}-01-01",
    "general-practitioner": "Organization/org-{n}",
}


@pytest.mark.parametrize("param", sorted(SEARCHES_AT_THE_LIMIT))
def test_a_search_naming_as_many_values_as_the_limit_runs_and_one_more_is_refused(
    client: TestClient, param: str
) -> None:
    make = SEARCHES_AT_THE_LIMIT[param]
    values = [
        make.format(n=n % 100) + ("" if param == "birthdate" else f"-{n}") for n in range(300)
    ]
    at_limit = values[: limits.MAX_SEARCH_VALUES]
    half = len(at_limit) // 2
    repeated = [(param, ",".join(at_limit[:half])), *((param, v) for v in at_limit[half:])]
    answer = client.post(
        "/fhir/Patient/_search",
        content=urlencode(repeated),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "Bundle"
    over = client.get("/fhir/Patient", params=[*repeated, ("_id", "one-more")])
    assert over.status_code == 400, over.text
    issue = over.json()["issue"][0]
    assert issue["code"] == "too-costly"
    assert f"at most {limits.MAX_SEARCH_VALUES} values" in issue["diagnostics"]
