"""The server as partners meet it, beside a floor, at growing sizes (issue 13's table).

Run: .venv/bin/python bench/server.py [--sizes 10000,100000] [--million] [--seconds 8]
     [--connections 32] [--workers 1]

For each size, a fresh SQLite database is seeded through the product's own write path (a detox
unit's clients and their care plans, written on its behalf; the first 100 clients consent to a
residential program), then `interop serve` and a floor (uvicorn and one route returning the
stored bytes from the same file, bench/reads.py --floor) are measured side by side in one run:

- reads by id at `--connections`: the floor, the program's EHR (first party) and the partner
  through the gate, with each one's share of the floor;
- `CarePlan?patient=` and `CarePlan?status=active&_count=50` (every plan matches: half the
  records) one request at a time, first party and partner (and the partner with `_total=none`);
- creates of a 3.4 KB CarePlan at c=16 (wrk POST) and 100-entry transactions, one at a time;
- Bulk `$export?_type=CarePlan` as the EHR and as the partner: resources examined per second
  from kick-off to the manifest;
- the product's peak RSS (VmHWM) after all of it.

Needs wrk (Debian: apt-get install wrk). Figures depend on the machine and on what else runs;
the ratios to the floor and how they move with size are what count. Never asserted.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import reads

from tests.builders import care_plan

PLAN_TEXT = "Weekly check-in on housing, FMLA paperwork and transport to IOP. " * 48
"""Padding that brings the created CarePlan to about 3.4 KB, the size issue 13 measured."""
_POST = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/fhir+json"
"""


def main() -> None:
    arguments = _arguments()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    if arguments.million:
        sizes.append(1_000_000)
    for size in sizes:
        _measure(size, arguments)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--million", action="store_true", help="Also 1,000,000 resources.")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args()


def _measure(size: int, arguments: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'reads.sqlite3'}"
    started = time.perf_counter()
    seeded = reads._seed(folder, url, size)
    seeding = time.perf_counter() - started
    product_port, floor_port = reads._free_port(), reads._free_port()
    product = reads._start(
        [sys.executable, "-m", "interop", "serve", "--port", str(product_port),
         "--database-url", url, "--workers", str(arguments.workers)],
        folder,
    )  # fmt: skip
    floor = reads._start(
        [sys.executable, reads.__file__, "--floor", str(folder / "reads.sqlite3"),
         "--port", str(floor_port)],
        folder,
    )  # fmt: skip
    root, floor_root = f"http://127.0.0.1:{product_port}", f"http://127.0.0.1:{floor_port}"
    try:
        reads._wait(f"{root}/fhir/metadata")
        reads._wait(f"{floor_root}/fhir/CarePlan/{seeded['plans'][0]}")
        ehr = reads._token(root, seeded["ehr"], seeded["ehr_key"], "system/*.cruds")
        partner = reads._token(root, seeded["reader"], seeded["reader_key"], "system/*.rs")
        print(f"{size:,} resources (seeded through the write path in {seeding:.0f} s)")
        _reads(root, floor_root, ehr, partner, seeded, arguments, folder)
        _creates(root, ehr, arguments.seconds, folder)
        _transactions(root, ehr, seeded["people"])
        plans = _count(root, ehr, "CarePlan")
        for name, token in (("program's EHR", ehr), ("partner", partner)):
            elapsed, released = _export(root, token)
            print(f"  $export CarePlan, {name}: {plans:,} examined in {elapsed:.1f} s = "
                  f"{plans / elapsed:,.0f}/s, {released:,} released")  # fmt: skip
        print(f"  peak RSS of the product: {_peak_rss_mb(product.pid):,.0f} MB")
    finally:
        for process in (product, floor):
            process.terminate()
            process.wait(timeout=20)


