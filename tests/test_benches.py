"""Every benchmark the README promises runs, in its smallest size, as the README runs it (`.venv/bin/python
bench/X.py`, the script's folder first on sys.path): a benchmark that no longer runs is a broken feature.
The 200-device centre run is left to `make bench` (its simulators alone take two minutes to start); its
script must still answer --help."""

import os
import subprocess
import sys

import pytest

from tests.http import REPO

TINY = {
    "ingest.py": "--samples 5000 --rounds 1",
    "gateway_paths.py": "--seconds 1 --messages 300 --variables 5 --tls-printers 2 --tls-messages 100 --rounds 1"
    " --no-center",
    "bookings.py": "--bookings 20 --clients 2 --devices 3 --rounds 1 --requests 5 --concurrent 1",
    "oee_daily.py": "--devices 2 --days 2 --runs 1 --hz-devices 0 --report-bookings 20",
    "live.py": "--clients 2 --changes 4",
    "scale.py": "--samples 10000 --rounds 1 --lag-seconds 1",
}


def run(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FABHUB_")}
    return subprocess.run(
        [sys.executable, f"bench/{script}", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_every_benchmark_is_covered_here():
    scripts = {p.name for p in (REPO / "bench").glob("*.py")}
    assert scripts == set(TINY) | {"center.py"}
    makefile = (REPO / "Makefile").read_text()
    assert all(f"bench/{name}" in makefile for name in TINY)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_in_its_smallest_size(script):
    result = run(script, *TINY[script].split())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "ratio" in result.stdout, result.stdout[-2000:]


def test_the_centre_benchmark_starts():
    result = run("center.py", "--help", timeout=60)
    assert result.returncode == 0 and "--duration" in result.stdout, result.stderr
