#!/usr/bin/env python3
"""Autobahn WebSocket conformance run against termroom's /ws/echo.

Starts the termroom binary with --diagnostics on a free loopback port and a
temporary data directory, runs the Autobahn cases with kosoku, writes a
normalized summary (one line per case: id, behaviour, close behaviour, close
code) and compares it with the committed expectation file. Any difference
fails the run, so a regression in the WebSocket stack fails `make test`.

Usage: conformance.py BINARY EXPECTED [--update] [--report DIR]
  --update      rewrite EXPECTED from this run instead of comparing
  --report DIR  also write kosoku's HTML/JSON reports to DIR

An expected line may list alternatives for a field with `|` (for cases whose
verdict depends on timing, e.g. `6.4.1 NON-STRICT|OK OK 1007`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kosoku import FailureError, run_fuzzingclient

# Excluded case groups: none. The performance group 9.* sends messages up to
# 16 MiB; the echo socket has the chat limit of 16 KiB and closes with 1009
# at the first oversized frame, so the whole suite takes seconds.
EXCLUDE: list[str] = []
# Cases run in parallel: the suite is I/O bound and the server is one process.
CONCURRENCY = 4
# How long the server may take to accept connections.
START_TIMEOUT_S = 60
# How long the whole suite may take.
RUN_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"conformance: termroom exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("conformance: termroom did not start listening")


def normalize(results) -> dict[str, str]:
    lines = {}
    for r in results:
        code = r.remote_close_code if r.remote_close_code is not None else "-"
        lines[r.case_id] = f"{r.behavior.value} {r.behavior_close.value} {code}"
    return lines


def sort_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


def read_expected(path: Path) -> dict[str, list[str]]:
    expected = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        case_id, *fields = line.split()
        expected[case_id] = fields
    return expected


def matches(fields: list[str], actual: str) -> bool:
    got = actual.split()
    return len(fields) == len(got) and all(
        g in f.split("|") for f, g in zip(fields, got)
    )


async def run_cases(url: str):
    try:
        return await asyncio.wait_for(
            run_fuzzingclient(url, None, EXCLUDE, concurrency=CONCURRENCY),
            RUN_TIMEOUT_S,
        )
    except FailureError as failure:
        # Raised when any case is not OK; the results are still all there.
        return failure.results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("expected", type=Path)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--report", type=Path)
    args = ap.parse_args()

    port = free_port()
    data = tempfile.mkdtemp(prefix="termroom-conformance-")
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    proc = subprocess.Popen(
        [
            args.binary,
            "serve",
            "--addr",
            f"127.0.0.1:{port}",
            "--data-dir",
            data,
            "--diagnostics",
            "--local-target",
            "off",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, time.monotonic() + START_TIMEOUT_S)
        started = time.monotonic()
        results = asyncio.run(run_cases(f"ws://127.0.0.1:{port}/ws/echo"))
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)

    actual = normalize(results)
    if args.report:
        from kosoku._report import write_reports

        write_reports(results, str(args.report))
    excluded = " ".join(EXCLUDE) or "none"
    print(f"conformance: {len(actual)} Autobahn cases in {elapsed:.1f} s (excluded: {excluded})")
    counts: dict[str, int] = {}
    for v in actual.values():
        counts[v.split()[0]] = counts.get(v.split()[0], 0) + 1
    print("conformance: behaviours: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))

    if args.update:
        header = args.expected.read_text().splitlines() if args.expected.exists() else []
        header = [l for l in header if l.startswith("#")]
        body = [f"{c} {actual[c]}" for c in sorted(actual, key=sort_key)]
        args.expected.write_text("\n".join(header + body) + "\n")
        print(f"conformance: wrote {args.expected}")
        return 0

    expected = read_expected(args.expected)
    passed = failed = 0
    for case_id in sorted(set(expected) | set(actual), key=sort_key):
        want = expected.get(case_id)
        got = actual.get(case_id)
        if want is not None and got is not None and matches(want, got):
            passed += 1
            continue
        failed += 1
        print(
            f"conformance: {case_id}: expected {' '.join(want) if want else '(no case)'}, "
            f"got {got or '(not run)'}"
        )
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
