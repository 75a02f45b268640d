"""`execute_job`: one claimed job from the store to a model record, whatever runs it.

The same function runs inline (tests, `tabpilot train`), in a local worker's child process and
in a Batch container (`tabpilot run-job`). It needs only the job id: the spec, the dataset and
its file all come from the stores. The engine (and so FLAML) is imported inside the function,
so importing this module stays cheap and a server that never trains never loads it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabpilot.engine.spec import TrainSpec
from tabpilot.errors import Conflict, NotFound, TabpilotError
from tabpilot.records import DatasetRecord, JobRecord, JobStatus, ModelRecord, new_id
from tabpilot.scrub import scrub_paths
from tabpilot.storage import keys

if TYPE_CHECKING:
    from tabpilot.context import AppContext
    from tabpilot.engine.training.train import ProgressEvent

log = logging.getLogger("tabpilot.jobs")

PROGRESS_INTERVAL = 0.5
"""Seconds between writes of `job.progress` (a phase change is written at once)."""
PROGRESS_EVENT_INTERVAL = 1.0
"""Seconds between "progress" events in the job's event log."""
TEMP_PREFIX = "tabpilot-"
"""Work folders are `<tmp>/tabpilot-<job_id>-XXXX`, so a runner can clean up after a kill."""
MAX_ERROR_LENGTH = 2000


class JobStopped(Exception):
    """The worker no longer holds the job (canceled, or reclaimed); stop without a trace."""


def temp_dir_pattern(job_id: str) -> str:
    """The glob, inside `tempfile.gettempdir()`, of the work folders of `job_id`."""
    return f"{TEMP_PREFIX}{job_id}-*"


def execute_job(ctx: AppContext, job_id: str, *, worker_id: str) -> None:
    """Train the RUNNING job `job_id`, held by `worker_id`, and record the outcome.

    Every outcome is written to the store: SUCCEEDED with `model_id`, or FAILED with a message
    a user can act on. A job canceled meanwhile is left as it is (every write is guarded on
    the job still being RUNNING under our lease), and the work stops at the next progress
    report. Only programming or store errors outside the job escape.

    Raises:
        NotFound: if the job does not exist.
        Conflict: if the job is not RUNNING under `worker_id`'s lease.
    """
    job = ctx.metadata.get_job(job_id, owner=None)
    if job.status != JobStatus.RUNNING or job.lease_owner != worker_id:
        raise Conflict(
            f'Job "{job_id}" is {job.status.value} and held by {job.lease_owner or "nobody"}, '
            f'not running under worker "{worker_id}"',
            details={"status": job.status.value},
        )
    _JobExecution(job, ctx, worker_id).run()


