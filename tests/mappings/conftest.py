"""The external corpora the mapping tests read, from ../shared beside the repository."""

from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPORA = SHARED / "corpora"
VALID_FOLDERS = (
    ("fhir-r4-examples",),
    ("fhir-r4-examples", "extras"),
    ("fhir-r4-examples", "ds4p-ig"),
)


def absent(path: Path, values: int = 1) -> Any:
    """A param that skips its test, saying which corpus path is missing."""
    reason = f"external corpus {path} is absent (it lives in ../shared beside the repository)"
    return pytest.param(*[None] * values, marks=pytest.mark.skip(reason=reason))


def corpus_params(*folders: tuple[str, ...], pattern: str = "*.json") -> list[Any]:
    """The files of corpus folders as pytest params, or one skipped param saying why."""
    for folder in folders:
        if not CORPORA.joinpath(*folder).is_dir():
            return [absent(CORPORA.joinpath(*folder))]
    files = [
        path
        for folder in folders
        for path in sorted(CORPORA.joinpath(*folder).glob(pattern))
        if path.name != "package.json"
    ]
    return [pytest.param(path, id=str(path.relative_to(CORPORA))) for path in files]


def valid_examples() -> list[Any]:
    """Every official R4 example, related type and DS4P example the corpus holds."""
    return corpus_params(*VALID_FOLDERS)


def example(name: str, folder: str = "fhir-r4-examples") -> Path:
    """One corpus file; the calling test skips, saying why, when the corpus is absent."""
    path = CORPORA / folder / name
    if not path.is_file():
        pytest.skip(
            f"external corpus {path} is absent (it lives in ../shared beside the repository)"
        )
    return path
