"""The JobRunner interface and the conventions every runner and service shares.

The metadata store is the source of truth. A runner is told only job ids; a worker reads
the job's whole spec from the store, so adding a training option touches no runner.

Conventions:
- `JobRecord.spec` is `TrainSpec.to_dict()` (`tabpilot.engine.spec`): the resolved choices
  with the reason for each, read back by the worker with `TrainSpec.from_dict`.
- `JobRecord.progress` holds the latest `ProgressEvent` fields: phase, elapsed, budget,
  message, trials, estimator, best_score, best_estimator.
- Job events have kind "status", "progress" or "log". Status changes go through
  `MetadataStore.transition_job` (or a claim), which writes the "status" event with them in
  one transaction, in one shape (`tabpilot.metadata.transitions.STATUS_EVENT_FIELDS`);
  workers append "progress" and "log" events with `append_job_event`.
- Artifact keys are built by `tabpilot.storage.keys` only: `datasets/<dataset_id>/data.csv`
  (or `data.csv.gz`, as uploaded) and `models/<model_id>/<file>` for model.onnx, model.pkl,
  model.json, eda.html, report.html; `ModelRecord.artifact_prefix` is `models/<model_id>`.
- Cancelling is done in the store (status -> canceled); a worker whose heartbeat finds it no
  longer holds the job stops it. `JobRunner.cancel` only makes that faster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tabpilot.context import AppContext
    from tabpilot.settings import Settings


class JobRunner(ABC):
    """Gets queued jobs executed somewhere: inline, in local processes, on AWS Batch."""

    def check(self, settings: Settings | None = None) -> None:  # noqa: B027 - optional hook
        """Raise a clear error (`InvalidInput`) when something the runner needs is missing, such
        as an AWS Batch queue; `tabpilot serve` calls it before listening. Default: nothing."""

    def start(self, ctx: AppContext) -> None:  # noqa: B027 - optional hook
        """Begin executing jobs (start workers, the lease reaper). Default: nothing."""

    @abstractmethod
    def submit(self, job_id: str) -> None:
        """Tell the runner a QUEUED job exists. The job is already in the store."""

    def cancel(self, job_id: str) -> None:  # noqa: B027 - optional hook
        """Stop a running job now if this runner is running it. Best effort."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop workers; their running jobs are queued again or failed (or left to a reaper)."""
