"""`interop token`: a small SMART Backend Services client, so a partner's first request is one
command away. It reads the token endpoint from the server's smart-configuration (so the
assertion's `aud` is whatever address the server announces), signs the assertion with the
partner's key and prints the access token alone, ready for `TOKEN=$(interop token ...)`.
It uses only the standard library's HTTP client, to start at once."""

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer

from interop.cli.common import DEFAULT_ROOT, CliError, read_file, settings

_TIMEOUT_SECONDS = 15


def token(
    client_id: Annotated[str, typer.Argument(help="The client_id `partners add` printed.")],
    key: Annotated[Path, typer.Option(help="The partner's PEM private key (NAME.key.pem).")],
    purpose: Annotated[
        list[str], typer.Option(help="Purpose of use, a v3-ActReason code; repeatable.")
    ] = ["TREAT"],  # noqa: B006
    scope: Annotated[str, typer.Option(help="Scopes to ask for.")] = "system/*.rs",
    server: Annotated[
        str | None,
        typer.Option(help=f"The server's address (default: PUBLIC_BASE_URL or {DEFAULT_ROOT})."),
    ] = None,
) -> None:
    """Trade a signed client assertion for an access token; prints the token."""
    from interop.cli.keys import ASSERTION_TYPE, client_assertion, load_private_key

    purpose = purpose_codes(purpose)
    private = load_private_key(key, read_file(key, "key file", "give the partner's NAME.key.pem"))
    root = (server or settings().public_base_url or DEFAULT_ROOT).rstrip("/")
    configuration = _fetch_json(f"{root}/fhir/.well-known/smart-configuration", None)
    token_url = str(configuration.get("token_endpoint", ""))
    if not token_url:
        raise CliError(f"{root} announces no token_endpoint: is it a Recovery Interop server?")
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(private, client_id, token_url, purpose),
        "scope": scope,
    }
    issued = _fetch_json(token_url, urllib.parse.urlencode(form).encode())
    typer.echo(str(issued["access_token"]))


def purpose_codes(given: list[str]) -> list[str]:
    """The purposes as codes without surrounding whitespace; a blank one is refused here
    rather than signed into the assertion as an empty purpose of use."""
    codes = [text.strip() for text in given]
    if not codes or any(not code or any(c.isspace() for c in code) for code in codes):
        shown = ", ".join(repr(text[:40]) for text in given) or "none"
        raise CliError(
            f"--purpose {shown} is not a purpose of use: give a v3-ActReason code such as "
            "TREAT, HPAYMT or HOPERAT",
            2,
        )
    return codes


def _fetch_json(url: str, form: bytes | None) -> dict[str, Any]:
    """GET (or POST a form to) the URL; one line naming the refusal or why nothing answered."""
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{url} is not an http(s) URL: give --server http://host:port", 2)
    request = urllib.request.Request(url, data=form, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as error:
        raise CliError(f"{url} refused: {_refusal(error)}") from None
    except urllib.error.URLError as error:
        raise CliError(
            f"cannot reach {url} ({error.reason}): start `interop serve`, or give --server "
            "(or PUBLIC_BASE_URL) with the address it runs at"
        ) from None
    except (json.JSONDecodeError, TimeoutError) as error:
        raise CliError(f"{url} did not answer with JSON ({error})") from None


def _refusal(error: urllib.error.HTTPError) -> str:
    """The OAuth error_description (RFC 6749 §5.2) when the server sent one."""
    try:
        body = json.loads(error.read())
    except (json.JSONDecodeError, OSError):
        return f"HTTP {error.code}"
    if isinstance(body, dict) and body.get("error_description"):
        return f"{body.get('error')}: {body['error_description']}"
    return f"HTTP {error.code}"
