"""Every error leaves as an OperationOutcome (FHIR routes) or a problem detail (the rest).

The status of each typed error comes from the one table in interop.services.outcomes; this
module only adds what belongs to HTTP: negotiation of the error's format, the framework's own
errors (unknown route, wrong method, unparseable parameters) and the catch-all.
"""

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from interop.api.auth.routes import OidcDisabled
from interop.api.formats import (
    ContentTooLarge,
    Format,
    NotAcceptable,
    UnsupportedMediaType,
    response_format,
)
from interop.api.problems import problem, reason_phrase
from interop.api.responses import FhirResponse
from interop.api.security import STAFF_CHALLENGE, CsrfRejected, StaffUnauthenticated
from interop.services.errors import ScopeInsufficient, ServiceError, TransactionFailed
from interop.services.outcomes import outcome, outcome_of, status_of
from interop.services.tokens import TokenRefused, Unauthenticated
from mappings.errors import FhirContentError, Issue

logger = logging.getLogger("interop.api")

_HTTP_ONLY: dict[type[Exception], int] = {
    NotAcceptable: 406,
    UnsupportedMediaType: 415,
    ContentTooLarge: 413,
}
_ISSUE_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthenticated, _unauthenticated)
    app.add_exception_handler(TokenRefused, _token_refused)
    app.add_exception_handler(StaffUnauthenticated, _staff_unauthenticated)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.add_exception_handler(OidcDisabled, _oidc_disabled)
    app.add_exception_handler(ScopeInsufficient, _scope_insufficient)
    app.add_exception_handler(ServiceError, _typed_error)
    app.add_exception_handler(FhirContentError, _typed_error)
    app.add_exception_handler(TransactionFailed, _typed_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


def is_fhir_request(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def fhir_error(request: Request, status: int, document: dict[str, Any]) -> Response:
    """The OperationOutcome in the client's format, or JSON when that cannot be negotiated."""
    try:
        fmt = response_format(request)
    except NotAcceptable:
        fmt = Format.JSON
    return FhirResponse(document, fmt=fmt, status_code=status)


async def _typed_error(request: Request, error: Exception) -> Response:
    status = _HTTP_ONLY.get(type(error)) or status_of(error)
    if not is_fhir_request(request):
        detail = error.message if isinstance(error, ServiceError) else str(error)
        return problem(status, detail)
    return fhir_error(request, status, outcome_of(error))


async def _unauthenticated(request: Request, error: Exception) -> Response:
    """401 with the Bearer challenge of RFC 6750 §3; the body says nothing about the data
    (a problem detail on the C-CDA drop, whose other errors are problem details too)."""
    if request.url.path.startswith("/inbound/"):
        response = problem(401, str(error))
    else:
        response = fhir_error(request, 401, outcome(Issue("error", "login", str(error))))
    assert isinstance(error, Unauthenticated)
    challenge = f'{_CHALLENGE}, error="invalid_token"' if error.presented else _CHALLENGE
    response.headers["WWW-Authenticate"] = challenge
    return response


_CHALLENGE = 'Bearer realm="fhir"'


async def _scope_insufficient(request: Request, error: Exception) -> Response:
    """403 with the Bearer challenge's insufficient_scope (RFC 6750 §3.1)."""
    response = await _typed_error(request, error)
    response.headers["WWW-Authenticate"] = f'{_CHALLENGE}, error="insufficient_scope"'
    return response


async def _token_refused(_request: Request, error: Exception) -> Response:
    """OAuth 2.0 error response (RFC 6749 §5.2)."""
    assert isinstance(error, TokenRefused)
    body = {"error": error.error, "error_description": error.description}
    headers = {"Cache-Control": "no-store"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="token"'
    return Response(
        orjson.dumps(body), status_code=error.status, media_type="application/json", headers=headers
    )


async def _staff_unauthenticated(_request: Request, _error: Exception) -> Response:
    """401 with the challenge of the staff routes, whose credential is the session cookie."""
    return problem(
        401, "sign in at /auth/login first", headers={"WWW-Authenticate": STAFF_CHALLENGE}
    )


async def _oidc_disabled(_request: Request, _error: Exception) -> Response:
    return problem(404, "OpenID Connect sign-in is not configured here")


async def _csrf_rejected(_request: Request, _error: Exception) -> Response:
    return problem(
        403, "CSRF check failed: send the session's CSRF token in the X-CSRF-Token header"
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    detail = _http_detail(request, error.status_code)
    if not is_fhir_request(request):
        said = str(error.detail)  # the framework's own reason (a malformed form), if it gave one
        phrase = reason_phrase(error.status_code)
        response = problem(error.status_code, detail if said == phrase else said[:200])
    else:
        code = _ISSUE_CODES.get(error.status_code, "processing")
        response = fhir_error(request, error.status_code, outcome(Issue("error", code, detail)))
    if error.headers:
        response.headers.update(error.headers)
    if error.status_code == 405:
        response.headers["Allow"] = ", ".join(sorted(_methods_of(request.app.routes, request)))
    return response


def _methods_of(routes: Iterable[BaseRoute], request: Request) -> set[str]:
    """RFC 9110 §15.5.6: Allow lists every method the target takes. The router names only
    the first route matching the path, and a FHIR resource's methods are several routes."""
    methods: set[str] = set()
    for route in routes:
        inner = getattr(route, "routes", None) or getattr(
            getattr(route, "original_router", None), "routes", None
        )
        if inner is not None:
            methods |= _methods_of(inner, request)
            continue
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= getattr(route, "methods", None) or set()
    return methods


def _http_detail(request: Request, status: int) -> str:
    if status == 404:
        return f"no such route: {request.url.path[:200]}"
    if status == 405:
        return f"{request.method} is not supported on {request.url.path[:200]}"
    return "the request could not be processed"


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    messages = "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
    )
    if not is_fhir_request(request):
        return problem(422, messages)
    return fhir_error(request, 400, outcome(Issue("error", "invalid", messages)))


async def _unexpected_error(request: Request, error: Exception) -> Response:
    """Log the kind of failure, never its message: messages can carry patient data."""
    route = getattr(request.scope.get("route"), "path", "(no route)")
    logger.error("unhandled %s on %s %s", type(error).__name__, request.method, route)
    if not is_fhir_request(request):
        return problem(500, "the server could not complete the request")
    return fhir_error(request, 500, outcome_of(error))
