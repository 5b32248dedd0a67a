"""`interop export`: a Bulk Data $export client (Bulk Data Access IG v2.0.0).

Against a server (`--server URL --token TOKEN`, the token from `interop token`) it kicks off,
polls the status URL as the server's Retry-After asks, draws a progress bar from X-Progress,
and downloads every output and error file into `--output`, with the manifest beside them.
With `--local` it runs the same job in this process on the database directly, as the
operator (the named system requester `system:cli-export`, logged like every export), for
backups and migrations. Either way what leaves went through the disclosure gate.
"""

import re
import sys
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from interop.cli.common import DEFAULT_ROOT, CliError, DatabaseOption, print_json

_TIMEOUT_SECONDS = 30
_MAX_WAIT_SECONDS = 30.0
_BAR_WIDTH = 30


class Level(StrEnum):
    """Which $export endpoint: the whole server, all patients, or one Group's patients."""

    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


def export(
    output: Annotated[Path, typer.Option(help="Folder the files and manifest.json go to.")],
    server: Annotated[
        str | None, typer.Option(help=f"The server's address, e.g. {DEFAULT_ROOT}.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="An access token (`interop token ...`), for --server.")
    ] = None,
    local: Annotated[
        bool, typer.Option(help="Run the export here, on the database, as the operator.")
    ] = False,
    level: Annotated[Level, typer.Option(help="system, patient or group.")] = Level.SYSTEM,
    group: Annotated[str | None, typer.Option(help="The Group id, for --level group.")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", help="Comma-separated resource types (_type).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only what changed after this instant (_since).")
    ] = None,
    type_filter: Annotated[
        list[str] | None,
        typer.Option(help="A search per type, e.g. 'Task?status=requested'; repeatable."),
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Export in bulk (FHIR Bulk Data $export), with a progress bar; files go to --output."""
    if level is Level.GROUP and not group:
        raise CliError("--level group needs --group ID", 2)
    params = _params(type_, since, type_filter or [])
    if local:
        manifest = _run_locally(level, group, params, output, database_url)
    elif server and token:
        manifest = _run_remotely(server, token, level, group, params, output)
    else:
        raise CliError("give --server URL and --token TOKEN, or --local", 2)
    print_json(
        {
            "output": str(output),
            "files": {item["type"]: item["count"] for item in manifest["output"]},
            "errors": sum(item.get("count", 0) for item in manifest["error"]),
        }
    )


def _params(types: str | None, since: str | None, filters: list[str]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if types:
        params.append(("_type", types))
    if since:
        params.append(("_since", since))
    params.extend(("_typeFilter", item) for item in filters)
    return params


def _path(level: Level, group: str | None) -> str:
    if level is Level.GROUP:
        return f"/Group/{group}/$export"
    return "/Patient/$export" if level is Level.PATIENT else "/$export"


def _run_remotely(
    server: str,
    token: str,
    level: Level,
    group: str | None,
    params: list[tuple[str, str]],
    output: Path,
) -> dict[str, Any]:
    """Kick off, poll with backoff as Retry-After asks, download each file as it streams."""
    import httpx

    root = server.rstrip("/")
    base = root if root.endswith("/fhir") else f"{root}/fhir"
    authorization = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    headers = {"Authorization": authorization, "Accept": "application/fhir+json"}
    with httpx.Client(timeout=_TIMEOUT_SECONDS) as http:
        try:
            started = http.get(
                base + _path(level, group),
                params=tuple(params),
                headers={**headers, "Prefer": "respond-async"},
            )
        except httpx.HTTPError as error:
            raise CliError(
                f"cannot reach {base} ({type(error).__name__}): is it running?"
            ) from None
        if started.status_code != 202:
            raise CliError(f"the kick-off was refused: {_diagnostics(started)}")
        status_url = started.headers["Content-Location"]
        manifest = _poll(http, status_url, headers)
        output.mkdir(parents=True, exist_ok=True)
        for item in (*manifest["output"], *manifest["error"]):
            with http.stream("GET", item["url"], headers=headers) as response:
                if response.status_code != 200:
                    raise CliError(f"{item['url']} answered {response.status_code}")
                _write(output / f"{item['type']}.ndjson", response.iter_bytes())
    _write(output / "manifest.json", iter([_json(manifest)]))
    return manifest


def _poll(http: Any, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    wait = 0.5
    while True:
        response = http.get(status_url, headers={**headers, "Accept": "application/json"})
        if response.status_code == 200:
            _bar("complete", done=True)
            manifest: dict[str, Any] = response.json()
            return manifest
        if response.status_code != 202:
            _bar("failed", done=True)
            raise CliError(f"the export failed: {_diagnostics(response)}")
        _bar(response.headers.get("X-Progress", "in progress"))
        asked = response.headers.get("Retry-After", "")
        wait = float(asked) if asked.isdigit() else min(wait * 2, _MAX_WAIT_SECONDS)
        time.sleep(min(wait, _MAX_WAIT_SECONDS))


def _run_locally(
    level: Level,
    group: str | None,
    params: list[tuple[str, str]],
    output: Path,
    database_url: str | None,
) -> dict[str, Any]:
    """The job on the database directly, run by a worker in this process."""
    from interop.app import export_policy
    from interop.cli.common import engine, settings
    from interop.services.bulk_export import BulkExports, local_requester
    from interop.services.disclosure import DisclosureGate
    from interop.services.export_worker import ExportWorker
    from interop.services.search_parser import Paging

    configured = settings(database_url)
    made = engine(database_url)
    paging = Paging(configured.default_page_size, configured.max_page_size)
    exports = BulkExports(made, DisclosureGate(made), paging, export_policy(configured))
    requester = local_requester("cli-export")
    base = (configured.public_base_url or DEFAULT_ROOT).rstrip("/") + "/fhir"
    job_id = exports.kickoff(
        level.value,
        params,
        requester,
        request_url=base + _path(level, group),
        base_url=base,
        prefer="respond-async",
        group_id=group,
    )
    worker = ExportWorker(exports, 0.2)
    worker.start()
    try:
        while (status := exports.status(job_id, requester, base)).state not in (
            "completed",
            "failed",
        ):
            _bar(status.progress)
            time.sleep(0.2)
    finally:
        worker.stop()
    if status.manifest is None:
        _bar("failed", done=True)
        raise CliError(f"the export failed: {status.error}")
    _bar("complete", done=True)
    output.mkdir(parents=True, exist_ok=True)
    for item in (*status.manifest["output"], *status.manifest["error"]):
        found = exports.file(job_id, item["type"], requester)
        _write(output / f"{item['type']}.ndjson", found.chunks)
    _write(output / "manifest.json", iter([_json(status.manifest)]))
    exports.delete(job_id, requester)
    made.dispose()
    return status.manifest


def _bar(progress: str, *, done: bool = False) -> None:
    """A one-line bar on stderr, from X-Progress's leading percentage when it has one."""
    found = re.match(r"\s*(\d{1,3})%", progress)
    percent = 100 if done and progress == "complete" else int(found.group(1)) if found else 0
    filled = _BAR_WIDTH * min(percent, 100) // 100
    line = f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {progress[:60]:<60}"
    sys.stderr.write(line + ("\n" if done else ""))
    sys.stderr.flush()


def _write(path: Path, chunks: Iterator[bytes]) -> None:
    with path.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


def _diagnostics(response: Any) -> str:
    try:
        issues = response.json().get("issue", [])
        return "; ".join(str(issue.get("diagnostics", "")) for issue in issues) or str(
            response.status_code
        )
    except ValueError:
        return f"HTTP {response.status_code}"
