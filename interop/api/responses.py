"""FhirResponse: FHIR JSON or XML on the wire, with the headers R4 asks for.

JSON goes out as stored bytes or through orjson (Bundles embed stored resources as fragments);
XML is produced from the same JSON at the edge, by mappings.fhir.
"""

from collections.abc import Mapping
from email.utils import format_datetime
from typing import Any

from starlette.responses import Response

from adapters import fhir_xml
from interop.api.formats import Format
from interop.services.resources import StoredVersion
from mappings import fhir


class FhirResponse(Response):
    """A FHIR resource (or nothing) in the negotiated format."""

    def __init__(
        self,
        body: dict[str, Any] | bytes | None,
        *,
        fmt: Format,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        content = b"" if body is None else _encode(body, fmt)
        super().__init__(
            content=content,
            status_code=status_code,
            headers=dict(headers or {}),
            media_type=None if body is None else f"{fmt.value}; charset=utf-8",
        )


def _encode(body: dict[str, Any] | bytes, fmt: Format) -> bytes:
    """JSON as stored; XML re-read with decimals kept exact (1.50 stays 1.50)."""
    json = body if isinstance(body, bytes) else fhir.to_json(body)
    if fmt is Format.JSON:
        return json
    return fhir_xml.to_xml(fhir.parse_json(json))


def version_headers(stored: StoredVersion, location: str | None = None) -> dict[str, str]:
    """ETag and Last-Modified of a version, and its Location after a write (R4 §3.1.0.4)."""
    headers = {
        "ETag": f'W/"{stored.version_id}"',
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }
    if location is not None:
        headers["Location"] = location
    return headers
