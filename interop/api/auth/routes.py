"""SMART Backend Services discovery and token endpoint; staff sign-in and sign-out."""

import html
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from interop.api.deps import BaseUrlDep
from interop.api.problems import problem
from interop.api.security import CSRF_HEADER, SESSION_COOKIE, STAFF_CHALLENGE, staff_session
from interop.auth.assertions import ALGORITHMS
from interop.auth.oidc import OidcClient, OidcFailed
from interop.services.staff import LoginFailed, StaffService, StaffSession
from interop.services.tokens import Endpoints, TokenService
from interop.settings import Settings
from interop.sync.identity import SyncIdentity

router = APIRouter(tags=["Authorization"])
_LOGIN_CSRF_COOKIE = "interop_login_csrf"
_OIDC_COOKIE = "interop_oidc"


class OidcDisabled(Exception):
    """OIDC sign-in is not configured on this deployment."""


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CHALLENGED = {"WWW-Authenticate": STAFF_CHALLENGE}


def endpoints(base: str) -> Endpoints:
    """The token URL sits beside the FHIR base: https://host/auth/token for https://host/fhir."""
    return Endpoints(token_url=base.removesuffix("/fhir") + "/auth/token", fhir_base=base)


@router.get("/fhir/.well-known/smart-configuration", operation_id="smart_configuration")
def smart_configuration(request: Request, base: BaseUrlDep) -> JSONResponse:
    """SMART App Launch 2.x §"Conformance": what a backend client needs to obtain a token."""
    return JSONResponse(
        {
            "issuer": base,
            "token_endpoint": endpoints(base).token_url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": [
                "system/*.cruds",
                "system/*.rs",
                "system/*.read",
                "system/*.write",
            ],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }
    )


@router.get("/auth/jwks.json", operation_id="our_jwks")
def our_jwks(request: Request) -> JSONResponse:
    """The public key our client assertions are signed with at partners' token endpoints
    (SMART Backend Services), for partners to register as our JWKS URL; empty when this
    deployment pushes to no partner that needs it."""
    identity: SyncIdentity | None = request.app.state.sync_identity
    keys = identity.jwks() if identity is not None else {"keys": []}
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


@router.post("/auth/token", operation_id="token")
async def token(request: Request, base: BaseUrlDep) -> JSONResponse:
    """client_credentials with a private_key_jwt client assertion (RFC 6749 §4.4, RFC 7523)."""
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    service: TokenService = request.app.state.tokens
    issued = await run_in_threadpool(service.issue, fields, endpoints(base), datetime.now(UTC))
    return JSONResponse(issued, headers=_NO_STORE)


