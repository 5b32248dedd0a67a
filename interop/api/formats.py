"""Content negotiation: JSON or XML, by `_format`, Accept and Content-Type (R4 §3.1.0.1.10)."""

from enum import StrEnum

from starlette.requests import Request

from interop.services.errors import ServiceError
from mappings.errors import Issue, MalformedContent


class Format(StrEnum):
    JSON = "application/fhir+json"
    XML = "application/fhir+xml"


_ALIASES: dict[str, Format] = {
    "json": Format.JSON,
    "application/json": Format.JSON,
    "application/fhir+json": Format.JSON,
    "application/json+fhir": Format.JSON,
    "text/json": Format.JSON,
    "xml": Format.XML,
    "application/xml": Format.XML,
    "application/fhir+xml": Format.XML,
    "application/xml+fhir": Format.XML,
    "text/xml": Format.XML,
}
_ANY = frozenset({"*/*", "application/*"})


class NotAcceptable(ServiceError):
    """The client accepts no format this server writes: 406."""

    issue_code = "not-supported"


class UnsupportedMediaType(ServiceError):
    """The body is in a format this server does not read: 415."""

    issue_code = "not-supported"


class ContentTooLarge(ServiceError):
    issue_code = "too-costly"


def response_format(request: Request) -> Format:
    """`_format` wins over Accept; no preference means JSON."""
    requested = request.query_params.get("_format")
    if requested is not None:
        chosen = _ALIASES.get(_media_type(requested))
        version = _parameter(requested, "fhirversion")
        if chosen is None or (version is not None and not _is_r4(version)):
            raise NotAcceptable(f"_format {requested[:40]!r} is not supported; use json or xml")
        return chosen
    accept = request.headers.get("accept")
    if not accept:
        return Format.JSON
    for media_type in _by_quality(accept):
        if media_type in _ANY:
            return Format.JSON
        if media_type in _ALIASES:
            return _ALIASES[media_type]
    if "text/html" in accept and "fhirversion" not in accept.lower():
        return Format.JSON  # a browser: show it JSON rather than refuse (one naming no version)
    raise NotAcceptable("Accept names no format this server writes (application/fhir+json or +xml)")


def request_format(request: Request) -> Format:
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise UnsupportedMediaType("a body needs a Content-Type: application/fhir+json or +xml")
    version = _parameter(content_type, "fhirversion")
    if version is not None and not _is_r4(version):
        raise UnsupportedMediaType(
            f"the body is FHIR {version[:10]!r}; this server reads FHIR R4 (fhirVersion=4.0)"
        )
    chosen = _ALIASES.get(_media_type(content_type))
    if chosen is None:
        raise UnsupportedMediaType(
            f"Content-Type {content_type[:60]!r} is not supported; "
            "use application/fhir+json or application/fhir+xml"
        )
    return chosen


def _is_r4(version: str) -> bool:
    return version.strip().strip('"') in ("4.0", "4.0.1")


def _parameter(value: str, wanted: str) -> str | None:
    """A media type's parameter by its lower-case name (RFC 9110 §8.3.1: names are
    case-insensitive)."""
    for parameter in value.split(";")[1:]:
        name, _, found = parameter.partition("=")
        if name.strip().lower() == wanted:
            return found.strip()
    return None


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _by_quality(accept: str) -> list[str]:
    """Media types of an Accept header, most preferred first; q=0 means 'not this', and so
    does a FHIR version other than R4's (R4 §3.1.0.1.4: `fhirVersion=4.0`)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media_type, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif name.strip().lower() == "fhirversion" and not _is_r4(value):
                quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, media_type.lower()))
    return [media_type for _, _, media_type in sorted(ranked)]


def empty_body() -> MalformedContent:
    return MalformedContent((Issue("fatal", "structure", "the request has no body"),))
