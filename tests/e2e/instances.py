"""Instances of this service run as an operator runs them: `interop serve`, `interop mllp`,
`interop sync dispatch` and `interop sync poll` as their own processes, each instance on its
own database and folder, and every registration made with the CLI, following the README's
"Two instances of this service" section command by command.

Each instance is one organization's program (its own EHR registered `--first-party`); the
instances register each other's sync keys (`interop sync jwks`) with the scopes the README
names, then each points its registration of the other at that other's server
(`interop partners set-channel`). Tests read each side through its FHIR API with real tokens
(`interop token`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.conftest import REPOSITORY
from tests.e2e.conftest import free_port, wait_until_serving
from tests.e2e.sync_world import synthetic_npi

NPI = "http://hl7.org/fhir/sid/us-npi"
SYNC_SCOPES = (
    "system/Patient.cru system/ServiceRequest.cru system/Task.crus system/Subscription.cr"
    " system/Organization.rs"
)
"""What each instance grants the other (README, "Scopes each side needs"): the first four are
what its dispatcher and poller ask for here; they and the Organization read also bound what
this side pushes to it (the client, the parties' identifiers)."""
CONSENT_FORM = "https://forms.example.org/part2-consent/v3"
WORKERS = ("serve", "mllp", "dispatch", "poll")
_T = TypeVar("_T")


class CliFailed(AssertionError):
    """An `interop` command an operator would run exited non-zero."""


@dataclass
class Instance:
    """One organization's installation: its program, folder, database and processes."""

    key: str  # a short name for logs and folders: "a", "b", "c"
    program: str  # its program's name, as partners register it
    part2: bool
    folder: Path
    database_url: str
    port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    organization: str = ""  # its own program, "Organization/{id}" here
    ehr_client_id: str = ""
    sync_kid: str = ""
    registrations: dict[str, str] = field(default_factory=dict)
    """Other instance's key -> its client_id here."""
    organizations: dict[str, str] = field(default_factory=dict)
    """Other instance's key -> its Organization id here."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env_overrides: dict[str, str] = field(default_factory=dict)
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    _http: httpx.Client | None = None

    @property
    def npi(self) -> str:
        return synthetic_npi(self.program)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fhir(self) -> str:
        return f"{self.root}/fhir"

    @property
    def keys(self) -> Path:
        return self.folder / "keys"

    @property
    def sync_jwks(self) -> Path:
        return self.keys / "sync.published.jwks.json"

    def env(self) -> dict[str, str]:
        """The instance's environment: its database, address and sync key; retries quick
        enough for a test (a real deployment keeps the defaults)."""
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "PUBLIC_BASE_URL": self.root,
            "SYNC_SIGNING_KEY_FILE": str(self.keys / "sync.key.pem"),
            "SYNC_SIGNING_KID": self.sync_kid,
            "TOKEN_SIGNING_KEY": f"e2e-{self.key}-" + "k" * 40,
            "SYNC_TIMEOUT_SECONDS": "2",
            "SYNC_BACKOFF_SECONDS": "0.2",
            "SYNC_BACKOFF_MAX_SECONDS": "1",
            "SYNC_MAX_ATTEMPTS": "60",
            "SYNC_LEASE_SECONDS": "10",
            "PYTHONPATH": str(REPOSITORY),
            **self.env_overrides,
        }

    def cli(self, *args: str) -> str:
        """`interop ARGS` in the instance's folder and environment; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "interop", *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            env=self.env(),
        )
        if done.returncode != 0:
            raise CliFailed(f"[{self.key}] interop {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def log(self, role: str) -> Path:
        return self.folder / f"{role}.log"

    def start(self, role: str) -> None:
        """One of WORKERS as its own process, its output appended to ROLE.log."""
        command = {
            "serve": ["serve", "--port", str(self.port)],
            "mllp": ["mllp", "--port", str(self.mllp_port)],
            "dispatch": ["sync", "dispatch", "--interval", "0.05"],
            "poll": ["sync", "poll", "--interval", "30"],
        }[role.partition("-")[0]]  # "dispatch-2": a second dispatcher
        with self.log(role).open("ab") as output:
            self.processes[role] = subprocess.Popen(
                [sys.executable, "-m", "interop", *command],
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env(),
            )
        if role == "serve":
            wait_until_serving(f"{self.fhir}/metadata", self.processes[role], self.log(role))
        elif role == "mllp":
            _wait_for_port(self.mllp_port, self.processes[role], self.log(role))

    def kill(self, role: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes.pop(role, None)
        if process is not None and process.poll() is None:
            process.send_signal(signum)
            process.wait(timeout=20)

    def stop(self) -> None:
        for role in list(self.processes):
            self.kill(role, signal.SIGTERM)
        if self._http is not None:
            self._http.close()

    @property
    def http(self) -> httpx.Client:
        """One client, its connections kept (a client per request costs more than the
        request), opened again after `stop`."""
        if self._http is None or self._http.is_closed:
            self._http = httpx.Client(timeout=30)
        return self._http

    # -- reading and writing through the FHIR API, with real tokens --------------------------

    def token(self, client_id: str, key: Path, scope: str) -> str:
        """`interop token`, cached: an access token at this instance."""
        cached = self._tokens.get((client_id, scope))
        if cached is None:
            cached = self.cli(
                "token", client_id, "--key", str(key), "--scope", scope, "--server", self.root
            ).strip()
            self._tokens[(client_id, scope)] = cached
        return cached

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def ehr(self) -> dict[str, str]:
        """Headers of the program's own EHR (first party) here."""
        token = self.token(self.ehr_client_id, self.keys / "ehr.key.pem", "system/*.cruds")
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}

    def as_partner(self, other: "Instance", scope: str = "system/Task.rs") -> dict[str, str]:
        """Headers of `other`'s sync registration here: what this side releases to it."""
        client_id = self.registrations[other.key]
        token = self.token(client_id, other.keys / "sync.key.pem", scope)
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, headers: dict[str, str] | None = None, **params: str) -> Any:
        response = self.http.get(
            f"{self.fhir}/{path}", params=params, headers=headers or self.ehr()
        )
        assert response.status_code == 200, f"[{self.key}] GET {path}: {response.text[:2000]}"
        return response.json()

    def search(self, kind: str, headers: dict[str, str] | None = None, **params: str) -> list[Any]:
        bundle = self.get(kind, headers, _count="500", **params)
        return [entry["resource"] for entry in bundle.get("entry", []) if "resource" in entry]

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.fhir}/{resource['resourceType']}/{resource['id']}"
        response = self.http.put(url, json=resource, headers=self.ehr())
        assert response.status_code in (200, 201), f"[{self.key}] PUT {url}: {response.text}"
        answer: dict[str, Any] = response.json()
        return answer

    def deliveries(self, *states: str) -> list[dict[str, Any]]:
        """`interop sync status` as the operator reads it."""
        args = [arg for state in states for arg in ("--state", state)]
        shown: list[dict[str, Any]] = json.loads(
            self.cli("sync", "status", "--limit", "5000", *args)
        )
        return shown


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after 30 s:\n{log.read_text()[-2000:]}")