@router.get("/auth/login", operation_id="login_form", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """A sign-in form protected by a double-submit CSRF token."""
    return _login_page(request, "", 200)


def _login_page(request: Request, error: str, status: int) -> HTMLResponse:
    """The form, with a fresh CSRF token and what went wrong last time (if anything)."""
    csrf = secrets.token_urlsafe(32)
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = _LOGIN_PAGE.format(csrf=html.escape(csrf), error=shown)
    headers = {**_NO_STORE, **_CHALLENGED} if status == 401 else _NO_STORE
    response = HTMLResponse(page, status_code=status, headers=headers)
    _set_cookie(request, response, _LOGIN_CSRF_COOKIE, csrf, max_age=900)
    return response


def _from_browser(request: Request) -> bool:
    """A person at the form (the browser asks for HTML) rather than a script (JSON)."""
    return "text/html" in request.headers.get("accept", "")


@router.post("/auth/login", operation_id="login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)],
) -> Response:
    cookie = request.cookies.get(_LOGIN_CSRF_COOKIE)
    browser = _from_browser(request)
    if cookie is None or not secrets.compare_digest(cookie, csrf_token):
        if browser:
            return _login_page(request, "The form had expired: please sign in again.", 403)
        return problem(403, "CSRF check failed: reload the sign-in form and try again")
    service: StaffService = request.app.state.staff
    try:
        session = service.login(username, password, datetime.now(UTC))
    except LoginFailed:
        if browser:
            return _login_page(
                request, "The name or password is wrong, or the account is locked.", 401
            )
        return _sign_in_failed("the name or password is wrong, or the account is locked")
    response = _signed_in(request, session, to_console=browser)
    response.delete_cookie(_LOGIN_CSRF_COOKIE, path="/auth")
    return response


def _signed_in(request: Request, session: StaffSession, *, to_console: bool = False) -> Response:
    """Who signed in, and the session cookie; the CSRF token goes in the body, never a cookie
    (a person at the form lands on the console, whose pages carry the token in their forms)."""
    principal = session.principal
    response: Response = JSONResponse(
        {
            "username": principal.username,
            "role": principal.role.value,
            "csrf_token": session.csrf_token,
        },
        headers=_NO_STORE,
    )
    if to_console:
        response = RedirectResponse("/console", status_code=303, headers=_NO_STORE)
    lifetime = int((session.expires_at - datetime.now(UTC)).total_seconds())
    _set_cookie(request, response, SESSION_COOKIE, session.token, max_age=lifetime)
    return response


@router.get("/auth/oidc/login", operation_id="oidc_login", status_code=302)
def oidc_login(request: Request) -> Response:
    """Send the browser to the identity provider (when OIDC sign-in is configured)."""
    client = _oidc(request)
    url, pending = client.start()
    response = RedirectResponse(url, status_code=302, headers=_NO_STORE)
    settings: Settings = request.app.state.settings
    response.set_cookie(
        _OIDC_COOKIE,
        pending,
        max_age=600,
        path="/auth/oidc",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a cross-site top-level navigation
    )
    return response


@router.get("/auth/oidc/callback", operation_id="oidc_callback")
def oidc_callback(
    request: Request,
    code: Annotated[str, Query(max_length=2000)],
    state: Annotated[str, Query(max_length=200)],
) -> Response:
    """The provider's redirect back: check everything, then open a staff session."""
    client = _oidc(request)
    try:
        username = client.finish(code, state, request.cookies.get(_OIDC_COOKIE))
        service: StaffService = request.app.state.staff
        session = service.login_external(username, datetime.now(UTC))
    except OidcFailed as failed:
        return _sign_in_failed(str(failed))
    except LoginFailed:
        return _sign_in_failed("no enabled account has that name here")
    response = _signed_in(request, session)
    response.delete_cookie(_OIDC_COOKIE, path="/auth/oidc")
    return response


def _oidc(request: Request) -> OidcClient:
    client: OidcClient | None = request.app.state.oidc
    if client is None:
        raise OidcDisabled
    return client


@router.get("/auth/session", operation_id="current_session")
def current_session(session: Annotated[StaffSession, Depends(staff_session)]) -> dict[str, Any]:
    """Who is signed in, and the CSRF token their unsafe requests must send as X-CSRF-Token."""
    return {
        "username": session.principal.username,
        "role": session.principal.role.value,
        "programs": list(session.principal.programs),
        "csrf_token": session.csrf_token,
        "csrf_header": CSRF_HEADER,
    }


@router.post("/auth/logout", operation_id="logout", status_code=204)
def logout(request: Request, session: Annotated[StaffSession, Depends(staff_session)]) -> Response:
    service: StaffService = request.app.state.staff
    service.logout(session.token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int
) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/auth" if name == _LOGIN_CSRF_COOKIE else "/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )


def _sign_in_failed(why: str) -> Response:
    """401 with the staff challenge: the sign-in form is where the session comes from."""
    return problem(401, why, headers=_CHALLENGED)


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recovery Interop: sign in</title>
<link rel="stylesheet" href="/console/static/console.css"></head>
<body><header class="top"><span class="brand">Recovery Interop</span></header>
<main id="main" class="login"><h1>Sign in</h1>
{error}
<form method="post" action="/auth/login">
<input type="hidden" name="csrf_token" value="{csrf}">
<label>Name <input name="username" autocomplete="username" required></label>
<label>Password
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form></main></body></html>
"""
