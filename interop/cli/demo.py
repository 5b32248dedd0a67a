"""`interop demo`: seed the synthetic client's story, register the story's partners with keys
written to a folder, and print the exact commands that read it back."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interop.cli.common import DatabaseOption, engine, public_root, settings
from interop.cli.users import staff_service

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from interop.services.demo import StoryPartner
    from interop.services.staff import StaffPrincipal, StaffService

DEMO_PASSPHRASE = "choose a long passphrase"  # noqa: S105  (an example shown, never set)
"""Shown in the suggested commands only; every account's password is the operator's choice."""
KeysOption = Annotated[
    Path, typer.Option("--keys-dir", help="Where the partners' key pairs are written.")
]


def demo(database_url: DatabaseOption = None, keys_dir: KeysOption = Path("var/demo-keys")) -> None:
    """Seed a synthetic client's story: detox, care plan, referral, handoffs, IOP, aftercare;
    register its programs as partners, and print how to read it."""
    from interop.services.demo import CLIENT, PARTNERS

    made = engine(database_url)
    seed(made, staff_service(database_url))
    clients = {partner.key_name: register(made, partner, keys_dir) for partner in PARTNERS}
    for name, client_id in clients.items():
        (keys_dir / f"{name}.client-id").write_text(client_id + "\n")
    root = public_root(settings(database_url))
    for line in next_steps(root, clients, keys_dir, CLIENT):
        typer.echo(line)


def seed(made: "Engine", staff: "StaffService") -> None:
    """The consent form approved, then every record, written by a case manager of the
    program it comes from."""
    from datetime import UTC, datetime

    from interop.services.cases import CaseService
    from interop.services.demo import approve_form, story
    from interop.services.disclosure import DisclosureGate
    from interop.services.forms import ConsentForms

    approved = approve_form(ConsentForms(made, lambda: datetime.now(UTC)))
    typer.echo(f"approved the consent form {approved.form}: {' '.join(approved.statements)}")
    cases = CaseService(made, DisclosureGate(made))
    seeds = story()
    with typer.progressbar(seeds, label="seeding the story") as progress:
        for entry in progress:
            writer = _case_manager(staff, entry.program)
            cases.put(entry.kind, entry.value, writer)
    typer.echo(f"seeded {len(seeds)} records of the synthetic client's story")


def _case_manager(staff: "StaffService", program: str) -> "StaffPrincipal":
    """The program's demo case manager, an account with no password: the story's programs
    work here, so what they record (Jordan's consent above all) is their own."""
    from interop.services.staff import Role, StaffPrincipal
    from interop.store.fhirdates import now_ms

    username = f"demo.{program}"
    if not staff.exists(username):
        return staff.add(username, None, Role.CASE_MANAGER, (program,), now_ms())
    return StaffPrincipal(username, Role.CASE_MANAGER, (program,))


def register(made: "Engine", partner: "StoryPartner", keys_dir: Path) -> str:
    """The partner's client_id: registered with a new key pair, or (on a second run) the
    registration already made, its key renewed when the key file is gone."""
    from interop.cli.keys import write_key_pair
    from interop.services.demo import PARTNER_SCOPES
    from interop.services.partners import NewPartner, PartnerService

    service = PartnerService(made)
    identifier = partner.identifier
    existing = service.registered(identifier.system or "", identifier.value)
    key_file = keys_dir / f"{partner.key_name}.key.pem"
    if existing is not None and key_file.is_file():
        return existing.client_id
    files = write_key_pair(keys_dir, partner.key_name, "ES384", replace=True)
    jwks = json.loads(files.jwks.read_text())
    if existing is not None:
        service.rotate_key(existing.client_id, jwks, None)
        return existing.client_id
    program = partner.program
    registered = service.register(
        NewPartner(
            name=program.name,
            identifiers=[(identifier.system or "", identifier.value)],
            scopes=PARTNER_SCOPES,
            jwks=jwks,
            part2_program=program.part2_program,
            covered_entity=program.covered_entity is True,
        )
    )
    return registered.client_id


def next_steps(root: str, clients: dict[str, str], keys_dir: Path, client: str) -> list[str]:
    """The commands that read the story back, exactly as they are typed."""
    from interop.services.demo import STAFF

    riverside = clients["riverside-residential"]
    key = keys_dir / "riverside-residential.key.pem"
    lines = [
        "",
        f"partners registered (key pairs and client ids in {keys_dir}/):",
        *(f"  {name}: client_id {client_id}" for name, client_id in clients.items()),
        "",
        f"next, with the server running at {root} (`make run`, or `interop serve`):",
        "  # a token for Riverside Residential, a Part 2 program Jordan's consent names",
        f"  TOKEN=$(.venv/bin/interop token {riverside} --key {key} --purpose TREAT"
        f" --server {root})",
        "  # the care plan and its goals, as Riverside may see them",
        f'  curl -H "Authorization: Bearer $TOKEN" '
        f'"{root}/fhir/CarePlan?patient=Patient/{client}&_include=CarePlan:goal"',
        "  # staff accounts, one per role (the password is read from standard input)",
    ]
    for username, role, programs in STAFF:
        flags = "".join(f" --program {program}" for program in programs)
        lines.append(
            f"  echo '{DEMO_PASSPHRASE}' | .venv/bin/interop users add {username} "
            f"--role {role}{flags} --password-stdin"
        )
    lines += [
        f"  # sign in as casey.manager (in a browser: {root}/auth/login), then fetch the",
        "  # C-CDA transfer summary of the handoff to residential",
        f"  curl -s -c staff.jar -o /dev/null {root}/auth/login",
        "  curl -s -b staff.jar -c staff.jar -d username=casey.manager "
        f"--data-urlencode 'password={DEMO_PASSPHRASE}' "
        '--data-urlencode "csrf_token=$(awk \'$6=="interop_login_csrf"{print $7}\' staff.jar)" '
        f"{root}/auth/login",
        f"  curl -s -b staff.jar {root}/cases/handoffs/handoff-to-residential/transfer-summary",
        f"  # compliance officers (morgan.compliance) see {root}/console/compliance, "
        f"administrators (ada.admin) {root}/admin/partners",
    ]
    return lines
