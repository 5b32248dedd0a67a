"""Access-token issuance and validation cost per request (target: validation under 100 µs).

Run: .venv/bin/python bench/tokens.py [--runs 20000]

Validation is what every FHIR request pays: one HMAC-SHA256 check and the claims parsed into
the requester (interop.auth.tokens.verify). Issuance is paid once per token. Never asserted.
"""

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interop.auth import tokens
from interop.auth.scopes import parse_scopes

AUDIENCE = "https://interop.example.org/fhir"
KEY = b"k" * 32


def _issue(now: datetime) -> str:
    token, _claims = tokens.issue(
        client_id="7f1c2d3e-0000-4000-8000-000000000001",
        organization="Organization/riverside",
        scopes=parse_scopes("system/CarePlan.rs system/Task.cru system/ServiceRequest.rs"),
        purposes=("TREAT",),
        emergency=None,
        audience=AUDIENCE,
        key=KEY,
        now=now,
        lifetime=timedelta(minutes=5),
    )
    return token


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"median {p50 * 1e6:.1f} µs, p99 {p99 * 1e6:.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20_000)
    runs = parser.parse_args().runs
    now = datetime.now(UTC)
    issue_times, verify_times = [], []
    token = _issue(now)
    for _ in range(runs):
        start = time.perf_counter()
        _issue(now)
        issue_times.append(time.perf_counter() - start)
    for _ in range(runs):
        start = time.perf_counter()
        tokens.verify(token, key=KEY, audience=AUDIENCE, now=now)
        verify_times.append(time.perf_counter() - start)
    print(f"token issuance ({runs} runs): {_percentiles(issue_times)}")
    print(f"token validation ({runs} runs): {_percentiles(verify_times)}")


if __name__ == "__main__":
    main()
