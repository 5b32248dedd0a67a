"""Reads by id under concurrency, the product beside a floor, in one run (issue 13's headline
figure): `interop serve` (first party, and a partner through the gate with a consent on file)
against a bare uvicorn endpoint returning the same stored bytes from the same SQLite file; then,
one request at a time (c=1, the p50 the targets name), `CarePlan?patient=` and a search with
half the records matching (`CarePlan?status=active`, a page of 50), accurate and `_total=none`.

Run: .venv/bin/python bench/reads.py [--resources 10000] [--seconds 10] [--connections 32]
     [--workers 1]
Needs wrk (Debian: apt-get install wrk). The records are written through the product's own
write path, as a Part 2 program; wrk reads 100 of them in random order. Figures depend on the
machine and on what else runs: the ratios to the floor are what count. Never asserted.
"""

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from interop.services.partners import NewPartner, PartnerService
from interop.services.resources import internal_operations
from interop.services.search_parser import Paging
from interop.settings import Settings
from interop.store.database import make_engine, unit_of_work
from interop.store.migrate import upgrade
from tests.builders import care_plan, part2_consent, patient
from tests.keys import ClientKey, assertion, rsa_key, token_form

SYSTEM = "urn:oid:2.16.840.1.113883.3.9999.10"
READ_IDS = 100
_LUA = """
ids = {%s}
request = function()
  return wrk.format("GET", %s)
end
"""


