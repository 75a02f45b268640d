"""Jobs, their events, claims and leases in DynamoDB: the job part of `DynamoMetadataStore`.

Every change of a job is optimistic: read the job (a consistent read), decide, then write on
condition that its `rev` (bumped by every write of the record) is still the one read, and retry
when it is not. A status change also requires the event counter it read (`event_seq`), and
puts its status event (`event#<seq>`, on condition that it does not exist) in the same
TransactWriteItems, so the job, its lease and its event change together or not at all, and of
callers racing from one status exactly one wins. Appending an event is the same transaction
without the record fields, which keeps `seq` gap-free.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata import dynamo_docs
from tabpilot.metadata.base import (
    DEFAULT_JOB_SORT,
    DEFAULT_PAGE_LIMIT,
    JOB_UPDATABLE,
    MAX_PAGE_LIMIT,
    Page,
    check_changes,
    check_limit,
    decode_cursor,
    encode_cursor,
    job_search_text,
    not_found,
    parse_job_sort,
    parse_statuses,
)
from tabpilot.metadata.dynamo_base import (
    DynamoStoreBase,
    Expr,
    Refused,
    attempts,
    cursor_time,
    too_busy,
)
from tabpilot.metadata.dynamo_items import (
    BY_STATUS,
    EVENT_PREFIX,
    FAR_PAST,
    INDEXES,
    ITEM_LIMIT,
    LINK_PREFIX,
    event_attrs,
    event_sk,
    item_size,
    job_attrs,
    job_fields,
    json_text,
    record_pk,
    time_text,
    to_event,
    to_job,
)
from tabpilot.metadata.dynamo_records import model_items
from tabpilot.metadata.transitions import (
    STATUS_EVENT,
    expected_statuses,
    plan_transition,
    status_event_data,
    transition_fields,
)
from tabpilot.records import JobEvent, JobRecord, JobStatus, ModelRecord, utc_now

_QUEUED = frozenset({JobStatus.QUEUED})
_RETRY = object()
CLAIM_CANDIDATES = 10
"""Queued jobs a claim reads from the status index at once, oldest first."""


def _insert_event(store: DynamoStoreBase, event: JobEvent) -> dict[str, Any]:
    """The transaction item that appends `event` (only if its `seq` is still free)."""
    return {"Put": store.put_op(event_attrs(event), lambda e: f"attribute_not_exists({e.n('pk')})")}


def _check_size(kind: str, record_id: str, values: dict[str, Any]) -> None:
    size = item_size(values)
    if size > ITEM_LIMIT:
        raise InvalidInput(
            f'{kind} "{record_id}" would take {size // 1024} KB, more than a DynamoDB item '
            f"holds ({ITEM_LIMIT // 1024} KB here); shorten its spec, progress or notes"
        )


def _same(name: str, value: Any) -> Callable[[Expr], str]:
    return lambda e: f"{e.n(name)} = {e.v(value)}"


class DynamoJobs(DynamoStoreBase):
    """Jobs with their event logs; claims, leases and status transitions."""

    def create_job(self, record: JobRecord, *, message: str | None = None) -> JobRecord:
        values = job_attrs(record) | {"event_seq": 0 if message is None else 1}
        _check_size("Job", record.id, values)
        items = [
            {
                "Update": self.update_op(
                    record_pk("dataset", record.dataset_id),
                    {},
                    adds={"job_count": 1},
                    condition=lambda e: (
                        f"attribute_exists({e.n('pk')}) AND {e.n('owner')} = {e.v(record.owner)}"
                    ),
                )
            },
            {"Put": self.put_op(values, lambda e: f"attribute_not_exists({e.n('pk')})")},
        ]
        if message is not None:
            data = status_event_data(
                record, previous=None, message=message, worker=record.lease_owner
            )
            event = JobEvent(job_id=record.id, seq=1, kind=STATUS_EVENT, data=data)
            items.append(_insert_event(self, event))
        for _ in attempts():
            try:
                self._transact(items)
                return record
            except Refused as refused:
                if refused.failed(0):
                    raise not_found("Dataset", record.dataset_id) from None
                if refused.failed(1):
                    raise Conflict(f'Job "{record.id}" already exists') from None
        raise too_busy("Dataset", record.dataset_id)

    def _read_job(self, job_id: str, owner: str | None) -> dict[str, Any]:
        values = self._get(record_pk("job", job_id))
        if values is None or (owner is not None and values["owner"] != owner):
            raise not_found("Job", job_id)
        return values

    def find_job(self, job_id: str, *, owner: str | None) -> JobRecord | None:
        values = self._get(record_pk("job", job_id))
        if values is None or (owner is not None and values["owner"] != owner):
            return None
        return to_job(values)

    def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        tag: str | None = None,
        dataset_id: str | None = None,
        problem_type: str | None = None,
        text: str | None = None,
        sort: str = DEFAULT_JOB_SORT,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[JobRecord]:
        """Through the owner's (or everyone's) creation-time index. Sorted by creation time
        it reads page by page; other sorts read the matching jobs of that index partition
        and order them here (a Query either way, never a Scan)."""
        key, descending = parse_job_sort(sort)
        statuses = parse_statuses(status)
        check_limit(limit)
        keep = _job_filter(statuses, tag, dataset_id, problem_type, text)

        def filters(e: Expr) -> str | None:
            return _filter_expression(e, statuses, tag, dataset_id, problem_type, text)

        index, partition = self._owned("job", owner)
        if key == "created_at":
            return self._page_by_created(
                index, partition, descending=descending, sort=sort, limit=limit,
                cursor=cursor, decode=to_job, keep=keep, filters=filters,
            )  # fmt: skip
        after = decode_cursor(cursor, sort) if cursor else None
        if after is not None and key != "status":
            after = (cursor_time(after[0], sort), after[1])
        # First what sorting needs, for every matching job; then the page's jobs in full.
        e = Expr()
        params: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": f"{e.n(INDEXES[index])} = {e.v(partition)}",
            "ProjectionExpression": ", ".join(e.n(a) for a in ("id", key, "tags")),
        }
        expression = filters(e)
        if expression:
            params["FilterExpression"] = expression
        places = sorted(
            (
                (str(values.get(key) or time_text(FAR_PAST)), values["id"])
                for values in self._query(**params, **e.params())
                if tag is None or tag in json.loads(values.get("tags") or "[]")
            ),
            reverse=descending,
        )
        if after is not None:
            places = [place for place in places if _beyond(place, after, descending)]
        wanted = [job_id for _, job_id in places[:limit]]
        page = [job for job in self._jobs_by_id(index, partition, wanted) if keep(job)]
        more = len(places) > limit
        next_cursor = (
            encode_cursor(sort, places[limit - 1][0], places[limit - 1][1]) if more else None
        )
        return Page(page, next_cursor)

    def _jobs_by_id(self, index: str, partition: str, job_ids: list[str]) -> list[JobRecord]:
        """The jobs `job_ids` of an index partition, in that order (a Query per 100 ids)."""
        found: dict[str, JobRecord] = {}
        for start in range(0, len(job_ids), 100):
            e = Expr()
            chunk = ", ".join(e.v(job_id) for job_id in job_ids[start : start + 100])
            params = {
                "IndexName": index,
                "KeyConditionExpression": f"{e.n(INDEXES[index])} = {e.v(partition)}",
                "FilterExpression": f"{e.n('id')} IN ({chunk})",
            }
            for values in self._query(**params, **e.params()):
                found[values["id"]] = to_job(values)
        return [found[job_id] for job_id in job_ids if job_id in found]

    def update_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        if_status: Collection[JobStatus] | None = None,
        if_lease_owner: str | None = None,
        **changes: Any,
    ) -> JobRecord:
        check_changes("job", changes, JOB_UPDATABLE)
        if "tags" in changes:
            changes["tags"] = list(changes["tags"])
        for _ in attempts():
            values = self._read_job(job_id, owner)
            current = to_job(values)
            _check_guards(current, if_status, if_lease_owner)
            if not changes:
                return current
            updated = dataclasses.replace(current, **changes)
            sets = job_fields(updated, list(changes)) | {"rev": values["rev"] + 1}
            _check_size("Job", job_id, values | sets)
            try:
                self._call("update_item", **self.update_op(
                    values["pk"], sets, condition=_same("rev", values["rev"])
                ))  # fmt: skip
                return updated
            except Refused:
                continue
        raise too_busy("Job", job_id)

    def delete_job(self, job_id: str, *, owner: str | None) -> None:
        """Its models first (each in a transaction of its own), then the job record with its
        dataset's count (one transaction), then what is left in its partition: events, and
        any model made meanwhile. A delete cut short leaves the job with fewer models, or
        unreachable events; never a model whose job is gone."""
        values = self._read_job(job_id, owner)
        self._delete_models_of(values["pk"])
        exists = lambda e: f"attribute_exists({e.n('pk')})"  # noqa: E731
        record = {"Delete": self.delete_op(values["pk"], condition=exists)}
        dataset = {
            "Update": self.update_op(
                record_pk("dataset", values["dataset_id"]),
                {},
                adds={"job_count": -1},
                condition=exists,
            )
        }
        items = [record, dataset]
        for _ in attempts():
            try:
                self._transact(items)
                break
            except Refused as refused:
                if refused.failed(0):
                    raise not_found("Job", job_id) from None
                if refused.failed(1):  # no dataset left to count it: delete the job alone
                    items = [record]
        else:
            raise too_busy("Job", job_id)
        self._purge_job_partition(values["pk"])

    def _delete_models_of(self, pk: str) -> None:
        """Delete the models linked under the job partition `pk`."""
        for link in list(self._partition(pk, LINK_PREFIX)):
            try:
                self.delete_model(link["sk"][len(LINK_PREFIX) :], owner=None)
            except NotFound:
                self._delete_items([link])

    def _purge_job_partition(self, pk: str) -> None:
        """The events, document pieces and late models of a deleted job."""
        self._delete_models_of(pk)
        self._delete_items(list(self._partition(pk)))

    def transition_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        expect: JobStatus | Collection[JobStatus],
        to: JobStatus,
        message: str | None = None,
        held_by: str | None = None,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        error: str | None = None,
        model_id: str | None = None,
        progress: dict[str, Any] | None = None,
        model: ModelRecord | None = None,
    ) -> JobRecord | None:
        sources = expected_statuses(expect, to)
        fields = transition_fields(
            job_id,
            JobStatus(to),
            model,
            message=message,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            error=error,
            model_id=model_id,
            progress=progress,
        )
        card = None
        if model is not None:
            card = dynamo_docs.prepare(record_pk("model", model.id), "card", model.card)
            dynamo_docs.write_pieces(self, card)
        moved: JobRecord | object | None = _RETRY
        try:
            for _ in attempts():
                moved = self._try_transition(
                    job_id, owner, sources, held_by, JobStatus(to), fields, model, card
                )
                if moved is not _RETRY:
                    break
        finally:
            if model is not None and card is not None and not isinstance(moved, JobRecord):
                # The transition lost (or failed): no record points to these pieces.
                dynamo_docs.drop_version(self, record_pk("model", model.id), "card", card.version)
        if moved is _RETRY:
            raise too_busy("Job", job_id)
        return moved  # type: ignore[return-value]

    def _try_transition(
        self,
        job_id: str,
        owner: str | None,
        sources: frozenset[JobStatus],
        held_by: str | None,
        to: JobStatus,
        fields: dict[str, Any],
        model: ModelRecord | None = None,
        card: dynamo_docs.Document | None = None,
        values: dict[str, Any] | None = None,
    ) -> JobRecord | object | None:
        """One try: the moved job, None when it is not in `sources` (or not held by
        `held_by`), or `_RETRY` when another write came between the read and the write.

        `values` is the job as read elsewhere (a claim's index page), instead of a new read:
        the write's condition finds out if it was out of date.
        """
        if values is None:
            values = self._read_job(job_id, owner)
        current = to_job(values)
        if current.status not in sources or (
            held_by is not None and current.lease_owner != held_by
        ):
            return None
        if model is not None and model.owner != current.owner:
            raise not_found("Job", job_id)  # as create_model: another owner's job
        plan = plan_transition(current, to=to, now=utc_now(), **fields)
        after = dataclasses.replace(current, **plan.changes)
        seq, rev = int(values["event_seq"]) + 1, int(values["rev"])
        sets = job_fields(after, list(plan.changes)) | {"event_seq": seq, "rev": rev + 1}
        unchanged = lambda e: (  # noqa: E731
            f"{e.n('rev')} = {e.v(rev)} AND {e.n('event_seq')} = {e.v(seq - 1)}"
        )
        event = JobEvent(job_id=job_id, seq=seq, kind=STATUS_EVENT, data=plan.event)
        items = [
            {"Update": self.update_op(values["pk"], sets, condition=unchanged)},
            _insert_event(self, event),
        ]
        if model is not None and card is not None:
            items += model_items(self, model, card)
        try:
            self._transact(items)
        except Refused as refused:
            if model is not None and refused.failed(2):
                raise Conflict(f'Model "{model.id}" already exists') from None
            return _RETRY
        return after

    def claim_next_job(self, *, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """The oldest job of the status index's "queued" partition that this caller wins.

        Each candidate is moved straight from its index copy: the transition's condition (the
        job's `rev` and event counter) fails if the copy is out of date, e.g. claimed by
        another worker a moment ago (index reads are eventually consistent), and the next
        candidate is tried, so a lost race costs one request.
        """
        lease = {"worker_id": worker_id, "lease_seconds": lease_seconds}
        for _ in range(100):
            e = Expr()
            params = {
                "IndexName": BY_STATUS,
                "KeyConditionExpression": f"{e.n('status')} = {e.v(JobStatus.QUEUED.value)}",
                "ScanIndexForward": True,
                "Limit": CLAIM_CANDIDATES,
            }
            candidates = list(islice(self._query(**params, **e.params()), CLAIM_CANDIDATES))
            if not candidates:
                return None
            # The oldest first; after losing it, the others in random order, so that workers
            # that lost the same race do not all race again for the next one.
            rest = candidates[1:]
            random.shuffle(rest)
            for values in [candidates[0], *rest]:
                claimed = self._try_transition(
                    values["id"], None, _QUEUED, None, JobStatus.RUNNING, lease, values=values
                )
                if isinstance(claimed, JobRecord):
                    return claimed
        return None

    def claim_job(self, job_id: str, *, worker_id: str, lease_seconds: float) -> JobRecord:
        lease = {"worker_id": worker_id, "lease_seconds": lease_seconds}
        for _ in attempts():
            moved = self._try_transition(job_id, None, _QUEUED, None, JobStatus.RUNNING, lease)
            if moved is _RETRY:
                continue
            if moved is None:
                status = self._read_job(job_id, None)["status"]
                raise Conflict(
                    f'Job "{job_id}" is {status}; only queued jobs can be started',
                    details={"status": status},
                )
            return moved  # type: ignore[return-value]
        raise too_busy("Job", job_id)

    def heartbeat(self, job_id: str, *, worker_id: str, lease_seconds: float) -> bool:
        expires = time_text(utc_now() + timedelta(seconds=lease_seconds))
        op = self.update_op(
            record_pk("job", job_id),
            {"lease_expires_at": expires},
            adds={"rev": 1},
            condition=lambda e: (
                f"{e.n('status')} = {e.v(JobStatus.RUNNING.value)} AND "
                f"{e.n('lease_owner')} = {e.v(worker_id)}"
            ),
        )
        try:
            self._call("update_item", **op)
        except Refused:
            return False
        return True

    def list_expired_leases(self, now: datetime | None = None) -> list[JobRecord]:
        """The running jobs (the status index's "running" partition) whose lease expired."""
        cutoff = now or utc_now()
        e = Expr()
        condition = f"{e.n('status')} = {e.v(JobStatus.RUNNING.value)}"
        running = map(
            to_job, self._query(IndexName=BY_STATUS, KeyConditionExpression=condition, **e.params())
        )
        expired = [
            j for j in running if j.lease_expires_at is not None and j.lease_expires_at < cutoff
        ]
        return sorted(expired, key=lambda j: (j.lease_expires_at or FAR_PAST, j.id))

    def append_job_event(
        self, job_id: str, *, owner: str | None, kind: str, data: dict[str, Any] | None = None
    ) -> JobEvent:
        pk = record_pk("job", job_id)
        for _ in attempts():
            values = self._get(pk, attributes=("owner", "event_seq"))
            if values is None or (owner is not None and values["owner"] != owner):
                raise not_found("Job", job_id)
            seq = int(values["event_seq"]) + 1
            event = JobEvent(job_id=job_id, seq=seq, kind=kind, data=dict(data or {}))
            counter = self.update_op(pk, {"event_seq": seq}, condition=_same("event_seq", seq - 1))
            try:
                self._transact([{"Update": counter}, _insert_event(self, event)])
                return event
            except Refused:
                continue
        raise too_busy("Job", job_id)

    def list_job_events(
        self,
        job_id: str,
        *,
        owner: str | None,
        after_seq: int = 0,
        limit: int = MAX_PAGE_LIMIT,
    ) -> list[JobEvent]:
        check_limit(limit)
        pk = record_pk("job", job_id)
        found = self._get(pk, attributes=("owner",))
        if found is None or (owner is not None and found["owner"] != owner):
            raise not_found("Job", job_id)
        e = Expr()
        condition = (
            f"{e.n('pk')} = {e.v(pk)} AND {e.n('sk')} BETWEEN "
            f"{e.v(event_sk(max(after_seq, 0) + 1))} AND {e.v(EVENT_PREFIX + '9' * 10)}"
        )
        events: list[JobEvent] = []
        params = {"KeyConditionExpression": condition, "ConsistentRead": True, "Limit": limit}
        for values in self._query(**params, **e.params()):
            events.append(to_event(values))
            if len(events) == limit:
                break
        return events


def _check_guards(
    current: JobRecord, if_status: Collection[JobStatus] | None, if_lease_owner: str | None
) -> None:
    if if_status is not None:
        allowed = parse_statuses(if_status) or []
        if current.status not in allowed:
            raise Conflict(
                f'Job "{current.id}" is {current.status.value}, not '
                f"{' or '.join(s.value for s in allowed)}",
                details={"status": current.status.value},
            )
    if if_lease_owner is not None and current.lease_owner != if_lease_owner:
        raise Conflict(
            f'Job "{current.id}" is no longer leased to worker "{if_lease_owner}"',
            details={"status": current.status.value},
        )


def _job_filter(
    statuses: list[JobStatus] | None,
    tag: str | None,
    dataset_id: str | None,
    problem_type: str | None,
    text: str | None,
) -> Callable[[JobRecord], bool]:
    needle = text.lower() if text else None

    def keep(job: JobRecord) -> bool:
        return (
            (statuses is None or job.status in statuses)
            and (tag is None or tag in job.tags)
            and (dataset_id is None or job.dataset_id == dataset_id)
            and (problem_type is None or job.problem_type == problem_type)
            and (needle is None or needle in job_search_text(job))
        )

    return keep


def _filter_expression(
    e: Expr,
    statuses: list[JobStatus] | None,
    tag: str | None,
    dataset_id: str | None,
    problem_type: str | None,
    text: str | None,
) -> str | None:
    """The filters of `list_jobs` as a FilterExpression, so DynamoDB returns only matches.

    Tags are JSON text (`["a","b"]`), so a tag is matched as its JSON string; `_job_filter`
    still checks each job, so no odd tag can make one match that should not.
    """
    parts = []
    if statuses is not None:
        values = ", ".join(e.v(s.value) for s in statuses)
        parts.append(f"{e.n('status')} IN ({values})")
    if tag is not None:
        parts.append(f"contains({e.n('tags')}, {e.v(json_text(tag))})")
    if dataset_id is not None:
        parts.append(f"{e.n('dataset_id')} = {e.v(dataset_id)}")
    if problem_type is not None:
        parts.append(f"{e.n('problem_type')} = {e.v(problem_type)}")
    if text:
        parts.append(f"contains({e.n('search_text')}, {e.v(text.lower())})")
    return " AND ".join(parts) or None


def _beyond(place: tuple[str, str], after: tuple[str | None, str], descending: bool) -> bool:
    value = (after[0] or "", after[1])
    return place < value if descending else place > value