def _reads(
    root: str,
    floor_root: str,
    ehr: str,
    partner: str,
    seeded: dict[str, Any],
    arguments: argparse.Namespace,
    folder: Path,
) -> None:
    plans, people = seeded["plans"], seeded["people"]
    by_id = '"/fhir/CarePlan/" .. ids[math.random(#ids)]'
    by_patient = '"/fhir/CarePlan?patient=Patient/" .. ids[math.random(#ids)]'
    half = '"/fhir/CarePlan?status=active&_count=50"'
    c, seconds = arguments.connections, arguments.seconds
    floor_rate = reads._wrk(floor_root, plans, by_id, None, c, seconds, folder)[0]
    print(f"  reads by id, c={c}: floor {floor_rate:,.0f} req/s")
    for name, token in (("first party", ehr), ("partner through the gate", partner)):
        rate, p50, p99 = reads._wrk(root, plans, by_id, token, c, seconds, folder)
        print(f"    {name}: {rate:,.0f} req/s ({rate / floor_rate:.1%} of the floor), "
              f"p50 {p50}, p99 {p99}")  # fmt: skip
    searches = [
        ("CarePlan?patient=, first party", ehr, people, by_patient),
        ("CarePlan?patient=, partner", partner, people, by_patient),
        ("half the records match, first party", ehr, [], half),
        ("half the records match, partner", partner, [], half),
        ("half the records match, partner, _total=none", partner, [],
         half.replace('50"', '50&_total=none"')),
    ]  # fmt: skip
    for name, token, ids, path in searches:
        rate, p50, p99 = reads._wrk(root, ids, path, token, 1, seconds, folder)
        print(f"  {name}, c=1: p50 {p50}, p99 {p99}, {rate:,.0f} req/s")


def _plan() -> dict[str, Any]:
    plan = care_plan("Patient/p0")
    plan["description"] = PLAN_TEXT
    return plan


def _creates(root: str, ehr: str, seconds: int, folder: Path) -> None:
    script = folder / "create.lua"
    script.write_text(_POST % json.dumps(json.dumps(_plan())))
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script),
               "-H", f"Authorization: Bearer {ehr}", f"{root}/fhir/CarePlan"]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    size = len(json.dumps(_plan()))
    print(f"  creates of a {size / 1000:.1f} KB CarePlan, c=16: "
          f"{float(rate.group(1)) if rate else 0:,.0f}/s")  # fmt: skip


def _transactions(root: str, ehr: str, people: list[str], runs: int = 10) -> None:
    headers = {"Authorization": f"Bearer {ehr}", "Content-Type": "application/fhir+json"}
    took = []
    with httpx.Client(timeout=120) as client:
        for run in range(runs):
            entries = [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": care_plan(f"Patient/{people[(run * 100 + n) % len(people)]}"),
                    "request": {"method": "POST", "url": "CarePlan"},
                }
                for n in range(100)
            ]
            bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
            started = time.perf_counter()
            answer = client.post(f"{root}/fhir", json=bundle, headers=headers)
            took.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
    print(f"  100-entry transactions, one at a time: median {statistics.median(took):,.0f} ms, "
          f"max {max(took):,.0f} ms")  # fmt: skip


def _count(root: str, token: str, kind: str) -> int:
    answer = httpx.get(
        f"{root}/fhir/{kind}",
        params={"_summary": "count"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    answer.raise_for_status()
    total: int = answer.json()["total"]
    return total


def _export(root: str, token: str) -> tuple[float, int]:
    """Seconds from kick-off to the manifest, and how many resources the job released (the
    lines its files hold as downloaded: a partner's manifest gives no count, since its files
    are decided again as they leave)."""
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    with httpx.Client(timeout=60, headers=auth) as client:
        kicked = client.get(
            f"{root}/fhir/$export",
            params={"_type": "CarePlan"},
            headers={"Prefer": "respond-async"},
        )
        kicked.raise_for_status()
        status = kicked.headers["Content-Location"]
        polled = client.get(status)
        while polled.status_code == 202:
            time.sleep(0.05)
            polled = client.get(status)
        polled.raise_for_status()
        elapsed = time.perf_counter() - started
        released = sum(
            client.get(item["url"]).content.count(b"\n") for item in polled.json()["output"]
        )
        client.delete(status)
    return elapsed, released


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of the server process, summed with its workers' when `--workers` forks them."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    total = 0.0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


if __name__ == "__main__":
    main()
