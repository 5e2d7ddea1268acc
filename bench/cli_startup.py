"""How long ``maskline --help`` (and a command's own ``--help``) takes.

The CLI loads subcommands lazily and imports neither alembic, Flask nor
twilio until a command needs them; this prints the wall-clock time of a few
runs of the installed console script, median first. A figure for people
(the aim is 0.5 s or less for ``maskline --help``), never a gate: the test
suite asserts what the CLI imports instead (tests/unit/test_cli_lazy.py).

    python bench/cli_startup.py [--runs 7] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in the other scripts: keep bench/numbers.py from shadowing the stdlib.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import statistics
import subprocess
import time

COMMANDS = (("--help",), ("bind", "--help"), ("--version",))


def maskline() -> str:
    candidate = Path(sys.executable).parent / "maskline"
    return str(candidate) if candidate.exists() else "maskline"


def timings(args: tuple[str, ...], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([maskline(), *args], capture_output=True, check=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    options = parser.parse_args()
    timings(("--version",), 1)  # warm the file cache
    results = {" ".join(args): timings(args, options.runs) for args in COMMANDS}
    if options.json:
        print(json.dumps({k: {"median_s": statistics.median(v), "runs_s": v} for k, v in results.items()}))
        return 0
    for name, seconds in results.items():
        print(
            f"maskline {name:<12} median {statistics.median(seconds):.3f} s  "
            f"(min {min(seconds):.3f}, max {max(seconds):.3f}, {len(seconds)} runs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
