"""Datasets, models and users in DynamoDB: the parts of `DynamoMetadataStore` besides jobs.

Uniqueness that SQL gets from a unique index (a user's name and token hash, a model's deploy
key hash) is a guard item per value (`username#<name>`, `token#<hash>`, `deploykey#<hash>`),
put on condition that it does not exist in the same transaction as the record, and deleted with
it. A dataset counts its jobs (`job_count`, changed in the job's own create and delete
transactions), so deleting it is one conditional delete that no new job can slip past.
"""

from __future__ import annotations

from typing import Any

from tabpilot.errors import Conflict
from tabpilot.metadata import dynamo_docs
from tabpilot.metadata.base import (
    DATASET_UPDATABLE,
    DEFAULT_PAGE_LIMIT,
    MODEL_UPDATABLE,
    USER_UPDATABLE,
    Page,
    check_changes,
    not_found,
)
from tabpilot.metadata.dynamo_base import DynamoStoreBase, Expr, Refused, attempts, too_busy
from tabpilot.metadata.dynamo_items import (
    BY_KIND,
    BY_OWNER,
    LINK_PREFIX,
    dataset_attrs,
    model_attrs,
    record_pk,
    to_dataset,
    to_model,
    to_user,
    user_attrs,
)
from tabpilot.records import DatasetRecord, ModelRecord, UserRecord

_READS = 5
"""Tries of a read whose document was replaced mid-read (see `dynamo_docs`)."""
_LIGHT_DATASET = ("pk", "id", "owner", "name", "filename", "sha256", "n_bytes", "n_rows")
_LIGHT_DATASET += ("n_columns", "created_at")


def _new(e: Any) -> str:
    return f"attribute_not_exists({e.n('pk')})"


def _exists(e: Any) -> str:
    return f"attribute_exists({e.n('pk')})"


def _guard(kind: str, value: str, ref: str) -> dict[str, Any]:
    return {"pk": f"{kind}#{value}", "sk": "#", "ref": ref}


def model_items(
    store: DynamoStoreBase, model: ModelRecord, card: dynamo_docs.Document
) -> list[dict[str, Any]]:
    """The transaction items that store a new model: its record, its link under its job (so
    deleting the job finds it with a consistent read) and its deploy key guard, if any."""
    record = model_attrs(model) | card.attrs
    link = {"pk": record_pk("job", model.job_id), "sk": f"{LINK_PREFIX}{model.id}"}
    items = [{"Put": store.put_op(record, _new)}, {"Put": store.put_op(link)}]
    if model.deploy_key_hash:
        guard = _guard("deploykey", model.deploy_key_hash, model.id)
        items.append({"Put": store.put_op(guard, _new)})
    return items


