"""Bulk Data $export (Bulk Data Access IG v2.0.0): kick-off, status, output files, delete, and
the running of a job, every resource through the disclosure gate as the partner that asked.

A job is a row (interop.store.export_jobs) holding what was asked and by whom. A worker
(interop.services.export_worker) claims it and walks each type by primary key, one page at a
time: the page is read behind a fresh gate for the requester (interop.services.resources
`behind_gate`, the same door as search), whose decisions are logged (and so accounted,
interop.audit.accounting) before the page's lines are stored; the lines and the job's new
position are then written in one transaction. Memory stays bounded by the page, a job resumes
where it stood after a crash, and a withheld resource is never in a file, a count, the
progress text or the error file. Files are chunks in the database, so any API process serves
them and deleting a job removes them.
"""

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine

from interop.auth.requester import Requester, system_requester
from interop.auth.scopes import format_scopes, parse_scopes
from interop.auth.tokens import EmergencyFacts
from interop.services.errors import Forbidden, InvalidRequest, ResourceNotFound
from interop.services.export_request import (
    GROUP,
    SYSTEM,
    ExportRequest,
    read_kickoff,
    type_queries,
)
from interop.services.outcomes import outcome
from interop.services.partners import PartnerService
from interop.services.resources import GateFactory, behind_gate
from interop.services.search_parser import Paging
from interop.store import export_jobs as jobs
from interop.store.database import unit_of_work
from interop.store.fhirdates import format_instant
from interop.store.tables import ExportJobRow

log = logging.getLogger("interop.export")
INTERACTION = "export"
"""How the job's decisions are logged for the program's own systems (use, as their reads)."""
PREPARED = "export-prepare"
"""How they are logged for a partner: decided, not disclosed, since the files stay here until
the partner downloads them (accounting.NOT_DISCLOSURES)."""
DOWNLOAD = "export-download"
"""How a file's lines decided again as they leave are logged: a partner's disclosure."""
ERROR_TYPE = "OperationOutcome"


@dataclass(frozen=True, slots=True)
class ExportPolicy:
    page_size: int
    retention: timedelta
    lease: timedelta
    retry_after_seconds: int


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What a status request answers: in progress (202), complete (200) or failed (500)."""

    state: str
    progress: str
    manifest: dict[str, Any] | None
    error: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutputFile:
    """An output file's chunks, streamed one at a time."""

    chunks: Iterator[bytes]


class _Abandoned(Exception):
    """The job was deleted, or taken over by another worker, while this one ran it."""


class _Stopped(Exception):
    """The worker is stopping: the job goes back to the queue, to resume from its position."""


