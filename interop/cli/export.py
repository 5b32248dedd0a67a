"""`interop export`: a Bulk Data $export client (Bulk Data Access IG v2.0.0).

Against a server (`--server URL --token TOKEN`, the token from `interop token`) it kicks off,
polls the status URL as the server's Retry-After asks, draws a progress bar from X-Progress,
and downloads every output and error file into `--output`, with the manifest beside them.
With `--local` it runs the same job in this process on the database directly, as the
operator (the named system requester `system:cli-export`, logged like every export), for
backups and migrations. Either way what leaves went through the disclosure gate.
"""

import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from interop.cli.common import DEFAULT_ROOT, CliError, DatabaseOption, print_json

_TIMEOUT_SECONDS = 30
_MAX_WAIT_SECONDS = 30.0
_BAR_WIDTH = 30
_NDJSON = "application/fhir+ndjson"
_ARRAYS = ("output", "error", "deleted")


class Level(StrEnum):
    """Which $export endpoint: the whole server, all patients, or one Group's patients."""

    SYSTEM = "system"
    PATIENT = "patient"
    GROUP = "group"


def export(
    output: Annotated[
        Path,
        typer.Option(
            help="Folder the files and manifest.json go to; made (in an existing folder) once "
            "the export is ready."
        ),
    ],
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
    if not local and not (server and token):
        raise CliError("give --server URL and --token TOKEN, or --local", 2)
    check_output(output)
    params = _params(type_, since, type_filter or [])
    if local:
        saved = _run_locally(level, group, params, output, database_url)
    else:
        saved = _run_remotely(server or "", token or "", level, group, params, output)
    print_json(summary(output, saved))


def check_output(output: Path) -> None:
    """Refused before the kick-off, not after the server has done the work: --output must be
    a folder, or a new one in a folder that exists (a typo must not grow a tree of folders)."""
    hint = "give a folder, or a new folder's name, in --output"
    if output.exists() and not output.is_dir():
        raise CliError(f"--output {output} is a file, not a folder: {hint}", 2)
    parent = output.absolute().parent
    if not output.exists() and not parent.is_dir():
        raise CliError(f"--output {output}: the folder {parent} does not exist: {hint}", 2)


@dataclass(frozen=True, slots=True)
class Saved:
    """One downloaded file: the manifest item it came from, and what landed on disk."""

    kind: str  # "output", "error" or "deleted", the manifest array that listed it
    type: str
    name: str
    lines: int
    count: int | None  # the manifest's count, optional in the IG


def summary(output: Path, saved: list[Saved]) -> dict[str, Any]:
    """What was exported, counted as downloaded: the manifest's `count` is optional (a
    partner's files are decided again as they are downloaded, so their items carry none), and
    the lines of a file are what this export holds either way. `uncounted_by_server` names the
    files the server gave no count for, so that no one reads the numbers as the server's."""
    files: dict[str, int] = {}
    for item in saved:
        if item.kind == "output":
            files[item.type] = files.get(item.type, 0) + item.lines
    return {
        "output": str(output),
        "files": files,
        "errors": sum(item.lines for item in saved if item.kind == "error"),
        "deleted": sum(item.lines for item in saved if item.kind == "deleted"),
        "saved": [item.name for item in saved],
        "uncounted_by_server": [item.name for item in saved if item.count is None],
    }


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
) -> list[Saved]:
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
        status_url = started.headers.get("Content-Location")
        if not status_url:
            raise CliError(f"{base} accepted the kick-off but named no Content-Location to poll")
        try:
            manifest = _poll(http, status_url, headers)
            # The IG: when requiresAccessToken is false the files are fetched without it (a
            # signed storage URL refuses a second credential).
            if manifest.get("requiresAccessToken") is False:
                headers = {"Accept": _NDJSON}
            else:
                headers = {**headers, "Accept": _NDJSON}

            def download(item: dict[str, Any]) -> Iterator[bytes]:
                with http.stream("GET", item["url"], headers=headers) as response:
                    if response.status_code != 200:
                        raise CliError(f"{item['url']} answered {response.status_code}")
                    yield from response.iter_bytes()

            saved = _save_all(manifest, output, download)
        except httpx.HTTPError as error:
            raise CliError(
                f"{base} stopped answering ({type(error).__name__}): run the export again"
            ) from None
    return saved