class DynamoRecordsBase(DynamoStoreBase):
    """Reading records whose documents may be in pieces."""

    def _read_with_document(
        self, pk: str, owner: str | None, field_name: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The record at `pk` (None if missing or another owner's) and its document."""
        for _ in range(_READS):
            values = self._get(pk)
            if values is None or (owner is not None and values.get("owner") != owner):
                return None
            try:
                return values, dynamo_docs.read(self, values, field_name)
            except dynamo_docs.StaleDocument:
                continue
        raise too_busy(pk.split("#")[0].capitalize(), pk.split("#", 1)[1])

    def _update_documented(
        self,
        kind: str,
        record_id: str,
        owner: str | None,
        field_name: str,
        changes: dict[str, Any],
        extra: Any = None,
    ) -> dict[str, Any]:
        """Apply `changes` to a record with a document `field_name`; returns the new values.

        `extra(values)` gives more transaction items for the write (guard items).
        """
        pk = record_pk(kind, record_id)
        document = None
        if field_name in changes:
            document = dynamo_docs.prepare(pk, field_name, changes[field_name])
            dynamo_docs.write_pieces(self, document)
        done = False
        try:
            for _ in attempts():
                values = self._get(pk)
                if values is None or (owner is not None and values.get("owner") != owner):
                    raise not_found(kind.capitalize(), record_id)
                sets = {k: v for k, v in changes.items() if k != field_name}
                if document is not None:
                    sets |= document.attrs
                sets["rev"] = int(values["rev"]) + 1
                rev = int(values["rev"])
                op = self.update_op(pk, sets, condition=lambda e, r=rev: f"{e.n('rev')} = {e.v(r)}")
                try:
                    self._transact([{"Update": op}, *(extra(values) if extra else [])])
                except Refused as refused:
                    if extra is not None and any(refused.failed(i) for i in range(1, 4)):
                        raise
                    continue
                done = True
                if document is not None:
                    old = dynamo_docs.version_of(values, field_name)
                    dynamo_docs.drop_version(self, pk, field_name, old)
                return values | sets
        finally:
            if document is not None and not done:
                dynamo_docs.drop_version(self, pk, field_name, document.version)
        raise too_busy(kind.capitalize(), record_id)


class DynamoDatasets(DynamoRecordsBase):
    """Uploaded datasets; one in use by a job cannot be deleted."""

    def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        pk = record_pk("dataset", record.id)
        document = dynamo_docs.prepare(pk, "profile", record.profile)
        dynamo_docs.write_pieces(self, document)
        try:
            self._call("put_item", **self.put_op(dataset_attrs(record) | document.attrs, _new))
        except Refused:
            dynamo_docs.drop_version(self, pk, "profile", document.version)
            raise Conflict(f'Dataset "{record.id}" already exists') from None
        return record

    def find_dataset(self, dataset_id: str, *, owner: str | None) -> DatasetRecord | None:
        found = self._read_with_document(record_pk("dataset", dataset_id), owner, "profile")
        return to_dataset(found[0], found[1]) if found else None

    def list_datasets(
        self, *, owner: str | None, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[DatasetRecord]:
        index, partition = self._owned("dataset", owner)
        return self._page_by_created(
            index, partition, descending=True, sort="-created_at", limit=limit, cursor=cursor,
            decode=lambda values: to_dataset(values, {}), attributes=_LIGHT_DATASET,
        )  # fmt: skip

    def update_dataset(
        self, dataset_id: str, *, owner: str | None, **changes: Any
    ) -> DatasetRecord:
        check_changes("dataset", changes, DATASET_UPDATABLE)
        if not changes:
            return self.get_dataset(dataset_id, owner=owner)
        self._update_documented("dataset", dataset_id, owner, "profile", changes)
        return self.get_dataset(dataset_id, owner=owner)

    def delete_dataset(self, dataset_id: str, *, owner: str | None) -> None:
        pk = record_pk("dataset", dataset_id)
        values = self._get(pk, attributes=("owner",))
        if values is None or (owner is not None and values["owner"] != owner):
            raise not_found("Dataset", dataset_id)
        unused = lambda e: (  # noqa: E731
            f"attribute_exists({e.n('pk')}) AND "
            f"(attribute_not_exists({e.n('job_count')}) OR {e.n('job_count')} <= {e.v(0)})"
        )
        try:
            self._call("delete_item", **self.delete_op(pk, condition=unused))
        except Refused:
            if self._get(pk, attributes=("pk",)) is None:
                raise not_found("Dataset", dataset_id) from None
            raise self._in_use(dataset_id, values["owner"]) from None
        self._delete_items(list(self._partition(pk)))

    def _in_use(self, dataset_id: str, owner: str) -> Conflict:
        """The error naming the jobs that use a dataset (its owner's, through the index)."""
        index, partition = self._owned("job", owner)
        e = Expr()
        condition = f"{e.n('owner_key')} = {e.v(partition)}"
        using = sorted(
            item["id"]
            for item in self._query(IndexName=index, KeyConditionExpression=condition,
                                    **e.params())
            if item.get("dataset_id") == dataset_id
        )  # fmt: skip
        shown = ", ".join(using[:10]) + (", ..." if len(using) > 10 else "")
        return Conflict(
            f'Dataset "{dataset_id}" is used by {len(using)} job(s) ({shown}); '
            "delete those jobs first",
            details={"jobs": using},
        )


class DynamoModels(DynamoRecordsBase):
    """Trained models and their deploy keys."""

    def create_model(self, record: ModelRecord) -> ModelRecord:
        job_pk = record_pk("job", record.job_id)
        card = dynamo_docs.prepare(record_pk("model", record.id), "card", record.card)
        dynamo_docs.write_pieces(self, card)
        owned = lambda e: (  # noqa: E731
            f"attribute_exists({e.n('pk')}) AND {e.n('owner')} = {e.v(record.owner)}"
        )
        items = [{"ConditionCheck": self.check_op(job_pk, owned)}]
        items += model_items(self, record, card)
        try:
            self._transact(items)
        except Refused as refused:
            dynamo_docs.drop_version(self, record_pk("model", record.id), "card", card.version)
            if refused.failed(0):
                raise not_found("Job", record.job_id) from None
            if refused.failed(1):
                raise Conflict(f'Model "{record.id}" already exists') from None
            if refused.failed(3):
                raise Conflict("That deploy key is already in use; mint a new one") from None
            raise
        return record

    def find_model(self, model_id: str, *, owner: str | None) -> ModelRecord | None:
        found = self._read_with_document(record_pk("model", model_id), owner, "card")
        return to_model(found[0], found[1]) if found else None

    def find_model_by_deploy_key_hash(self, key_hash: str) -> ModelRecord | None:
        guard = self._get(f"deploykey#{key_hash}")
        if guard is None:
            return None
        model = self.find_model(guard["ref"], owner=None)
        return model if model is not None and model.deploy_key_hash == key_hash else None

    def list_models(
        self,
        *,
        owner: str | None,
        job_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[ModelRecord]:
        index, partition = self._owned("model", owner)
        page = self._page_by_created(
            index, partition, descending=True, sort="-created_at", limit=limit, cursor=cursor,
            decode=lambda values: values,
            keep=None if job_id is None else (lambda values: values["job_id"] == job_id),
            filters=None if job_id is None else (
                lambda e: f"{e.n('job_id')} = {e.v(job_id)}"
            ),
        )  # fmt: skip
        return Page([self._with_card(values) for values in page.items], page.next_cursor)

    def _with_card(self, values: dict[str, Any]) -> ModelRecord:
        try:
            return to_model(values, dynamo_docs.read(self, values, "card"))
        except dynamo_docs.StaleDocument:  # replaced since the index was read: read it again
            model = self.find_model(values["id"], owner=None)
            return model if model is not None else to_model(values, {})

    def update_model(self, model_id: str, *, owner: str | None, **changes: Any) -> ModelRecord:
        check_changes("model", changes, MODEL_UPDATABLE)
        if not changes:
            return self.get_model(model_id, owner=owner)

        def guards(values: dict[str, Any]) -> list[dict[str, Any]]:
            if "deploy_key_hash" not in changes:
                return []
            old, new = values.get("deploy_key_hash"), changes["deploy_key_hash"]
            if old == new:
                return []
            items = []
            if new is not None:
                items.append({"Put": self.put_op(_guard("deploykey", new, model_id), _new)})
            if old is not None:
                items.append({"Delete": self.delete_op(f"deploykey#{old}")})
            return items

        try:
            self._update_documented("model", model_id, owner, "card", changes, guards)
        except Refused:
            raise Conflict("That deploy key is already in use; mint a new one") from None
        return self.get_model(model_id, owner=owner)

    def delete_model(self, model_id: str, *, owner: str | None) -> None:
        pk = record_pk("model", model_id)
        values = self._get(pk, attributes=("owner", "job_id", "deploy_key_hash"))
        if values is None or (owner is not None and values["owner"] != owner):
            raise not_found("Model", model_id)
        items = [
            {"Delete": self.delete_op(pk, condition=_exists)},
            {"Delete": self.delete_op(record_pk("job", values["job_id"]), LINK_PREFIX + model_id)},
        ]
        if values.get("deploy_key_hash"):
            items.append({"Delete": self.delete_op(f"deploykey#{values['deploy_key_hash']}")})
        try:
            self._transact(items)
        except Refused:
            raise not_found("Model", model_id) from None
        self._delete_items(list(self._partition(pk)))


class DynamoUsers(DynamoStoreBase):
    """Users, with guard items that keep names and token hashes unique."""

    def create_user(self, record: UserRecord) -> UserRecord:
        items = [
            {"Put": self.put_op(user_attrs(record), _new)},
            {"Put": self.put_op(_guard("username", record.name, record.id), _new)},
            {"Put": self.put_op(_guard("token", record.token_hash, record.id), _new)},
        ]
        try:
            self._transact(items)
        except Refused as refused:
            if refused.failed(1):
                raise _user_exists(record.name) from None
            if refused.failed(2):
                raise Conflict("That token is already in use; mint a new one") from None
            raise Conflict(f'User "{record.id}" already exists') from None
        return record

    def find_user(self, user_id: str) -> UserRecord | None:
        values = self._get(record_pk("user", user_id))
        return to_user(values) if values else None

    def find_user_by_name(self, name: str) -> UserRecord | None:
        return self._by_guard("username", name, "name")

    def find_user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        return self._by_guard("token", token_hash, "token_hash")

    def _by_guard(self, kind: str, value: str, field_name: str) -> UserRecord | None:
        guard = self._get(f"{kind}#{value}")
        user = self.find_user(guard["ref"]) if guard else None
        return user if user is not None and getattr(user, field_name) == value else None

    def list_users(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[UserRecord]:
        return self._page_by_created(
            BY_KIND, "user", descending=False, sort="created_at", limit=limit, cursor=cursor,
            decode=to_user,
        )  # fmt: skip

    def update_user(self, user_id: str, **changes: Any) -> UserRecord:
        check_changes("user", changes, USER_UPDATABLE)
        pk = record_pk("user", user_id)
        for _ in attempts():
            values = self._get(pk)
            if values is None:
                raise not_found("User", user_id)
            items = [self._user_update(values, changes)]
            renamed = _swap_guard(self, values, changes, "name", "username", user_id)
            rekeyed = _swap_guard(self, values, changes, "token_hash", "token", user_id)
            items += renamed + rekeyed
            try:
                self._transact(items)
            except Refused as refused:
                if renamed and refused.failed(1):
                    raise _user_exists(str(changes["name"])) from None
                if rekeyed and refused.failed(1 + len(renamed)):
                    raise Conflict("That token is already in use; mint a new one") from None
                continue
            return to_user(values | changes)
        raise too_busy("User", user_id)

    def _user_update(self, values: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        rev = int(values["rev"])
        sets = dict(changes) | {"rev": rev + 1}
        return {
            "Update": self.update_op(
                values["pk"], sets, condition=lambda e: f"{e.n('rev')} = {e.v(rev)}"
            )
        }

    def delete_user(self, user_id: str) -> None:
        values = self._get(record_pk("user", user_id))
        if values is None:
            raise not_found("User", user_id)
        owned = {
            table: self._count(BY_OWNER, f"{kind}#{user_id}")
            for table, kind in (("datasets", "dataset"), ("jobs", "job"), ("models", "model"))
        }
        if any(owned.values()):
            summary = ", ".join(f"{n} {name}" for name, n in owned.items() if n)
            raise Conflict(
                f'User "{user_id}" still owns {summary}; delete those first',
                details={"owned": owned},
            )
        items = [
            {"Delete": self.delete_op(values["pk"], condition=_exists)},
            {"Delete": self.delete_op(f"username#{values['name']}")},
            {"Delete": self.delete_op(f"token#{values['token_hash']}")},
        ]
        try:
            self._transact(items)
        except Refused:
            raise not_found("User", user_id) from None


def _swap_guard(
    store: DynamoStoreBase,
    values: dict[str, Any],
    changes: dict[str, Any],
    field_name: str,
    kind: str,
    user_id: str,
) -> list[dict[str, Any]]:
    """Items that move a user's guard from the old value of `field_name` to the new one."""
    if field_name not in changes or changes[field_name] == values[field_name]:
        return []
    return [
        {"Put": store.put_op(_guard(kind, changes[field_name], user_id), _new)},
        {"Delete": store.delete_op(f"{kind}#{values[field_name]}")},
    ]


def _user_exists(name: str) -> Conflict:
    return Conflict(f'User "{name}" already exists; choose another name')
