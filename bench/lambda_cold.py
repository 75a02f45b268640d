"""Cold start of the API on Lambda, measured on the zip's own files.

    .venv/bin/python bench/lambda_cold.py [--runs 10] [--tree DIR]

Builds the zip's tree (deploy/lambda/build.py, what `make lambda-zip` packs) unless `--tree`
names one, then starts fresh interpreters that see only that tree (no site-packages) and time,
in each: importing the handler module (what Lambda's init phase does), and the first event
(`GET /health`, which builds the settings, stores and app). The peer in the same run is the
floor: a one-route FastAPI app behind Mangum, from the same tree. Target: Tabpilot's import
under 1 s. Prints a table (milliseconds, median and worst of the runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Each child: HEAD, then the app's part (imports, `t1`, and `make_handle`), then TAIL, which
# times the first request (building the handler included) and a warm one.
HEAD = """
import json, resource, sys, time
t0 = time.perf_counter()
tree, root, data_dir = sys.argv[1:4]
sys.path = [tree, root] + [p for p in sys.path if "-packages" not in p and p]
"""

TAIL = """
from tests.aws.lambda_events import API_HOST, http_event
handle = make_handle()
status = handle(http_event("GET", "/health"), None)["statusCode"]
t2 = time.perf_counter()
handle(http_event("GET", "/health"), None)
t3 = time.perf_counter()
cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "warm": t3 - t2, "status": status,
                  "cpu": cpu}))
"""

TABPILOT = (
    HEAD
    + textwrap.dedent(
        """
    import tabpilot.aws.lambda_handler as handler_module
    t1 = time.perf_counter()

    def make_handle():
        from tabpilot.settings import load_settings
        settings = load_settings(data_dir=data_dir, auth="token", runner_uri="inline://",
                                 allowed_hosts=API_HOST)
        return handler_module.build_handler(settings)
    """
    )
    + TAIL
)

FLOOR = (
    HEAD
    + textwrap.dedent(
        """
    from fastapi import FastAPI
    from mangum import Mangum
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    t1 = time.perf_counter()

    def make_handle():
        return Mangum(app, lifespan="off")
    """
    )
    + TAIL
)


def one_run(code: str, tree: Path, data_dir: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tree), str(ROOT), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(data_dir)},
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != 200:
        raise SystemExit(f"/health answered {result['status']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", type=Path, help="an unzipped tree from deploy/lambda/build.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tabpilot-cold-") as scratch:
        tree = args.tree
        if tree is None:
            tree = Path(scratch) / "tree"
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "deploy/lambda/build.py"),
                    "--out",
                    str(Path(scratch) / "api.zip"),
                    "--tree",
                    str(tree),
                ],
                check=True,
            )
        rows = []
        for name, code in (("FastAPI + Mangum, one route (floor)", FLOOR), ("Tabpilot", TABPILOT)):
            runs = [one_run(code, tree, Path(scratch) / f"data{i}") for i in range(args.runs)]
            rows.append((name, runs))
    print(f"\nCold start from the Lambda zip's tree, {args.runs} fresh interpreters each (ms)\n")
    print(
        "| app | import | import, worst | first request | cold start (import + first) "
        "| CPU of the cold start | warm request |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, runs in rows:
        imports = [r["import"] * 1000 for r in runs]
        firsts = [r["first"] * 1000 for r in runs]
        warms = [r["warm"] * 1000 for r in runs]
        colds = [(r["import"] + r["first"]) * 1000 for r in runs]
        cpus = [r["cpu"] * 1000 for r in runs]
        print(
            f"| {name} | {statistics.median(imports):.0f} | {max(imports):.0f} | "
            f"{statistics.median(firsts):.0f} | {statistics.median(colds):.0f} | "
            f"{statistics.median(cpus):.0f} | {statistics.median(warms):.1f} |"
        )
    print(
        "\nMedians unless marked. CPU: user + system seconds of the whole interpreter "
        "(less sensitive than wall time to other load on the machine)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