def _poll(http: Any, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    wait = 0.5
    while True:
        response = http.get(status_url, headers={**headers, "Accept": "application/json"})
        if response.status_code == 200:
            _bar("complete", done=True)
            return _manifest(response)
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
) -> list[Saved]:
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
    saved = _save_all(
        status.manifest, output, lambda item: exports.file(job_id, item["type"], requester).chunks
    )
    exports.delete(job_id, requester)
    made.dispose()
    return saved


def _bar(progress: str, *, done: bool = False) -> None:
    """A one-line bar on stderr, from X-Progress's leading percentage when it has one."""
    found = re.match(r"\s*(\d{1,3})%", progress)
    percent = 100 if done and progress == "complete" else int(found.group(1)) if found else 0
    filled = _BAR_WIDTH * min(percent, 100) // 100
    line = f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {progress[:60]:<60}"
    sys.stderr.write(line + ("\n" if done else ""))
    sys.stderr.flush()


def _manifest(response: Any) -> dict[str, Any]:
    """The complete-status body, checked for what the IG requires of it: `output` (and
    `error`, `deleted` when given) as lists of items with a `type` and a `url`. Everything
    else (`count`, `extension`, and `error` itself, which some servers leave out) is
    optional and read as such."""
    try:
        manifest = response.json()
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
        raise CliError(f"{response.url} answered 200 without a Bulk Data manifest")
    for array in _ARRAYS:
        items = manifest.get(array, [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("url"), str)
            for item in items
        ):
            raise CliError(f"the manifest's {array!r} is not a list of items with type and url")
    return manifest


def _save_all(
    manifest: dict[str, Any],
    output: Path,
    download: Callable[[dict[str, Any]], Iterator[bytes]],
) -> list[Saved]:
    """Every listed file into --output, and the manifest beside them. A type may come in
    several files (the IG lets a server split one), so each gets its own name. The folder is
    made here, once there is something to put in it, and taken away again when it was new
    and a download fails."""
    made = not output.exists()
    output.mkdir(exist_ok=True)
    taken: set[str] = {"manifest.json"}
    saved: list[Saved] = []
    try:
        for array in _ARRAYS:
            for item in manifest.get(array, []):
                name = _file_name(array, item["type"], taken)
                lines = _write(output / name, download(item))
                count = item.get("count")
                counted = count if isinstance(count, int) else None
                saved.append(Saved(array, item["type"], name, lines, counted))
        _write(output / "manifest.json", iter([_json(manifest)]))
    except BaseException:
        if made:
            shutil.rmtree(output, ignore_errors=True)
        raise
    return saved


def _file_name(array: str, resource_type: str, taken: set[str]) -> str:
    """Type.ndjson, then Type-2.ndjson...; deleted-entry Bundles are deleted-Bundle.ndjson.
    Only a FHIR type name is used (letters), never a path the server wrote."""
    stem = re.sub(r"[^A-Za-z0-9]", "", resource_type) or "file"
    stem = f"deleted-{stem}" if array == "deleted" else stem
    name, number = f"{stem}.ndjson", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}.ndjson"
    taken.add(name)
    return name


def _write(path: Path, chunks: Iterator[bytes]) -> int:
    """The chunks into the file; the number of NDJSON lines (resources) it holds."""
    lines, last = 0, b"\n"
    with path.open("wb") as file:
        for chunk in chunks:
            if chunk:
                file.write(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    return lines + (last != b"\n")


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
