"""Run every benchmark and print its figures (`make bench`); nothing here is asserted."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    ("consent engine", ["consent_engine.py", "--seconds", "3"]),
    ("disclosure gate", ["gate.py", "--runs", "1000"]),
    ("access tokens", ["tokens.py", "--runs", "20000"]),
    ("C-CDA parsing", ["ccda_parse.py", "--runs", "100"]),
    ("sync dispatch", ["sync.py", "--referrals", "300"]),
)


def main() -> int:
    failed = 0
    for title, (script, *arguments) in BENCHMARKS:
        print(f"== {title}", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *arguments], check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
