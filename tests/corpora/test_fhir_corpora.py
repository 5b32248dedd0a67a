"""The official HL7 R4 examples go in and come back equal; the validator's invalid cases are
each refused with an OperationOutcome. Read from ../shared/corpora, never copied here."""

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from interop.store.search_params import SUPPORTED_TYPES
from tests.conftest import CORPORA, corpus

pytestmark = pytest.mark.corpus

SERVED = ("CarePlan", "Task", "ServiceRequest", "Consent", "Goal", "Patient", "Organization")
EXAMPLES = CORPORA / "fhir-r4-examples"
INVALID = CORPORA / "fhir-invalid"
MEDIA = {".json": "application/fhir+json", ".xml": "application/fhir+xml"}


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _absent(folder: Path, values: int) -> Any:
    """One param that skips its test, saying which corpus is missing (a fresh clone)."""
    reason = f"external corpus {folder} is absent (it lives in ../shared beside the repository)"
    return pytest.param(*[None] * values, id="absent", marks=pytest.mark.skip(reason=reason))


def _example_files() -> list[Any]:
    if not EXAMPLES.is_dir():
        return [_absent(EXAMPLES, 1)]
    return [path for kind in SERVED for path in _files(EXAMPLES, f"{kind}-*.json")]


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


def _canonical_narrative(resource: dict[str, Any]) -> dict[str, Any]:
    """XHTML compared as XML (C14N), since `&quot;` and `"` are the same text."""
    if "text" not in resource:
        return resource
    div = etree.tostring(etree.fromstring(resource["text"]["div"]), method="c14n")
    return {**resource, "text": {**resource["text"], "div": div}}


@pytest.mark.parametrize("path", _example_files(), ids=lambda path: path.name)
def test_official_example_round_trips(client: TestClient, path: Path) -> None:
    corpus("fhir-r4-examples")
    example = json.loads(path.read_text(encoding="utf-8"))
    url = f"/fhir/{example['resourceType']}/{example['id']}"
    written = client.put(
        url, content=path.read_bytes(), headers={"Content-Type": "application/fhir+json"}
    )
    assert written.status_code == 201, written.text
    assert _without_meta(client.get(url).json()) == _without_meta(example)
    as_xml = client.get(url, params={"_format": "xml"})
    reposted = client.post(
        f"/fhir/{example['resourceType']}",
        content=as_xml.content,
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert reposted.status_code == 201, reposted.text
    from_xml = _canonical_narrative({**reposted.json(), "id": example["id"]})
    assert _without_meta(from_xml) == _without_meta(_canonical_narrative(example))


def test_every_served_type_has_examples() -> None:
    corpus("fhir-r4-examples")
    kinds = {path.name.split("-")[0] for path in _example_files()}
    assert kinds == set(SERVED)


def _invalid_cases() -> list[Any]:
    manifest = INVALID / "MANIFEST.txt"
    if not manifest.is_file():
        return [_absent(INVALID, 2)]
    cases: dict[str, str] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        file_name, _test, resource_type, *_rest = line.split("\t")
        cases.setdefault(file_name, resource_type)
    return [(kind, INVALID / name) for name, kind in sorted(cases.items())]


@pytest.mark.parametrize(
    ("resource_type", "path"), _invalid_cases(), ids=lambda value: getattr(value, "name", value)
)
def test_invalid_case_is_refused_with_an_outcome(
    client: TestClient, resource_type: str, path: Path
) -> None:
    corpus("fhir-invalid")
    kind = "Patient" if resource_type == "(unparseable)" else resource_type
    headers = {"Content-Type": MEDIA[path.suffix]}
    if kind in SUPPORTED_TYPES:
        response = client.post(f"/fhir/{kind}", content=path.read_bytes(), headers=headers)
        assert response.status_code in (400, 422), response.text
        assert client.get(f"/fhir/{kind}", params={"_summary": "count"}).json()["total"] == 0
    else:
        response = client.post(
            f"/fhir/{kind}/$validate", content=path.read_bytes(), headers=headers
        )
        assert response.status_code in (200, 400, 422), response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(issue["severity"] in ("error", "fatal") for issue in outcome["issue"])
