"""Annotated dependencies: the services, the client's format, the base URL, the parsed body.

Those that do no I/O are `async def`: FastAPI runs them on the event loop, where a plain `def`
dependency would cost each request one more hop to the thread pool."""

from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from adapters import fhir_xml
from interop.api.formats import (
    ContentTooLarge,
    Format,
    empty_body,
    request_format,
    response_format,
)
from interop.services.bundles import BundleService
from interop.services.numbers import whole_number
from interop.services.resources import ResourceService
from interop.settings import Settings
from mappings import fhir


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _resources(request: Request) -> ResourceService:
    service: ResourceService = request.app.state.resources
    return service


async def _bundles(request: Request) -> BundleService:
    service: BundleService = request.app.state.bundles
    return service


async def _base_url(request: Request) -> str:
    """The FHIR base partners see: the configured public URL, or this request's own."""
    settings = _settings(request)
    root = settings.public_base_url or str(request.base_url)
    return root.rstrip("/") + "/fhir"


async def _body(request: Request) -> dict[str, Any]:
    """The request's FHIR resource, parsed by its Content-Type, within the size limit."""
    body = await _read_body(request)
    if body is None:
        raise empty_body()
    return body


async def _optional_body(request: Request) -> dict[str, Any] | None:
    """As `_body`, for an operation whose parameters may all be left out: no body at all, and
    none read from a GET, whose parameters are in its URL."""
    if request.method != "POST":
        return None
    if request.headers.get("content-length", "0") == "0" and "content-type" not in request.headers:
        return None
    return await _read_body(request)


async def _read_body(request: Request) -> dict[str, Any] | None:
    fmt = request_format(request)
    limit = _settings(request).max_request_bytes
    declared = whole_number(request.headers.get("content-length", ""))
    if declared is not None and declared > limit:
        raise ContentTooLarge(f"the body exceeds the limit of {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise ContentTooLarge(f"the body exceeds the limit of {limit} bytes")
    if not raw.strip():
        return None
    return fhir.parse_json(bytes(raw)) if fmt is Format.JSON else fhir_xml.parse_xml(bytes(raw))


async def _strict(request: Request) -> bool:
    """`Prefer: handling=strict` turns ignored search parameters into errors."""
    return "handling=strict" in request.headers.get("prefer", "").replace(" ", "")


ResourcesDep = Annotated[ResourceService, Depends(_resources)]
BundlesDep = Annotated[BundleService, Depends(_bundles)]


async def _response_format(request: Request) -> Format:
    return response_format(request)


FormatDep = Annotated[Format, Depends(_response_format)]
BaseUrlDep = Annotated[str, Depends(_base_url)]
BodyDep = Annotated[dict[str, Any], Depends(_body)]
OptionalBodyDep = Annotated[dict[str, Any] | None, Depends(_optional_body)]
StrictDep = Annotated[bool, Depends(_strict)]