def main() -> None:
    arguments = _arguments()
    if arguments.floor:
        _serve_floor(arguments.floor, arguments.port)
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/reads.py needs wrk: apt-get install wrk")
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'reads.sqlite3'}"
    seeded = _seed(folder, url, arguments.resources)
    product_port, floor_port = _free_port(), _free_port()
    product = _start(
        [sys.executable, "-m", "interop", "serve", "--port", str(product_port),
         "--database-url", url, "--workers", str(arguments.workers)],
        folder,
    )  # fmt: skip
    floor = _start(
        [sys.executable, __file__, "--floor", str(folder / "reads.sqlite3"),
         "--port", str(floor_port)],
        folder,
    )  # fmt: skip
    try:
        product_root = f"http://127.0.0.1:{product_port}"
        _wait(f"{product_root}/fhir/metadata")
        _wait(f"http://127.0.0.1:{floor_port}/fhir/CarePlan/{seeded['plans'][0]}")
        first_party = _token(product_root, seeded["ehr"], seeded["ehr_key"], "system/*.rs")
        gated = _token(product_root, seeded["reader"], seeded["reader_key"], "system/*.rs")
        plans, people = seeded["plans"], seeded["people"]
        by_id = '"/fhir/CarePlan/" .. ids[math.random(#ids)]'
        by_patient = '"/fhir/CarePlan?patient=Patient/" .. ids[math.random(#ids)]'
        half = '"/fhir/CarePlan?status=active&_count=50"'
        floor_root = f"http://127.0.0.1:{floor_port}"
        c = arguments.connections
        runs: list[tuple[str, str, str | None, list[str], str, int]] = [
            ("reads, floor (bare endpoint)", floor_root, None, plans, by_id, c),
            ("reads, first party", product_root, first_party, plans, by_id, c),
            ("reads, partner through the gate", product_root, gated, plans, by_id, c),
            ("CarePlan?patient=, first party", product_root, first_party, people, by_patient, 1),
            ("CarePlan?patient=, partner", product_root, gated, people, by_patient, 1),
            ("half the records match, first party", product_root, first_party, [], half, 1),
            ("half the records match, partner", product_root, gated, [], half, 1),
            (
                "half the records match, partner, _total=none",
                product_root,
                gated,
                [],
                half.replace('50"', '50&_total=none"'),
                1,
            ),
        ]
        figures = {
            name: _wrk(root, ids, path, token, connections, arguments.seconds, folder)
            for name, root, token, ids, path, connections in runs
        }
    finally:
        for process in (product, floor):
            process.terminate()
            process.wait(timeout=20)
    floor_rate = figures["reads, floor (bare endpoint)"][0]
    print(
        f"{arguments.resources} records, reads by id at c={arguments.connections}, searches at "
        f"c=1, {arguments.seconds} s each, product workers={arguments.workers}"
    )
    for name, (rate, p50, p99) in figures.items():
        share = f" ({rate / floor_rate:.0%} of the floor)" if name.startswith("reads") else ""
        print(f"  {name}: {rate:,.0f} req/s, p50 {p50}, p99 {p99}{share}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def _seed(folder: Path, url: str, resources: int) -> dict[str, Any]:
    """A detox unit's clients and care plans, written on its behalf; a partner it consents
    for; the keys both sign with."""
    settings = Settings(database_url=url, audit_chain_key_file=folder / "var/audit-chain.key")
    engine = make_engine(url, chain_key=settings.chain_key())
    upgrade(engine)
    partners = PartnerService(engine)
    ehr_key, reader_key = rsa_key(), rsa_key()
    ehr = partners.register(
        NewPartner("Bench Detox EHR", [(SYSTEM, "detox")], "system/*.cruds",
                   jwks=ehr_key.jwks(), part2_program=True, first_party=True)
    )  # fmt: skip
    reader = partners.register(
        NewPartner("Bench Residential", [(SYSTEM, "reader")], "system/*.rs",
                   jwks=reader_key.jwks(), covered_entity=True)
    )  # fmt: skip
    plans: list[str] = []
    people: list[str] = []
    batch = 500
    for start in range(0, resources, batch):
        with (
            unit_of_work(engine) as session,
            internal_operations(
                session, "bench-seed", paging=Paging(1, 1), on_behalf_of=ehr.organization
            ) as operations,
        ):
            for number in range(start, min(start + batch, resources), 2):
                person = f"p{number}"
                operations.update("Patient", person, {**patient(mrn=person), "id": person})
                plan = {**care_plan(f"Patient/{person}"), "id": f"plan{number}"}
                operations.update("CarePlan", plan["id"], plan)
                if len(plans) < READ_IDS:
                    plans.append(plan["id"])
                    people.append(person)
                    consent = part2_consent(
                        f"Patient/{person}", ehr.organization, reader.organization
                    )
                    operations.update("Consent", f"c{number}", {**consent, "id": f"c{number}"})
    engine.dispose()
    return {
        "ehr": ehr.client_id,
        "ehr_key": ehr_key,
        "reader": reader.client_id,
        "reader_key": reader_key,
        "plans": plans,
        "people": people,
    }


def _token(root: str, client_id: str, key: ClientKey, scope: str) -> str:
    signed = assertion(key, client_id, f"{root}/auth/token")
    answer = httpx.post(f"{root}/auth/token", data=token_form(signed, scope))
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _wrk(
    root: str,
    ids: list[str],
    path: str,
    token: str | None,
    connections: int,
    seconds: int,
    folder: Path,
) -> tuple[float, str, str]:
    """wrk asking for `path` (a Lua expression over `ids`) for `seconds` at `connections`."""
    script = folder / "request.lua"
    script.write_text(_LUA % (", ".join(f'"{ident}"' for ident in ids), path))
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
               "--latency", "-s", str(script)]  # fmt: skip
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(
        [*command, root], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        sys.exit(f"{root}: {non_2xx.group(1)} answers were not 200:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)  # type: ignore[union-attr]
    return rate, p50, p99


def _serve_floor(database: str, port: int) -> None:
    """The floor: uvicorn and one route returning the stored bytes, nothing else."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    connection = sqlite3.connect(database, check_same_thread=False)

    async def read(request: Request) -> Response:
        row = connection.execute(
            "SELECT content FROM resource WHERE resource_type = 'CarePlan' AND resource_id = ?",
            (request.path_params["ident"],),
        ).fetchone()
        if row is None:
            return Response(status_code=404)
        return Response(row[0], media_type="application/fhir+json")

    app = Starlette(routes=[Route("/fhir/CarePlan/{ident}", read)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _start(command: list[str], folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"{url} did not answer within 60 s")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