class BulkExports:
    """The $export use cases, each in transactions of its own."""

    def __init__(
        self,
        engine: Engine,
        gates: GateFactory,
        paging: Paging,
        policy: ExportPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._gates = gates
        self._paging = paging
        self._policy = policy
        self._clock = clock
        self._partners = PartnerService(engine)
        self.on_queued: Callable[[], None] = lambda: None

    @property
    def retry_after_seconds(self) -> int:
        """How long a client should wait before polling again (Retry-After)."""
        return self._policy.retry_after_seconds

    def kickoff(
        self,
        level: str,
        params: Sequence[tuple[str, str]],
        requester: Requester,
        *,
        request_url: str,
        base_url: str,
        prefer: str | None,
        group_id: str | None = None,
    ) -> str:
        """Queue a job and return its id (202 with Content-Location at the edge).

        `Prefer: respond-async` is required (the IG's asynchronous pattern); a Group must be
        one the requester may see, or it is unknown to it."""
        if requester.emergency is not None:
            raise Forbidden(
                "an emergency releases what one patient's emergency needs (42 CFR 2.51), "
                "never a bulk export; read that patient's records instead"
            )
        wanted = (prefer or "").replace(" ", "").lower().split(",")
        if "respond-async" not in wanted:
            raise InvalidRequest("a $export kick-off needs the header Prefer: respond-async")
        lenient = "handling=lenient" in wanted
        request = read_kickoff(
            level, params, requester, lenient=lenient, base_url=base_url, paging=self._paging
        )
        if level == GROUP:
            assert group_id is not None
            self._members(requester, group_id)  # 404 now for a Group it may not see
        job = ExportJobRow(
            job_id=uuid.uuid4().hex,
            client_id=requester.client_id,
            requester=_requester_text(requester),
            level=level,
            group_id=group_id,
            request_url=request_url[:8000],
            types=" ".join(request.types),
            since=request.since,
            type_filters=orjson.dumps(request.type_filters).decode(),
            state=jobs.QUEUED,
            created_at=self._clock(),
        )
        notes = _notes(request)
        with unit_of_work(self._engine) as session:
            jobs.add(session, job, notes, len(request.notes))
        self.on_queued()
        return job.job_id

    def status(self, job_id: str, requester: Requester, base_url: str) -> JobStatus:
        """The job as its requester may see it; anyone else gets the 404 of an unknown job."""
        with unit_of_work(self._engine, writes=False) as session:
            job = self._owned(session, job_id, requester)
            files = jobs.files(session, job.pk or 0) if job.state == jobs.COMPLETED else []
        expires = jobs.utc(job.expires_at)
        if job.state == jobs.FAILED:
            return JobStatus(job.state, "failed", None, job.error, expires)
        if job.state != jobs.COMPLETED:
            return JobStatus(job.state, _progress(job), None, "", expires)
        manifest = _manifest(job, files, base_url, counted=requester.first_party)
        return JobStatus(job.state, "complete", manifest, "", expires)

    def file(self, job_id: str, resource_type: str, requester: Requester) -> OutputFile:
        """One output file of a complete job, for its requester only (404 for anyone else)."""
        with unit_of_work(self._engine, writes=False) as session:
            job = self._owned(session, job_id, requester)
            keys = jobs.chunk_keys(session, job.pk or 0, resource_type)
        if job.state != jobs.COMPLETED or not keys:
            raise ResourceNotFound("no such export file")
        if resource_type == ERROR_TYPE:  # our notes on the request: no patient data
            return OutputFile(self._chunks(keys, resource_type, None))
        if self._requester_of(job) is None:
            raise ResourceNotFound("no such export file")
        # The download is the disclosure: decided for the token that asks for it now, its
        # scopes and purposes (a legal-proceedings purpose needs its own consent, C4), not
        # the kick-off's. An emergency never reaches an export (README: it cannot start one).
        return OutputFile(self._chunks(keys, resource_type, replace(requester, emergency=None)))

    def delete(self, job_id: str, requester: Requester) -> None:
        """Cancel a job or drop its files; later requests for it answer 404 (IG delete)."""
        with unit_of_work(self._engine) as session:
            job = self._owned(session, job_id, requester)
            jobs.remove(session, job.pk or 0)

    def claim(self) -> ExportJobRow | None:
        """The next job due, taken by this worker under a lease."""
        with unit_of_work(self._engine) as session:
            return jobs.claim(session, self._clock(), self._policy.lease)

    def purge_expired(self) -> int:
        """Drop finished jobs past their Expires time, with their files."""
        with unit_of_work(self._engine) as session:
            expired = jobs.expired(session, self._clock())
            for pk in expired:
                jobs.remove(session, pk)
        return len(expired)

    def run(self, job: ExportJobRow, stop: threading.Event | None = None) -> None:
        """Export what the job asks for, page by page from where it stands; a failure marks the
        job failed with a text of ours (no patient data), and a deleted job is left alone."""
        try:
            self._run(job, stop or threading.Event())
        except _Stopped:
            with unit_of_work(self._engine) as session:
                jobs.release(session, job.pk or 0)
        except _Abandoned:
            log.info("export job %s stopped: deleted or taken over", job.job_id)
        except Exception as error:  # the job fails; the worker goes on with the next one
            log.warning("export job %s failed: %s", job.job_id, type(error).__name__)
            self._finish(job, jobs.FAILED, "the export could not be completed")

    def _run(self, job: ExportJobRow, stop: threading.Event) -> None:
        requester = self._requester_of(job)
        if requester is None:
            self._finish(job, jobs.FAILED, "the requesting client is no longer enabled")
            return
        patients = self._members(requester, job.group_id) if job.level == GROUP else None
        types = job.types.split()
        filters: dict[str, list[str]] = orjson.loads(job.type_filters or "{}")
        until = jobs.utc(job.transaction_time) or self._clock()
        for index in range(job.type_index, len(types)):
            kind = types[index]
            queries = type_queries(
                kind,
                filters.get(kind, ()),
                base_url="",
                paging=self._paging,
                since=jobs.utc(job.since),
                until=until,
                patients=patients,
                compartment=job.level != SYSTEM,
            )
            cursor = job.cursor if index == job.type_index else 0
            self._export_type(job, requester, (index, kind), queries, cursor, stop)
        self._finish(job, jobs.COMPLETED)

    def _export_type(
        self,
        job: ExportJobRow,
        requester: Requester,
        position: tuple[int, str],
        queries: Sequence[Any],
        cursor: int,
        stop: threading.Event,
    ) -> None:
        """Every page of one type: gate, log (on leaving the door), then store with progress."""
        index, kind = position
        more = True
        while more:
            if stop.is_set():
                raise _Stopped
            with behind_gate(
                self._engine, self._gates, requester, _run_as(requester), paging=self._paging
            ) as operations:
                released, cursor, more = operations.released_after(
                    queries, cursor, self._policy.page_size
                )
            lines = b"".join(stored.content + b"\n" for stored in released if stored.content)
            with unit_of_work(self._engine) as session:
                kept = jobs.advance(
                    session,
                    job.pk or 0,
                    resource_type=kind,
                    content=lines,
                    lines=len(released),
                    type_index=index if more else index + 1,
                    cursor=cursor if more else 0,
                    lease_until=self._clock() + self._policy.lease,
                )
                if not kept:
                    raise _Abandoned

    def _finish(self, job: ExportJobRow, state: str, error: str = "") -> None:
        now = self._clock()
        with unit_of_work(self._engine) as session:
            jobs.finish(session, job.pk or 0, state, now, now + self._policy.retention, error)

    def _members(self, requester: Requester, group_id: str | None) -> list[str]:
        """The ids of the Patients a Group the requester may see lists (read through the
        gate: a Group it may not see is unknown to it)."""
        with behind_gate(
            self._engine, self._gates, requester, _run_as(requester), paging=self._paging
        ) as operations:
            group = operations.read("Group", group_id or "")
        members: list[str] = []
        for member in orjson.loads(group.content or b"{}").get("member", []):
            reference = (member.get("entity") or {}).get("reference", "")
            kind, _, ident = str(reference).rpartition("/")
            if kind.endswith("Patient") and ident and not member.get("inactive"):
                members.append(ident)
        return members

    def _owned(self, session: Any, job_id: str, requester: Requester) -> ExportJobRow:
        job = jobs.find(session, job_id[:64])
        if job is None or job.client_id != requester.client_id:
            raise ResourceNotFound("no such export job")
        if _requester_of_text(job.requester).organization != requester.organization:
            raise ResourceNotFound("no such export job")
        return job

    def _requester_of(self, job: ExportJobRow) -> Requester | None:
        """The partner as it stands now (its registration may have changed since the
        kick-off), with the scopes and purposes its token carried then."""
        asked = _requester_of_text(job.requester)
        if asked.client_id.startswith("system:"):
            return asked
        partner = self._partners.find(asked.client_id)
        if partner is None or not partner.enabled:
            return None
        return Requester(
            client_id=asked.client_id,
            organization=asked.organization,
            scopes=asked.scopes,
            purposes=asked.purposes,
            emergency=asked.emergency,
            part2_program=partner.part2_program,
            covered_entity=partner.covered_entity,
            first_party=partner.first_party,
        )

    def _chunks(
        self, keys: list[int], resource_type: str, requester: Requester | None
    ) -> Iterator[bytes]:
        """Each chunk read in a short transaction of its own, as the client takes it, and
        passed through the gate again as it leaves (`released_again`) unless it holds no
        patient data (`requester` None)."""
        for key in keys:
            with unit_of_work(self._engine, writes=False) as session:
                chunks = list(jobs.chunk_contents(session, [key]))
            for chunk in chunks:
                if requester is None:
                    yield chunk
                    continue
                with behind_gate(
                    self._engine, self._gates, requester, DOWNLOAD, paging=self._paging
                ) as operations:
                    kept = operations.released_again(resource_type, chunk)
                yield kept


def _run_as(requester: Requester) -> str:
    """What a job's decisions are logged as: for a partner, a decision that discloses nothing
    until its download does."""
    return INTERACTION if requester.first_party else PREPARED


def local_requester(job: str) -> Requester:
    """The operator exporting from the command line: the program's own systems, logged as
    `system:{job}`."""
    from interop.store.tables import OPERATOR_ORIGIN

    return system_requester(job, OPERATOR_ORIGIN)


def _progress(job: ExportJobRow) -> str:
    """X-Progress (under 100 characters): types done and resources released, nothing else."""
    if job.state == jobs.QUEUED:
        return "queued"
    total = max(len(job.types.split()), 1)
    percent = int(100 * job.type_index / total)
    return f"{percent}% ({job.type_index}/{total} types, {job.released} resources)"


def _manifest(
    job: ExportJobRow, files: list[tuple[str, int]], base_url: str, *, counted: bool
) -> dict[str, Any]:
    """The complete-status body: output and error file items. An output file's `count`
    (optional in the IG) is given only where it cannot shrink: a partner's file is decided
    again as it is downloaded, and a count beside fewer lines would tell it that a consent
    changed (S3). The program's own systems are released everything."""

    def item(kind: str, count: int) -> dict[str, Any]:
        url = f"{base_url}/$export-file/{job.job_id}/{kind}.ndjson"
        shown = counted or kind == ERROR_TYPE
        return {"type": kind, "url": url, **({"count": count} if shown else {})}

    when = jobs.utc(job.transaction_time) or jobs.utc(job.created_at)
    assert when is not None
    return {
        "transactionTime": format_instant(when),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [item(kind, count) for kind, count in files if kind != ERROR_TYPE],
        "error": [item(kind, count) for kind, count in files if kind == ERROR_TYPE],
    }


def _notes(request: ExportRequest) -> bytes:
    """One OperationOutcome line per parameter a lenient request left out."""
    return b"".join(orjson.dumps(outcome(note)) + b"\n" for note in request.notes)


def _requester_text(requester: Requester) -> str:
    emergency = requester.emergency
    return orjson.dumps(
        {
            "client_id": requester.client_id,
            "organization": requester.organization,
            "scopes": format_scopes(requester.scopes),
            "purposes": list(requester.purposes),
            "emergency": None if emergency is None else asdict(emergency),
            "part2_program": requester.part2_program,
            "covered_entity": requester.covered_entity,
            "first_party": requester.first_party,
        }
    ).decode()


def _requester_of_text(text: str) -> Requester:
    data: dict[str, Any] = orjson.loads(text)
    emergency = data.get("emergency")
    return Requester(
        client_id=str(data["client_id"]),
        organization=str(data["organization"]),
        scopes=parse_scopes(str(data.get("scopes", ""))),
        purposes=tuple(data.get("purposes", ())),
        emergency=EmergencyFacts(**emergency) if emergency else None,
        part2_program=bool(data.get("part2_program")),
        covered_entity=bool(data.get("covered_entity")),
        first_party=bool(data.get("first_party")),
    )
