"""The long fuzz run of the whole REST API (issue 11): 10,000 cases or more.

Starts a real `tabpilot serve` in token mode on a free loopback port with a temporary data
directory, seeds users alice and bob (a dataset, a trained and deployed model, a canceled job
each), then runs the fuzzer of tests/security/fuzzing.py (schemathesis 4 on the server's own
/openapi.json: every operation, positive and negative cases, four callers, ids swapped for
alice's and bob's real objects) until at least `--cases` requests were sent, pass after pass
with a new seed each. Prints a table (cases, operations, answers by status, failures by kind,
5xx, duration) and writes it as JSON to bench/results/fuzz-<time>.json.

    python bench/fuzz.py                  # 10,000 cases or more (about 6 minutes on 2 cores)
    python bench/fuzz.py --cases 2000     # a shorter run

Exits 1 when any check failed (each failure is printed with a curl command to reproduce it).
The bounded run of `make test` is tests/security/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tests.security.fuzzing import (  # noqa: E402 - the repository root is put on the path first
    FAILURE_KINDS,
    Fuzzer,
    Tally,
    bob_changes,
    load_schema,
    seeded_server,
    snapshot,
)

RESULTS_DIR = BENCH_DIR / "results"


def run(cases: int, seed: int, root: Path) -> dict[str, Any]:
    """Seed a server under `root` and fuzz it until `cases` requests were sent."""
    started = time.monotonic()
    with seeded_server(root) as (server, seeded):
        seeded_s = time.monotonic() - started
        before = snapshot(server, "bob", seeded["bob"])
        schema = load_schema(server)
        operations = sorted(result.ok().label for result in schema.get_all_operations())
        fuzzer = Fuzzer(server, seeded)
        # Two generation modes per operation; /health and /ready have no negative cases.
        per_pass = math.ceil(cases / max(2 * len(operations) - 2, 1))
        passes = 0
        while fuzzer.tally.cases < cases and passes < 5:
            fuzzer.run(schema, examples=per_pass, rng_seed=seed + passes)
            passes += 1
        tally = fuzzer.tally
        changed = bob_changes(server, seeded["bob"], before)
    return summary(tally, operations, seeded_s, time.monotonic() - started, passes, changed)


def summary(
    tally: Tally,
    operations: list[str],
    seeded_s: float,
    total_s: float,
    passes: int,
    bob_changed: list[str],
) -> dict[str, Any]:
    by_operation: dict[str, dict[str, int]] = {op: {} for op in operations}
    for (op, status), n in sorted(tally.by_outcome.items()):
        group = f"{status // 100}xx"
        by_operation.setdefault(op, {})[group] = by_operation[op].get(group, 0) + n
    return {
        "cases": tally.cases,
        "operations": len(operations),
        "operations_fuzzed": len(tally.by_operation),
        "passes": passes,
        "by_status": {str(k): v for k, v in sorted(tally.by_status.items())},
        "by_operation": by_operation,
        "failures_by_kind": {k: tally.failures_by_kind().get(k, 0) for k in FAILURE_KINDS},
        "server_errors": tally.server_errors(),
        "bob_changed": bob_changed,
        "fuzz_seconds": round(tally.seconds, 1),
        "seed_seconds": round(seeded_s, 1),
        "total_seconds": round(total_s, 1),
        "failures": [vars(f) for f in tally.failures[:200]],
        "skipped": tally.skipped,
    }


def print_table(result: dict[str, Any]) -> None:
    rate = result["cases"] / max(result["fuzz_seconds"], 0.001)
    print()
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| cases (requests sent) | {result['cases']:,} |")
    print(f"| operations fuzzed | {result['operations_fuzzed']} of {result['operations']} |")
    statuses = ", ".join(f"{k}: {v:,}" for k, v in result["by_status"].items())
    print(f"| answers by status | {statuses} |")
    for kind, n in result["failures_by_kind"].items():
        print(f"| failures: {kind} | {n} |")
    print(f"| 5xx answers | {result['server_errors']} |")
    print(f"| bob's objects changed | {len(result['bob_changed'])} |")
    print(f"| fuzzing time | {result['fuzz_seconds']:.0f} s ({rate:.0f} cases/s) |")
    print(f"| seeding (two 5 s training jobs) | {result['seed_seconds']:.0f} s |")
    print()
    print("| operation | 2xx | 4xx | 5xx |")
    print("| --- | --- | --- | --- |")
    for op, groups in result["by_operation"].items():
        print(
            f"| {op} | {groups.get('2xx', 0)} | {groups.get('4xx', 0)} | {groups.get('5xx', 0)} |"
        )
    for failure in result["failures"][:30]:
        print(f"\n{failure['kind']}: {failure['operation']} as {failure['caller']}")
        print(f"  -> {failure['status']}: {failure['detail'][:300]}")
        print(f"  {failure['curl'][:600]}")
    if result["bob_changed"]:
        print("\nbob's objects changed:", result["bob_changed"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="requests to send at least")
    parser.add_argument("--seed", type=int, default=1, help="Hypothesis seed of the first pass")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tabpilot-fuzz-") as tmp:
        result = run(args.cases, args.seed, Path(tmp))
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    print_table(result)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"fuzz-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwritten: {out}")
    failed = sum(result["failures_by_kind"].values()) + len(result["bob_changed"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