def in_parallel(work: Callable[[_T], Any], items: Iterable[_T]) -> None:
    """The same operator step at every instance at once (they are separate installations)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(work, items))


def install(instance: Instance) -> None:
    """README: keys for the program's EHR and for sync, the EHR registered first party (which
    creates the program's Organization), the consent form approved, the sync JWKS published."""
    instance.folder.mkdir(parents=True, exist_ok=True)
    instance.cli("partners", "keygen", "ehr", "--dir", "keys")
    made = instance.cli("partners", "keygen", "sync", "--dir", "keys")
    instance.sync_kid = made.rpartition("kid: ")[2].strip()
    flags = ["--part2-program"] if instance.part2 else []
    added = instance.cli(
        "partners", "add", instance.program,
        "--identifier", f"{NPI}|{instance.npi}",
        "--jwks", "keys/ehr.jwks.json", "--scope", "system/*.cruds",
        "--first-party", "--covered-entity", *flags,
    )  # fmt: skip
    registered = json.loads(added)
    instance.ehr_client_id = registered["client_id"]
    instance.organization = registered["organization"]
    instance.cli(
        "forms", "approve", CONSENT_FORM,
        "--statement", "right-to-revoke", "--statement", "redisclosure-risk",
    )  # fmt: skip
    instance.sync_jwks.write_text(instance.cli("sync", "jwks"))


def register(at: Instance, other: Instance) -> None:
    """`other`'s sync key registered at `at`, as the organization it is, with SYNC_SCOPES."""
    flags = ["--part2-program"] if other.part2 else []
    added = at.cli(
        "partners", "add", other.program,
        "--identifier", f"{NPI}|{other.npi}",
        "--jwks", str(other.sync_jwks), "--scope", SYNC_SCOPES, "--covered-entity", *flags,
    )  # fmt: skip
    registered = json.loads(added)
    at.registrations[other.key] = registered["client_id"]
    at.organizations[other.key] = registered["organization"].removeprefix("Organization/")


def connect(at: Instance, other: Instance, kind: str, address: str | None = None) -> None:
    """`at` reaches `other` by `kind`: its FHIR server (as our registration there) or its
    MLLP listener. `address` overrides where (a proxy in between)."""
    if kind == "fhir":
        at.cli(
            "partners", "set-channel", at.registrations[other.key],
            "--channel", "fhir", "--channel-address", address or other.fhir,
            "--channel-client-id", other.registrations[at.key],
            "--channel-token-url", f"{other.root}/auth/token",
        )  # fmt: skip
    else:
        at.cli(
            "partners", "set-channel", at.registrations[other.key],
            "--channel", "hl7v2-mllp",
            "--channel-address", address or f"127.0.0.1:{other.mllp_port}",
        )  # fmt: skip


def subscribe(at: Instance, other: Instance) -> None:
    """`at` subscribes at `other`'s server to the referrals it sent there."""
    at.cli(
        "sync", "subscribe", at.registrations[other.key],
        "--filter", f"Task?requester=Organization/{other.organizations[at.key]}",
    )  # fmt: skip


