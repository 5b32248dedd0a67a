"""Long-running servers (the HTTP API, the MLLP listener) and the OpenAPI export."""

import errno
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import CliError, DatabaseOption, check_database_url, engine, settings

if TYPE_CHECKING:
    from interop.settings import Settings

PortOption = Annotated[int, typer.Option(help="TCP port to listen on.", min=1, max=65535)]
HostOption = Annotated[str, typer.Option(help="Interface to bind; loopback by default.")]


WorkersOption = Annotated[
    int,
    typer.Option(
        help="Worker processes (each a full API process on the same database); 1 serves from "
        "this process.",
        min=1,
        max=64,
    ),
]


def serve(
    port: PortOption = 8080,
    host: HostOption = "127.0.0.1",
    database_url: DatabaseOption = None,
    workers: WorkersOption = 1,
) -> None:
    """Run the HTTP service; without PUBLIC_BASE_URL, links and token audiences use this port."""
    configured = settings(database_url)
    if configured.public_base_url is None:
        configured = configured.model_copy(update={"public_base_url": local_root(host, port)})
    ensure_free(host, port, "--port")
    check_database_url(configured.database_url)
    if workers > 1:
        _serve_workers(configured, host, port, workers)
        return
    import uvicorn

    from interop import logs
    from interop.app import create_app

    service = create_app(configured)
    config = uvicorn.Config(service, host=host, port=port, log_level="info", access_log=False)
    server = uvicorn.Server(config)
    logs.install()  # after uvicorn configured its loggers, so the filters stay
    typer.echo(
        f"serving {configured.public_base_url} (FHIR base {configured.public_base_url}/fhir)"
    )
    server.run()


def _serve_workers(configured: "Settings", host: str, port: int, workers: int) -> None:
    """N uvicorn worker processes, each building the app from the environment set here. The
    schema is brought up to date (and a development chain key made) once, here, so that the
    workers never race each other at start-up; in development they share one token key, so a
    token one worker issued is valid at the others."""
    import uvicorn

    engine(configured.database_url).dispose()
    configured.chain_key()
    os.environ.update(
        {
            "DATABASE_URL": configured.database_url,
            "PUBLIC_BASE_URL": str(configured.public_base_url),
            "AUTO_MIGRATE": "false",
        }
    )
    if configured.token_signing_key is None:  # development: one key the workers share
        os.environ["TOKEN_SIGNING_KEY"] = secrets.token_hex(32)
    typer.echo(
        f"serving {configured.public_base_url} with {workers} worker processes "
        f"(FHIR base {configured.public_base_url}/fhir)"
    )
    uvicorn.run(
        "interop.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


def local_root(host: str, port: int) -> str:
    """The URL this machine reaches the server at; a wildcard bind is reached on loopback."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def ensure_free(host: str, port: int, option: str) -> None:
    """Refuse, in one line, a port another process holds, before anything is started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is in use: stop what holds it or pick another {option}"
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def mllp(
    port: Annotated[
        int, typer.Option(help="TCP port of the MLLP listener.", min=1, max=65535)
    ] = 2575,
    host: HostOption = "127.0.0.1",
    database_url: DatabaseOption = None,
    max_message_bytes: Annotated[
        int, typer.Option(help="Larger frames are refused (AR).")
    ] = 1_048_576,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds before a silent peer is dropped.")
    ] = 300.0,
) -> None:
    """Receive HL7 v2 REF^I12 and ADT^A03 over MLLP; every message is kept and acknowledged as
    its MSH-15 and MSH-16 ask (original or enhanced mode); an ACK that comes in is not answered."""
    import asyncio

    ensure_free(host, port, "--port")
    from datetime import UTC, datetime

    from adapters.hl7v2 import serve_mllp
    from interop.services.inbound import InboundService

    inbound = InboundService(engine(database_url), lambda: datetime.now(UTC))

    async def handle(payload: bytes) -> tuple[bytes, ...]:
        return await asyncio.to_thread(inbound.receive, payload, "mllp")

    async def run() -> None:
        server = await serve_mllp(
            host, port, handle, max_message_bytes=max_message_bytes, idle_timeout=idle_timeout
        )
        typer.echo(f"MLLP listener on {host}:{server.port}")
        async with server:
            await asyncio.Event().wait()

    asyncio.run(run())


def openapi(
    output: Annotated[
        Path, typer.Option(help="Where to write the document; its folder is made if missing.")
    ] = Path("openapi/openapi.json"),
) -> None:
    """Export the OpenAPI document the service publishes."""
    document = openapi_document()  # rendered before any folder is made for it
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(document)
    typer.echo(f"wrote {output}")


def openapi_document() -> bytes:
    """The OpenAPI document, rendered stably so that a diff shows real changes only."""
    import orjson

    from interop.app import create_app
    from interop.settings import Settings

    service = create_app(Settings(database_url="sqlite://", auto_migrate=False))
    return (
        orjson.dumps(service.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
