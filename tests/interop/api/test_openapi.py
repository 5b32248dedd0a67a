"""openapi/openapi.json is the document the app publishes; regenerate it with `make openapi`."""

from interop.cli import openapi_document
from tests.conftest import REPOSITORY


def test_exported_openapi_is_current() -> None:
    exported = (REPOSITORY / "openapi" / "openapi.json").read_bytes()
    assert exported == openapi_document(), "openapi/openapi.json is out of date: run `make openapi`"
