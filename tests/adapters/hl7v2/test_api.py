"""The package's public surface, and the layering rule that adapters never reach the service."""

import importlib
import subprocess
import sys

import pytest

MODULES = ["", ".er7", ".messages", ".ack", ".mllp", ".errors", ".outbound", ".client"]


@pytest.mark.parametrize("suffix", MODULES)
def test_every_exported_name_exists(suffix: str) -> None:
    module = importlib.import_module("adapters.hl7v2" + suffix)
    exported = module.__all__
    assert sorted(exported) == sorted(set(exported))
    assert [name for name in exported if not hasattr(module, name)] == []


def test_the_adapter_imports_no_service_web_or_database_code() -> None:
    probe = (
        "import sys, adapters.hl7v2; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'interop', 'fastapi', 'starlette', 'sqlmodel', 'sqlalchemy', 'httpx', 'mappings'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