def set_up(instances: list[Instance], roles: tuple[str, ...] = ("serve",)) -> None:
    """Install every instance, start its `roles`, and register every pair both ways."""
    in_parallel(install, instances)

    def start(instance: Instance) -> None:
        for role in roles:
            instance.start(role)

    def register_others(at: Instance) -> None:
        for other in instances:
            if other is not at:
                register(at, other)

    in_parallel(start, instances)
    in_parallel(register_others, instances)


def postgres_database(server_url: str, name: str) -> str:
    """A fresh database on the test PostgreSQL server (CREATE DATABASE), its URL."""
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def client_record(patient_id: str, family: str, given: str) -> dict[str, Any]:
    """A synthetic client, with the program's medical record number."""
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.77", "value": patient_id}],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1990-04-12",
    }


def referral(
    sender: Instance, ident: str, patient_id: str, owner_id: str, reason: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sender's referral of its client to the program `owner_id` (an Organization id at
    the sender): the ServiceRequest with its placer identifier, and its Task, requested."""
    from datetime import UTC, datetime, timedelta

    from mappings import model as m
    from mappings import service_request, task
    from mappings.terminology import PATIENT_REFERRAL

    ours = sender.organization.removeprefix("Organization/")
    authored = datetime.now(UTC).replace(microsecond=0)
    order = m.Referral(
        id=m.Id(ident),
        client_id=m.Ref(patient_id),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref(ours)),
        status=m.RequestStatus.ACTIVE,
        service=PATIENT_REFERRAL,
        authored_on=authored,
        performer_id=m.Ref(owner_id),
        reason=reason,
        placer_identifier=m.Identifier(f"urn:oid:2.16.840.1.113883.3.9999.{sender.key}", ident),
    )
    shared = m.ReferralTask(
        id=m.Id(f"{ident}-task"),
        referral_id=m.Ref(ident),
        client_id=m.Ref(patient_id),
        requester=m.Party(m.PartyKind.PROGRAM, m.Ref(ours)),
        status=m.TaskStatus.REQUESTED,
        authored_on=authored,
        owner=m.Party(m.PartyKind.PROGRAM, m.Ref(owner_id)),
        response_deadline=authored + timedelta(days=3),
    )
    return service_request.to_fhir(order), task.to_fhir(shared)


def refer(sender: Instance, ident: str, patient_id: str, owner_id: str, reason: str) -> None:
    """The sender's EHR writes the referral (ServiceRequest, then its Task)."""
    for resource in referral(sender, ident, patient_id, owner_id, reason):
        sender.put(resource)


def consent(
    discloser: Instance, patient_id: str, recipient: Instance, *, status: str = "active"
) -> dict[str, Any]:
    """README "Writing a Part 2 consent": the client lets `discloser` disclose their SUD
    records to `recipient` (by NPI) for treatment, on the approved form."""
    ident = f"consent-{patient_id}-{recipient.key}"
    system = "http://terminology.hl7.org/CodeSystem/"
    return {
        "resourceType": "Consent",
        "id": ident,
        "status": status,
        "scope": {"coding": [{"system": f"{system}consentscope", "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]},
            {"coding": [{"system": f"{system}v3-ActCode", "code": "42CFRPart2CD"}]},
        ],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": "2026-01-10T09:30:00Z",
        "performer": [{"reference": f"Patient/{patient_id}"}],
        "organization": [
            {"identifier": {"system": NPI, "value": discloser.npi}, "display": discloser.program}
        ],
        "sourceAttachment": {
            "contentType": "application/pdf",
            "title": "Signed consent to disclose SUD records",
            "url": f"https://forms.example.org/signed/{ident}.pdf",
        },
        "policy": [{"uri": CONSENT_FORM}],
        "policyRule": {"coding": [{"system": f"{system}v3-ActCode", "code": "42CFRPart2"}]},
        "provision": {
            "type": "deny",
            "provision": [
                {
                    "type": "permit",
                    "period": {"start": "2026-01-10", "end": "2030-12-31"},
                    "actor": [
                        {
                            "role": {
                                "coding": [
                                    {"system": f"{system}v3-ParticipationType", "code": "IRCP"}
                                ]
                            },
                            "reference": {
                                "identifier": {"system": NPI, "value": recipient.npi},
                                "display": recipient.program,
                            },
                        }
                    ],
                    "purpose": [{"system": f"{system}v3-ActReason", "code": "TREAT"}],
                    "securityLabel": [{"system": f"{system}v3-ActCode", "code": "SUD"}],
                }
            ],
        },
    }


def eventually(check: Callable[[], _T | None], timeout: float = 15.0, every: float = 0.05) -> _T:
    """The check's value once it is truthy (and no assertion fails in it), within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
            problem: BaseException | None = None
        except AssertionError as error:
            problem = error
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {problem or value!r}")
        time.sleep(every)


def wait_started(instance: Instance, role: str) -> None:
    """Until the worker wrote its start line (its log is on disk from then)."""

    def said() -> bool:
        return "started" in instance.log(role).read_text()

    eventually(said, timeout=60)
