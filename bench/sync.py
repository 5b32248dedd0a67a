"""Referrals between two real instances of this service, end to end, and how soon a change at
the receiver is known at the sender.

Run: .venv/bin/python bench/sync.py [--referrals 300] [--clients 50] [--dispatchers 2]
         [--changes 40] [--database postgresql+psycopg://postgres@127.0.0.1:55433/interop_test]

Two installations, A (a detox unit) and B (a residential program), each `interop serve` on its
own database (with --database: a fresh PostgreSQL database each, made with CREATE DATABASE on
that server; without: SQLite files), registered at each other with the CLI exactly as
tests/e2e/test_three_instances.py and the README do, A with `--dispatchers` `interop sync
dispatch` processes and an `interop sync poll`, subscribed at B.

1. Throughput: A's EHR writes `--referrals` referrals of `--clients` clients in turn
   (ServiceRequest + Task, through A's FHIR API, four writers at once; each delivery carries its
   client, whose copy at B one transaction at a time may write: `--clients 1` measures that)
   while the dispatchers run; measured from the first write to the last delivery B
   acknowledged (each one: the gate at A, the transaction over HTTP with a SMART token, the
   gate and the write at B). B's copies are counted after.
2. Status lag with Subscriptions: B's EHR accepts `--changes` of its copies of one client (who
   consents at B to tell A) one after another;
   each lag is from B's answer to the PUT until A's own Task reads `accepted` through A's API
   (B's notification, A's poll of B, the workflow check, A's write).

Figures are printed, never asserted: they depend on the machine and what else runs on it.
"""

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from tests.e2e.instances import (
    Instance,
    client_record,
    connect,
    consent,
    eventually,
    postgres_database,
    refer,
    set_up,
    subscribe,
    wait_started,
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=300)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--dispatchers", type=int, default=2)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--database", help="A PostgreSQL server URL; SQLite files without it.")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        a, b = instances(Path(folder), arguments.database)
        try:
            set_up([a, b])
            connect(a, b, "fhir")
            subscribe(a, b)
            a.start("poll")
            clients = [f"client-{n}" for n in range(arguments.clients)]
            for client in clients:
                a.put(client_record(client, "Quill", client.replace("-", " ").title()))
                a.put(consent(a, client, b))
            throughput(a, b, arguments.referrals, arguments.dispatchers, clients)
            status_lag(a, b, arguments.changes)
        finally:
            a.stop()
            b.stop()
    return 0


def instances(folder: Path, server: str | None) -> tuple[Instance, Instance]:
    made = []
    for key, program in (("a", "Harbor Detox"), ("b", "Riverside Residential")):
        if server:
            url = postgres_database(server, f"bench_sync_{key}")
        else:
            url = f"sqlite:///{folder / key}/{key}.sqlite3"
        made.append(Instance(key, program, True, folder / key, url))
    print(f"databases: {'PostgreSQL' if server else 'SQLite'}, one per instance")
    return made[0], made[1]


def acknowledged(a: Instance) -> int:
    engine = create_engine(a.database_url)
    try:
        with engine.connect() as connection:
            statement = text("SELECT count(*) FROM outbox WHERE state = 'acknowledged'")
            return int(connection.execute(statement).scalar_one())
    finally:
        engine.dispose()


def throughput(a: Instance, b: Instance, count: int, dispatchers: int, clients: list[str]) -> None:
    """End to end (writes and deliveries at once), then deliveries alone (a queue drained)."""
    roles = ["dispatch"] + [f"dispatch-{n}" for n in range(2, dispatchers + 1)]
    a.ehr()  # the token, before any clock starts
    start_dispatchers(a, roles)
    before = acknowledged(a)
    started = time.perf_counter()
    written = write(a, "e2e", count, clients)
    eventually(lambda: acknowledged(a) - before >= count, timeout=900, every=0.1)
    elapsed = time.perf_counter() - started
    print(
        f"end to end: {count} referrals written at A and acknowledged by B in {elapsed:.2f} s"
        f" = {count / elapsed:,.1f} referrals/s ({dispatchers} dispatchers); A's FHIR API took"
        f" the writes (ServiceRequest + Task, 4 writers) at {count / written:,.1f} referrals/s"
    )
    for role in roles:
        a.kill(role)
    write(a, "queued", count, clients)
    before = acknowledged(a)
    start_dispatchers(a, roles)
    started, early = time.perf_counter(), acknowledged(a) - before  # from their start lines
    eventually(lambda: acknowledged(a) - before >= count, timeout=900, every=0.1)
    elapsed = time.perf_counter() - started
    count -= early
    copies = b.get("Task", _summary="count")["total"]
    print(
        f"delivery alone: {count} queued referrals delivered and acknowledged in {elapsed:.2f} s"
        f" = {count / elapsed:,.1f} referrals/s ({dispatchers} dispatchers, timed from their"
        f" start lines); B holds {copies} copies in all"
    )
    for role in roles[1:]:
        a.kill(role)


def start_dispatchers(a: Instance, roles: list[str]) -> None:
    for role in roles:
        a.start(role)
    for role in roles:
        wait_started(a, role)


def write(a: Instance, prefix: str, count: int, clients: list[str]) -> float:
    """`count` referrals through A's FHIR API, of each client in turn; the seconds it took."""
    owner = a.organizations["b"]

    def one(n: int) -> None:
        refer(a, f"{prefix}-{n}", clients[n % len(clients)], owner, "Bench")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as writers:
        list(writers.map(one, range(count)))
    return time.perf_counter() - started


def accepted(a: Instance, task_id: str) -> bool:
    return bool(a.get(f"Task/{task_id}")["status"] == "accepted")


def status_lag(a: Instance, b: Instance, changes: int) -> None:
    tasks = b.search("Task")
    if not tasks:
        print("status lag: no copies at B")
        return
    client = tasks[0]["for"]["reference"]
    copies = [task for task in tasks if task["for"]["reference"] == client][:changes]
    local = client.removeprefix("Patient/")
    b.put(consent(b, local, a))
    b.start("dispatch")
    wait_started(b, "dispatch")
    prefix = f"{a.fhir}/Task/"
    lags = []
    for copy in copies:
        ours = next(
            i["value"].removeprefix(prefix)
            for i in copy["identifier"]
            if i.get("value", "").startswith(prefix)
        )
        b.put({**{k: v for k, v in copy.items() if k != "meta"}, "status": "accepted"})
        begun = time.perf_counter()
        eventually(partial(accepted, a, ours), 30, 0.02)
        lags.append(time.perf_counter() - begun)
    lags.sort()
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    print(
        f"status lag with Subscriptions (B accepts, A's Task reads accepted), {len(lags)} changes:"
        f" median {statistics.median(lags):.2f} s, p99 {p99:.2f} s, max {lags[-1]:.2f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
