"""The external corpora the mapping tests read, from ../shared beside the repository."""

from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORPORA = SHARED / "corpora"
VALID_FOLDERS = (("fhir-r4-examples",), ("fhir-r4-examples", "extras"), ("fhir-r4-examples", "ds4p-ig"))


def corpus_params(*folders: tuple[str, ...], pattern: str = "*.json") -> list[Any]:
    """The files of corpus folders as pytest params, or one skipped param saying why."""
    missing = [CORPORA.joinpath(*folder) for folder in folders if not CORPORA.joinpath(*folder).is_dir()]
    if missing:
        reason = f"external corpus {missing[0]} is absent (it lives in ../shared beside the repository)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason))]
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
