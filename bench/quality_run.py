"""Running one benchmark command: its wall time and the peak memory of its process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

LOG_TAIL_CHARS = 3000
SEED = 0  # PYTHONHASHSEED of every command (the benchmark's seed)


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class TreeMemoryPoller(threading.Thread):
    """Samples the resident memory of a process and all its descendants.

    GNU time reports the peak of the largest single process; a tool that works in several
    processes (worker pools) uses their sum, which only sampling the tree can see.
    """

    def __init__(self, root_pid: int, *, include_root: bool, interval_s: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.include_root = include_root
        self.interval_s = interval_s
        self.peak_tree_kb = 0
        self.peak_process_kb = 0
        self._stop_event = threading.Event()
        self.enabled = Path("/proc/self/status").exists()

    def run(self) -> None:
        while self.enabled and not self._stop_event.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        children = _children_by_parent()
        pids, queue = [], [self.root_pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            queue.extend(children.get(pid, ()))
        total = 0
        for pid in pids:
            if pid == self.root_pid and not self.include_root:
                continue
            rss, hwm = _status_kb(pid)
            total += rss
            self.peak_process_kb = max(self.peak_process_kb, hwm)
        self.peak_tree_kb = max(self.peak_tree_kb, total)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _gnu_time() -> str | None:
    path = Path("/usr/bin/time")
    return str(path) if path.exists() else None


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONHASHSEED"] = str(SEED)
    return env


def run_measured(cmd: list[str], *, cwd: Path, name: str, timeout_s: float) -> dict[str, Any]:
    """Run one command alone; its wall time, peak memory, exit code and output tails."""
    stdout_path, stderr_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    time_path = cwd / f"{name}.time"
    gnu_time = _gnu_time()
    full = [gnu_time, "-f", "%e %M", "-o", str(time_path), *cmd] if gnu_time else cmd
    timed_out = False
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, cwd=cwd, stdout=out, stderr=err, env=child_env(), start_new_session=True
        )
        poller = TreeMemoryPoller(proc.pid, include_root=gnu_time is None)
        poller.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        wall_s = time.perf_counter() - start
        poller.stop()

    largest_kb = None
    if gnu_time and time_path.exists():
        # On a failure GNU time writes "Command exited with non-zero status N" first.
        lines = time_path.read_text().strip().splitlines()
        try:
            elapsed, maxrss = lines[-1].split()
            wall_s, largest_kb = float(elapsed), int(maxrss)
        except (IndexError, ValueError):
            pass
    # GNU time passes the child's exit status through; a signal shows as 128 + N.
    peak_kb = max(largest_kb or 0, poller.peak_tree_kb, poller.peak_process_kb)
    return {
        "command": cmd,
        "returncode": returncode,
        "timed_out": timed_out,
        "wall_s": round(wall_s, 2),
        "peak_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "peak_largest_process_mb": round(largest_kb / 1024, 1) if largest_kb else None,
        "peak_process_tree_mb": round(poller.peak_tree_kb / 1024, 1) or None,
        "memory_source": "GNU time + /proc sampling" if gnu_time else "/proc sampling",
        "stderr_tail": _tail(stderr_path),
        "stdout_tail": _tail(stdout_path, 1000),
    }
