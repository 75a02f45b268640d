"""Build the API's Lambda zip (`make lambda-zip`): Tabpilot and what its API needs, no training.

    python deploy/lambda/build.py [--out build/lambda/api.zip] [--tree DIR]

What goes in: the `tabpilot` package and every distribution that the core dependencies and the
`aws` extra need (the requirement closure, read from the installed packages' metadata), copied
from this environment's site-packages. The environment must match Lambda's: Python 3.11 on
x86_64 Linux (the python3.11 runtime); the script refuses another Python.

What stays out, and why (Lambda's limit is 250 MB unzipped, layers included):
- the training libraries (the `train` extra): the API never imports them
  (tests/api/test_import_boundary.py), and the zip is tested to have none;
- boto3, botocore, s3transfer, jmespath: the Lambda runtime provides them (botocore alone is
  32 MB, mostly models of services Tabpilot does not call);
- uvicorn's speed-ups (uvloop, httptools) and uvicorn's own server: Lambda has no server;
- the command line's libraries (click, rich and what rich brings): Lambda runs no command;
- test suites, C headers and Cython sources shipped inside wheels, `__pycache__`;
- the parts of pyarrow the API does not load (Flight, the S3/GCS/HDFS/Azure filesystems, ORC):
  it reads CSV with `pyarrow.csv` and `pyarrow.compute` only;
- debug symbols: pyarrow's shared libraries are stripped (`strip --strip-unneeded`) when
  `strip` exists;
- onnxruntime's C library (`libonnxruntime.so`, 34 MB): its Python module has the runtime
  linked in and does not load it.

The result is printed: files, unzipped and zipped size.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "tabpilot"
LAMBDA_LIMIT_MB = 250
LAMBDA_PYTHON = (3, 11)

# Distributions that never go in (see the module docstring for the reasons).
EXCLUDED_DISTS = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "uvicorn",
    "uvloop",
    "httptools",
    "rich",
    "pygments",
    "markdown-it-py",
    "mdurl",
    "click",
}
# Paths inside site-packages that never go in.
EXCLUDED_PATTERNS = (
    "*/__pycache__/*",
    "*.pyc",
    "*/tests/*",
    "*/testing/_private/*",
    "pyarrow/include/*",
    "pyarrow/src/*",
    "*.pxd",
    "*.pyx",
    "*.h",
    "pyarrow/*flight*",
    "pyarrow/*s3*",
    "pyarrow/*gcsfs*",
    "pyarrow/*hdfs*",
    "pyarrow/*azurefs*",
    "pyarrow/*orc*",
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.*.*",
    "onnxruntime/transformers/*",
    "onnxruntime/quantization/*",
    "onnxruntime/tools/*",
    "onnxruntime/capi/libonnxruntime.so*",
)
# Training libraries: the zip is checked to contain none of them.
TRAINING_PACKAGES = ("sklearn", "flaml", "lightgbm", "xgboost", "catboost", "ray", "torch")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(root: str = "tabpilot", extras: tuple[str, ...] = ("aws",)) -> list[str]:
    """The installed distributions that `root[extras]` needs, itself included, by name."""
    seen: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while pending:
        name, wanted = pending.pop()
        key = _canonical(name)
        if key in seen or key in EXCLUDED_DISTS:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({**default_environment(), "extra": extra})
                for extra in ("", *wanted)
            ):
                continue
            pending.append((req.name, tuple(req.extras)))
    return sorted(seen)


def _excluded(relative: str) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) for pattern in EXCLUDED_PATTERNS)


def copy_distribution(name: str, site: Path, tree: Path) -> int:
    """Copy one installed distribution's files (its RECORD) into `tree`; returns the count."""
    dist = metadata.distribution(name)
    count = 0
    for file in dist.files or []:
        relative = str(file)
        if relative.startswith("..") or _excluded(relative):
            continue  # scripts outside site-packages, tests, headers
        source = site / relative
        if not source.is_file():
            continue
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        count += 1
    return count


def copy_tabpilot(tree: Path) -> int:
    """The project's own package, from the source tree (the install is editable)."""
    count = 0
    for source in SOURCE.rglob("*"):
        relative = source.relative_to(SOURCE.parent)
        if source.is_file() and not _excluded(str(relative)):
            target = tree / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            count += 1
    return count


def strip_libraries(tree: Path) -> None:
    """Drop debug symbols from pyarrow's shared libraries, which are shipped unstripped.

    Only pyarrow's: libraries that auditwheel has patched (numpy.libs, for one) break when
    stripped ("ELF load command address/offset not page-aligned").
    """
    strip = shutil.which("strip")
    if strip is None:
        print("strip not found: pyarrow's libraries keep their debug symbols")
        return
    libraries = [p for p in (tree / "pyarrow").glob("*.so*") if p.is_file()]
    for lib in libraries:
        subprocess.run([strip, "--strip-unneeded", str(lib)], check=False, capture_output=True)


def tree_bytes(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


def build_tree(tree: Path) -> dict[str, int]:
    """Fill `tree` with what the zip holds; returns counts per distribution."""
    site = Path(metadata.distribution("fastapi").locate_file(""))
    counts = {"tabpilot": copy_tabpilot(tree)}
    for name in requirement_closure():
        if name != "tabpilot":
            counts[name] = copy_distribution(name, site, tree)
    strip_libraries(tree)
    found = [p for p in TRAINING_PACKAGES if (tree / p).exists()]
    if found:
        raise SystemExit(f"a training library got into the zip: {', '.join(found)}")
    return counts


def write_zip(tree: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tree).as_posix())
    os.replace(partial, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda" / "api.zip")
    parser.add_argument("--tree", type=Path, help="also keep the unzipped tree here")
    args = parser.parse_args(argv)
    if sys.version_info[:2] != LAMBDA_PYTHON:
        wanted = ".".join(map(str, LAMBDA_PYTHON))
        running = sys.version.split()[0]
        print(
            f"Build the zip with Python {wanted} (Lambda's python{wanted} runtime), not {running}"
        )
        return 2
    with tempfile.TemporaryDirectory(prefix="tabpilot-lambda-") as scratch:
        tree = args.tree or Path(scratch) / "tree"
        if tree.exists():
            shutil.rmtree(tree)
        counts = build_tree(tree)
        unzipped = tree_bytes(tree)
        write_zip(tree, args.out)
    zipped = args.out.stat().st_size
    print(f"{args.out}: {sum(counts.values())} files from {len(counts)} distributions")
    limit = f"Lambda's limit: {LAMBDA_LIMIT_MB} MB"
    print(f"unzipped {unzipped / 1e6:.1f} MB ({limit}), zipped {zipped / 1e6:.1f} MB")
    if unzipped > LAMBDA_LIMIT_MB * 1e6:
        print("too large for Lambda")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
