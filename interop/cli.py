"""The `interop` command: serve the API, manage the database, export the OpenAPI document."""

from pathlib import Path
from typing import Annotated

import orjson
import typer
import uvicorn

from interop.app import create_app
from interop.settings import Settings
from interop.store.database import make_engine
from interop.store.migrate import upgrade

app = typer.Typer(help="Recovery Interop: FHIR R4 interoperability for addiction treatment.")
db_app = typer.Typer(help="Database schema.")
app.add_typer(db_app, name="db")


def _settings(database_url: str | None) -> Settings:
    if database_url is None:
        return Settings()
    return Settings(database_url=database_url)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8080,
    host: Annotated[
        str, typer.Option(help="Interface to bind; loopback by default.")
    ] = "127.0.0.1",
    database_url: Annotated[
        str | None,
        typer.Option(help="Database URL (default: DATABASE_URL or SQLite under ./var/)."),
    ] = None,
) -> None:
    """Run the HTTP service."""
    service = create_app(_settings(database_url))
    uvicorn.run(service, host=host, port=port, log_level="info", access_log=False)


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[str | None, typer.Option(help="Database URL.")] = None,
) -> None:
    """Bring the database schema up to date."""
    upgrade(make_engine(_settings(database_url).database_url))
    typer.echo("database schema is up to date")


@app.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the document.")] = Path(
        "openapi/openapi.json"
    ),
) -> None:
    """Export the OpenAPI document the service publishes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(openapi_document())
    typer.echo(f"wrote {output}")


def openapi_document() -> bytes:
    """The OpenAPI document, rendered stably so that a diff shows real changes only."""
    service = create_app(Settings(database_url="sqlite://", auto_migrate=False))
    return (
        orjson.dumps(service.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
