"""Datasets, models and users in SQL: the parts of `SqlMetadataStore` besides jobs."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from tabpilot.errors import Conflict
from tabpilot.metadata.base import (
    DATASET_UPDATABLE,
    DEFAULT_PAGE_LIMIT,
    MODEL_UPDATABLE,
    USER_UPDATABLE,
    Page,
    check_changes,
    not_found,
)
from tabpilot.metadata.sql_base import SqlStoreBase
from tabpilot.metadata.sql_rows import (
    insert_new,
    paginate,
    row_to_dataset,
    row_to_model,
    row_to_user,
    scope,
)
from tabpilot.metadata.sql_tables import datasets, jobs, models, users
from tabpilot.records import DatasetRecord, ModelRecord, UserRecord


class SqlDatasets(SqlStoreBase):
    """Uploaded datasets; one in use by a job cannot be deleted."""

    def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        values = dataclasses.asdict(record)
        with self._tx(write=True) as conn:
            insert_new(conn, datasets, values, "Dataset")
        return record

    def find_dataset(self, dataset_id: str, *, owner: str | None) -> DatasetRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(datasets).where(datasets.c.id == dataset_id, scope(datasets, owner))
            ).first()
        return row_to_dataset(row) if row else None

    def list_datasets(
        self, *, owner: str | None, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[DatasetRecord]:
        # Listings stay light: every column but the profile (megabytes for a wide file);
        # get_dataset returns it.
        light = [column for column in datasets.c if column.name != "profile"]
        query = select(*light).where(scope(datasets, owner))
        with self._tx() as conn:
            return paginate(
                conn,
                query,
                datasets,
                "created_at",
                True,
                "-created_at",
                limit,
                cursor,
                row_to_dataset,
            )

    def update_dataset(
        self, dataset_id: str, *, owner: str | None, **changes: Any
    ) -> DatasetRecord:
        check_changes("dataset", changes, DATASET_UPDATABLE)
        where = (datasets.c.id == dataset_id, scope(datasets, owner))
        with self._tx(write=True) as conn:
            if changes:
                result = conn.execute(update(datasets).where(*where).values(**changes))
                if result.rowcount != 1:
                    raise not_found("Dataset", dataset_id)
            row = conn.execute(select(datasets).where(*where)).first()
        if row is None:
            raise not_found("Dataset", dataset_id)
        return row_to_dataset(row)

    def delete_dataset(self, dataset_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            found = conn.execute(
                select(datasets.c.id).where(datasets.c.id == dataset_id, scope(datasets, owner))
            ).first()
            if found is None:
                raise not_found("Dataset", dataset_id)
            using = list(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.dataset_id == dataset_id).order_by(jobs.c.id)
                ).scalars()
            )
            if using:
                shown = ", ".join(using[:10]) + (", ..." if len(using) > 10 else "")
                raise Conflict(
                    f'Dataset "{dataset_id}" is used by {len(using)} job(s) ({shown}); '
                    "delete those jobs first",
                    details={"jobs": using},
                )
            conn.execute(delete(datasets).where(datasets.c.id == dataset_id))


class SqlModels(SqlStoreBase):
    """Trained models and their deploy keys."""

    def create_model(self, record: ModelRecord) -> ModelRecord:
        values = dataclasses.asdict(record)
        with self._tx(write=True) as conn:
            job_owned = conn.execute(
                select(jobs.c.id).where(jobs.c.id == record.job_id, jobs.c.owner == record.owner)
            ).first()
            if job_owned is None:
                raise not_found("Job", record.job_id)
            insert_new(conn, models, values, "Model")
        return record

    def find_model(self, model_id: str, *, owner: str | None) -> ModelRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(models).where(models.c.id == model_id, scope(models, owner))
            ).first()
        return row_to_model(row) if row else None

    def find_model_by_deploy_key_hash(self, key_hash: str) -> ModelRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(models).where(models.c.deploy_key_hash == key_hash)).first()
        return row_to_model(row) if row else None

    def list_models(
        self,
        *,
        owner: str | None,
        job_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[ModelRecord]:
        query = select(models).where(scope(models, owner))
        if job_id is not None:
            query = query.where(models.c.job_id == job_id)
        with self._tx() as conn:
            return paginate(
                conn, query, models, "created_at", True, "-created_at", limit, cursor, row_to_model
            )

    def update_model(self, model_id: str, *, owner: str | None, **changes: Any) -> ModelRecord:
        check_changes("model", changes, MODEL_UPDATABLE)
        where = (models.c.id == model_id, scope(models, owner))
        with self._tx(write=True) as conn:
            if changes:
                try:
                    result = conn.execute(update(models).where(*where).values(**changes))
                except IntegrityError:
                    raise Conflict("That deploy key is already in use; mint a new one") from None
                if result.rowcount != 1:
                    raise not_found("Model", model_id)
            row = conn.execute(select(models).where(*where)).first()
        if row is None:
            raise not_found("Model", model_id)
        return row_to_model(row)

    def delete_model(self, model_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            result = conn.execute(
                delete(models).where(models.c.id == model_id, scope(models, owner))
            )
            if result.rowcount != 1:
                raise not_found("Model", model_id)


class SqlUsers(SqlStoreBase):
    """Users and their token hashes."""

    def create_user(self, record: UserRecord) -> UserRecord:
        with self._tx(write=True) as conn:
            if conn.execute(select(users.c.id).where(users.c.name == record.name)).first():
                raise _user_exists(record.name)
            insert_new(conn, users, dataclasses.asdict(record), "User")
        return record

    def find_user(self, user_id: str) -> UserRecord | None:
        return self._find_user(users.c.id == user_id)

    def find_user_by_name(self, name: str) -> UserRecord | None:
        return self._find_user(users.c.name == name)

    def find_user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        return self._find_user(users.c.token_hash == token_hash)

    def _find_user(self, condition: ColumnElement[bool]) -> UserRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(users).where(condition)).first()
        return row_to_user(row) if row else None

    def list_users(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[UserRecord]:
        with self._tx() as conn:
            return paginate(
                conn,
                select(users),
                users,
                "created_at",
                False,
                "created_at",
                limit,
                cursor,
                row_to_user,
            )

    def update_user(self, user_id: str, **changes: Any) -> UserRecord:
        check_changes("user", changes, USER_UPDATABLE)
        with self._tx(write=True) as conn:
            if "name" in changes:
                taken = conn.execute(
                    select(users.c.id).where(users.c.name == changes["name"], users.c.id != user_id)
                ).first()
                if taken:
                    raise _user_exists(str(changes["name"]))
            if changes:
                try:
                    result = conn.execute(
                        update(users).where(users.c.id == user_id).values(**changes)
                    )
                except IntegrityError:
                    raise Conflict("That token is already in use; mint a new one") from None
                if result.rowcount != 1:
                    raise not_found("User", user_id)
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise not_found("User", user_id)
        return row_to_user(row)

    def delete_user(self, user_id: str) -> None:
        with self._tx(write=True) as conn:
            owned = {
                table.name: conn.execute(
                    select(func.count()).select_from(table).where(table.c.owner == user_id)
                ).scalar_one()
                for table in (datasets, jobs, models)
            }
            if any(owned.values()):
                summary = ", ".join(f"{n} {name}" for name, n in owned.items() if n)
                raise Conflict(
                    f'User "{user_id}" still owns {summary}; delete those first',
                    details={"owned": owned},
                )
            result = conn.execute(delete(users).where(users.c.id == user_id))
            if result.rowcount != 1:
                raise not_found("User", user_id)


def _user_exists(name: str) -> Conflict:
    return Conflict(f'User "{name}" already exists; choose another name')
