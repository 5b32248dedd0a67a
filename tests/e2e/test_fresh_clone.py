"""The README's two commands on a fresh clone: no ../shared beside it, no ./var, no caches.

The clone is the working tree as git would check it out (tracked and new files, nothing
ignored), copied into a temporary folder whose parent holds no `shared`. The two commands'
equivalents run there with this repository's interpreter (a real `make` would install a
virtualenv from the network): the tests that read the external corpora skip, each saying
which corpus is absent, and the server starts on an empty embedded database under ./var/."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPOSITORY
from tests.e2e.conftest import free_port, wait_until_serving

pytestmark = pytest.mark.e2e


def _checkout(destination: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPOSITORY / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = _checkout(tmp_path / "recovery-interop")
    assert not (folder.parent / "shared").exists()
    return folder


def _environment(clone: Path) -> dict[str, str]:
    unset = {"DATABASE_URL", "PUBLIC_BASE_URL", "TEST_POSTGRES_URL", "PYTHONPATH"}
    kept = {k: v for k, v in os.environ.items() if k not in unset}
    return {**kept, "PYTHONPATH": str(clone)}


def test_make_test_on_a_fresh_clone_skips_the_corpus_tests_saying_why(clone: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "corpus", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=_environment(clone),
    )

    assert ran.returncode == 0, ran.stdout[-4000:]
    assert " failed" not in ran.stdout
    assert "test_every_official_example_is_listed" not in ran.stdout.split("SKIPPED")[0]
    skipped = [line for line in ran.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped
    assert all("is absent (it lives in ../shared beside the repository)" in s for s in skipped)


def test_make_run_on_a_fresh_clone_serves_an_empty_database(clone: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "interop", "serve", "--port", str(port)],
            cwd=clone,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=_environment(clone),
        )
    try:
        root = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{root}/fhir/metadata", process, log)
        configuration = httpx.get(f"{root}/fhir/.well-known/smart-configuration").json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert configuration["token_endpoint"] == f"{root}/auth/token"
    assert (clone / "var" / "interop.sqlite3").is_file()
    assert f"serving {root}" in log.read_text()