class _JobExecution:
    def __init__(self, job: JobRecord, ctx: AppContext, worker_id: str) -> None:
        self.job = job
        self.ctx = ctx
        self.meta = ctx.metadata
        self.worker_id = worker_id
        self.model_id = new_id("mdl")
        self.uploaded = False
        self.scrub: list[tuple[str, str]] = []  # local paths -> what a user may see instead
        self.progress = _ProgressWriter(self)

    @property
    def guard(self) -> dict[str, Any]:
        return {"if_status": [JobStatus.RUNNING], "if_lease_owner": self.worker_id}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.meta.append_job_event(self.job.id, owner=None, kind=kind, data=data)

    def finish(self, to: JobStatus, message: str, **fields: Any) -> JobRecord | None:
        """Move our RUNNING job to `to`; None when it is no longer ours (canceled, reclaimed)."""
        try:
            return self.meta.transition_job(
                self.job.id,
                owner=None,
                expect=JobStatus.RUNNING,
                to=to,
                held_by=self.worker_id,
                message=message,
                **fields,
            )
        except NotFound:  # deleted meanwhile
            return None

    def run(self) -> None:
        # The claim already recorded the "running" status event.
        job = self.job
        log.info("job %s: attempt %d on %s", job.id, job.attempts, self.worker_id)
        try:
            with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{job.id}-") as tmp:
                self.scrub.append((tmp, "<work dir>"))
                self._train(Path(tmp))
        except JobStopped:
            log.info("job %s: no longer held by %s (canceled?); stopped", job.id, self.worker_id)
            self._discard()
        except TabpilotError as exc:
            self._fail(exc.message)
        except MemoryError:
            log.exception("job %s: out of memory", job.id)
            self._fail(
                "Training ran out of memory; try a smaller dataset, fewer columns or fewer "
                "estimators, or give the worker more memory."
            )
        except Exception as exc:
            log.exception("job %s: internal error", job.id)
            self._fail(f"internal error: {type(exc).__name__}: {exc}")

    # -- the happy path ------------------------------------------------------------------------

    def _train(self, tmp: Path) -> None:
        started = time.perf_counter()
        job = self.job
        # The spec as resolved at creation, reasons included (they reach the model card).
        spec = TrainSpec.from_dict(job.spec)
        self.progress.report_phase("preparing", "fetching the dataset", spec.time_budget)
        dataset = self.meta.get_dataset(job.dataset_id, owner=job.owner)
        data_path = self._fetch_dataset(dataset, tmp / "input")

        from tabpilot.engine.training.run import run_training  # imports the ML libraries

        out_dir = tmp / "bundle"
        outcome = run_training(
            data_path, spec, out_dir=out_dir, progress=self.progress, started=started
        )
        if self.progress.stopped:
            raise JobStopped
        self.progress.report_phase("uploading", "storing the model files", outcome.result.budget)
        prefix = keys.model_prefix(self.model_id)
        self.uploaded = True
        files = sorted(p for p in out_dir.rglob("*") if p.is_file())
        for path in files:
            name = path.relative_to(out_dir).as_posix()
            self.ctx.artifacts.put_file(keys.model_file(self.model_id, name), path)
        model = ModelRecord(
            id=self.model_id,
            owner=job.owner,
            job_id=job.id,
            card=outcome.card.to_dict(),
            artifact_prefix=prefix,
        )
        final = self.progress.final(outcome.elapsed)
        # The model record and SUCCEEDED are one transaction: a cancel that wins the race, or
        # a kill before the commit, leaves no model on a job that did not succeed.
        done = self.finish(
            JobStatus.SUCCEEDED,
            f"trained model {self.model_id} in {final['elapsed']:.1f} s",
            model=model,
            progress=final,
        )
        if done is None:
            raise JobStopped  # not ours any more: _discard removes the uploaded files
        log.info("job %s: succeeded in %.1f s: model %s", job.id, outcome.elapsed, self.model_id)

    def _fetch_dataset(self, dataset: DatasetRecord, folder: Path) -> Path:
        """The dataset's file on local disk, named as uploaded (the model card shows it)."""
        key = _dataset_key(self.ctx, dataset)
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(dataset.filename or "").name).strip("._")
        dest = folder / (name or keys.DATA_FILE)
        self.scrub.append((str(dest), dataset.filename or dest.name))
        local = self.ctx.artifacts.local_path_hint(key)
        if local is not None:
            try:
                os.symlink(local, dest)  # zero-copy: datasets can be gigabytes
                return dest
            except OSError:
                pass
        self.ctx.artifacts.get_file(key, dest)
        return dest

    # -- the other endings ---------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """Local paths of this worker -> what a user may see (the uploaded file's name), then
        any other server path -> `<server path>` (`tabpilot.scrub`)."""
        for path, shown in sorted(self.scrub, key=lambda item: -len(item[0])):
            text = text.replace(path, shown)
        return scrub_paths(text)

    def _fail(self, message: str) -> None:
        message = self.scrub_text(message).strip() or "internal error: the job failed silently"
        if len(message) > MAX_ERROR_LENGTH:
            message = message[: MAX_ERROR_LENGTH - 1] + "…"
        self._discard()
        if self.finish(JobStatus.FAILED, message, error=message) is None:
            log.info("job %s: failed after it was canceled: %s", self.job.id, message)
            return
        log.info("job %s: failed: %s", self.job.id, message)

    def _discard(self) -> None:
        """Remove the files this attempt stored, so a failed or canceled job orphans nothing.

        The model record needs no removal: it is written only with SUCCEEDED, in one
        transaction. The files stay when that transaction did commit after all (an error
        raised after the commit), since the succeeded job's model needs them.
        """
        try:
            if self.uploaded and not self._model_recorded():
                self.ctx.artifacts.delete_prefix(keys.model_prefix(self.model_id))
        except Exception:
            log.exception("job %s: could not remove model %s", self.job.id, self.model_id)

    def _model_recorded(self) -> bool:
        return self.meta.find_model(self.model_id, owner=None) is not None


def _dataset_key(ctx: AppContext, dataset: DatasetRecord) -> str:
    for name in keys.DATA_FILES:
        if ctx.artifacts.exists(key := keys.dataset_file(dataset.id, name)):
            return key
    prefix = keys.dataset_prefix(dataset.id)
    found = [k for k in ctx.artifacts.list_keys(prefix) if k.endswith((".csv", ".csv.gz"))]
    if found:
        return found[0]
    raise NotFound(
        f'The file of dataset "{dataset.id}" ({dataset.filename}) is missing from the '
        "artifact store; upload the dataset again and start a new job.",
        details={"dataset_id": dataset.id},
    )


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def progress_fields(event: ProgressEvent) -> dict[str, Any]:
    """`ProgressEvent` -> the JSON-safe dict kept in `job.progress` and "progress" events."""
    return {
        "phase": event.phase,
        "elapsed": round(float(event.elapsed), 2),
        "budget": _plain_number(float(event.budget or 0.0)),
        "message": event.message,
        "trials": int(event.trials or 0),
        "estimator": event.estimator,
        "best_score": _plain_number(None if event.best_score is None else float(event.best_score)),
        "best_estimator": event.best_estimator,
    }


class _ProgressWriter:
    """The engine's progress callback: throttled writes of `job.progress` and events.

    Each write is guarded on the job still being ours, so it doubles as the cancel check:
    once the job is no longer ours it raises `JobStopped` into the engine, which unwinds.
    """

    def __init__(self, run: _JobExecution) -> None:
        self.run = run
        self.phase: str | None = None
        self.latest: dict[str, Any] = {}
        self.last_write = -math.inf
        self.last_event = -math.inf
        self.stopped = False
        self.started = time.perf_counter()

    def __call__(self, event: ProgressEvent) -> None:
        self.update(progress_fields(event))

    def report_phase(self, phase: str, message: str, budget: float | None) -> None:
        self.update(
            {
                **self.latest,
                "phase": phase,
                "message": message,
                "elapsed": round(time.perf_counter() - self.started, 2),
                "budget": budget if budget is not None else self.latest.get("budget"),
            }
        )

    def final(self, elapsed: float) -> dict[str, Any]:
        return {**self.latest, "phase": "done", "message": "finished", "elapsed": round(elapsed, 2)}

    def update(self, data: dict[str, Any]) -> None:
        if self.stopped:
            raise JobStopped
        data["message"] = self.run.scrub_text(str(data.get("message") or ""))
        if not data.get("budget") and self.latest.get("budget"):
            data["budget"] = self.latest["budget"]
        if not data.get("trials") and self.latest.get("trials"):
            # Phases after the search report no trials; the search's results still stand.
            for key in ("trials", "best_score", "best_estimator"):
                data[key] = self.latest.get(key)
        self.latest = data
        now = time.monotonic()
        changed = data["phase"] != self.phase
        if changed or now - self.last_write >= PROGRESS_INTERVAL:
            self._write(data)
            self.last_write = now
        if changed:
            self.phase = data["phase"]
            self.run.event("log", {"phase": data["phase"], "message": data["message"]})
        elif now - self.last_event >= PROGRESS_EVENT_INTERVAL:
            self.run.event("progress", data)
            self.last_event = now

    def _write(self, data: dict[str, Any]) -> None:
        try:
            self.run.meta.update_job(self.run.job.id, owner=None, progress=data, **self.run.guard)
        except (Conflict, NotFound):
            self.stopped = True
            raise JobStopped from None


def remove_temp_dirs(job_id: str) -> None:
    """Delete work folders a killed attempt of `job_id` left behind on this machine."""
    for path in Path(tempfile.gettempdir()).glob(temp_dir_pattern(job_id)):
        shutil.rmtree(path, ignore_errors=True)
