"""`interop forms approve|list` as compliance staff run it, in its own process (PART2.md C9)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

pytestmark = pytest.mark.e2e

FORM = "https://forms.harbor-detox.example.org/part2-tpo-consent/v1"


def interop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interop", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_form_is_approved_once_and_listed(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'forms.sqlite3'}"
    statements = ("right-to-revoke", "redisclosure-risk", "refusal-consequences")
    options = [item for code in statements for item in ("--statement", code)]

    approved = interop(
        "forms", "approve", FORM, *options, "--by", "cora.compliance", "--database-url", database
    )

    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"approved {FORM}: {' '.join(statements)}"
    again = interop(
        "forms", "approve", FORM, "--statement", "right-to-revoke", "--database-url", database
    )
    assert again.returncode == 0, again.stderr
    [line] = interop("forms", "list", "--database-url", database).stdout.splitlines()
    form, listed, by, _at = line.split("\t")
    assert (form, listed, by) == (FORM, "right-to-revoke", "cli")


def test_an_unknown_statement_is_refused_in_one_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'forms.sqlite3'}"

    refused = interop(
        "forms", "approve", FORM, "--statement", "everything", "--database-url", database
    )

    assert refused.returncode != 0
    assert refused.stderr.startswith("error: unknown statements everything")
    assert len(refused.stderr.strip().splitlines()) == 1
