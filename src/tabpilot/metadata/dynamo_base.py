"""`DynamoStoreBase`: the client, the table, requests, errors and paging every part shares.

Every request goes through `_call`, which turns what a user can fix (a missing table, no
credentials, access denied, no endpoint) into `InvalidInput` naming `TABPILOT_METADATA_URI`, and
a condition that did not hold (a conditional write, a canceled transaction) into `Refused`,
which the store's optimistic loops read. Listings page through an index (`_page_by_created`),
never a Scan.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from tabpilot.errors import Conflict, InvalidInput
from tabpilot.metadata.base import MetadataStore, Page, check_limit, decode_cursor, encode_cursor
from tabpilot.metadata.dynamo_items import (
    BY_KIND,
    BY_OWNER,
    INDEXES,
    from_wire,
    key,
    parse_time,
    table_name,
    time_text,
    to_wire,
    wire_value,
)

SETTING = "TABPILOT_METADATA_URI"
R = TypeVar("R")

ATTEMPTS = 60
"""Tries of an optimistic write (read, then write on condition that nothing moved) before the
store gives up with `Conflict`; each lost race means another writer made progress."""
TABLE_READY_TIMEOUT_S = 300.0
_DENIED_CODES = frozenset(
    {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}
)
_DENIED_CODES |= {"ExpiredTokenException", "MissingAuthenticationTokenException"}


class Refused(Exception):
    """A condition did not hold: a conditional write, or some items of a transaction.

    `reasons` has one code per item of a transaction ("None" for those that were fine,
    "ConditionalCheckFailed", "TransactionConflict", ...); one entry for a single write.
    """

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        """Whether the condition of item `index` did not hold."""
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


class Expr:
    """Placeholders for the names and values of one request's expressions.

    Every name goes through a placeholder, since many plain words (status, name, owner, data)
    are reserved in DynamoDB expressions.
    """

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def n(self, name: str) -> str:
        for placeholder, known in self.names.items():
            if known == name:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = name
        return placeholder

    def v(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = wire_value(value)
        return placeholder

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        return out


Condition = Callable[[Expr], str]


def dynamo_client(region: str | None) -> Any:
    """A DynamoDB client configured the standard AWS way (AWS_ENDPOINT_URL for an emulator)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)
    return boto3.session.Session().client("dynamodb", region_name=region or None, config=config)


class DynamoStoreBase(MetadataStore):
    """The table `<prefix>-metadata` in `region` (None: the standard AWS settings decide)."""

    def __init__(self, prefix: str, region: str | None = None, *, client: Any = None) -> None:
        self._prefix = prefix
        self._region = region
        self._table = table_name(prefix)
        try:
            self._client = client if client is not None else dynamo_client(region)
        except NoRegionError:
            raise self.misconfigured(
                "no AWS region is set; add ?region=REGION to the URI or set AWS_REGION",
                reason="no_region",
            ) from None

    @property
    def table(self) -> str:
        return self._table

    @property
    def uri(self) -> str:
        return f"dynamodb://{self._prefix}" + (f"?region={self._region}" if self._region else "")

    @property
    def client(self) -> Any:
        return self._client

    def __repr__(self) -> str:
        return f"DynamoMetadataStore({self.uri!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        self._call("describe_table", TableName=self._table)

    def close(self) -> None:
        self._client.close()

    # -- requests --------------------------------------------------------------------------

    def _call(self, operation: str, **params: Any) -> Any:
        """One DynamoDB request; see the module docstring for what its errors become."""
        try:
            return getattr(self._client, operation)(**params)
        except NoCredentialsError:
            raise self.misconfigured(
                "no AWS credentials were found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run with an IAM role",
                reason="no_credentials",
            ) from None
        except EndpointConnectionError as exc:
            where = os.environ.get("AWS_ENDPOINT_URL") or exc.kwargs.get("endpoint_url", "AWS")
            raise self.misconfigured(
                f"cannot reach {where}; check the network, the region (and AWS_ENDPOINT_URL if "
                "you use an emulator)",
                reason="unreachable",
            ) from None
        except ClientError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: ClientError) -> Exception:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "ConditionalCheckFailedException":
            return Refused(["ConditionalCheckFailed"])
        if code == "TransactionCanceledException":
            reasons = exc.response.get("CancellationReasons") or []
            return Refused([str(r.get("Code", "None")) for r in reasons] or ["Unknown"])
        if code == "ResourceNotFoundException":
            return self.misconfigured(
                f'the table "{self._table}" does not exist; create it with '
                "`tabpilot init-stores` (or Terraform), or fix the table prefix",
                reason="no_table",
            )
        if code in _DENIED_CODES:
            return self.misconfigured(
                f'access to the table "{self._table}" was denied ({code}); give this AWS '
                "identity dynamodb:GetItem, PutItem, UpdateItem, DeleteItem, Query, "
                "BatchWriteItem, TransactWriteItems and DescribeTable on the table and its indexes",
                reason="access_denied",
            )
        return exc

    def misconfigured(self, problem: str, *, reason: str) -> InvalidInput:
        return InvalidInput(
            f"{SETTING}: {self.uri}: {problem}",
            details={"setting": SETTING, "uri": self.uri, "reason": reason},
        )

    def _get(
        self, pk: str, sk: str = "#", *, attributes: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        """The item at (pk, sk) as plain values, read consistently; None if missing."""
        params: dict[str, Any] = {"TableName": self._table, "Key": key(pk, sk)}
        params["ConsistentRead"] = True
        if attributes:
            e = Expr()
            params["ProjectionExpression"] = ", ".join(e.n(a) for a in attributes)
            params.update(e.params())
        item = self._call("get_item", **params).get("Item")
        return from_wire(item) if item else None

    def _query(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item a Query finds, page after page, as plain values."""
        while True:
            page = self._call("query", TableName=self._table, **params)
            for item in page.get("Items", []):
                yield from_wire(item)
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            params["ExclusiveStartKey"] = start

    def _partition(self, pk: str, sk_prefix: str = "") -> Iterator[dict[str, Any]]:
        """The items of partition `pk` (whose sort key starts with `sk_prefix`), consistently."""
        e = Expr()
        condition = f"{e.n('pk')} = {e.v(pk)}"
        if sk_prefix:
            condition += f" AND begins_with({e.n('sk')}, {e.v(sk_prefix)})"
        return self._query(KeyConditionExpression=condition, ConsistentRead=True, **e.params())

    def _count(self, index: str, partition: str) -> int:
        e = Expr()
        condition = f"{e.n(INDEXES[index])} = {e.v(partition)}"
        params = {"IndexName": index, "KeyConditionExpression": condition, "Select": "COUNT"}
        params.update(e.params())
        total = 0
        while True:
            page = self._call("query", TableName=self._table, **params)
            total += int(page.get("Count", 0))
            if not page.get("LastEvaluatedKey"):
                return total
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _transact(self, items: list[dict[str, Any]]) -> None:
        """TransactWriteItems: all of `items` or none; raises `Refused` with the reasons.

        A transaction canceled only because another one touched the same items at that
        moment (TransactionConflict, no condition failed) is sent again.
        """
        for attempt in attempts():
            try:
                self._call("transact_write_items", TransactItems=items)
                return
            except Refused as refused:
                if "ConditionalCheckFailed" in refused.reasons or attempt == ATTEMPTS - 1:
                    raise
                if not set(refused.reasons) & {"TransactionConflict", "ThrottlingError"}:
                    raise

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        """BatchWriteItem in groups of 25, retrying what DynamoDB leaves unprocessed."""
        for start in range(0, len(requests), 25):
            pending = {self._table: requests[start : start + 25]}
            for attempt in range(20):
                answer = self._call("batch_write_item", RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise OSError(f'DynamoDB kept refusing writes to "{self._table}"; try again later')

    def _delete_items(self, items: list[dict[str, Any]]) -> None:
        """Delete the items (plain values with pk and sk), without conditions."""
        self._batch_write([{"DeleteRequest": {"Key": key(i["pk"], i["sk"])}} for i in items])

    # -- operations for transactions -------------------------------------------------------

    def put_op(self, values: dict[str, Any], condition: Condition | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self._table, "Item": to_wire(values)}
        if condition is not None:
            e = Expr()
            op["ConditionExpression"] = condition(e)
            op.update(e.params())
        return op

    def update_op(
        self,
        pk: str,
        sets: dict[str, Any],
        *,
        adds: dict[str, int] | None = None,
        condition: Condition | None = None,
        sk: str = "#",
    ) -> dict[str, Any]:
        """An UpdateItem: SET each value of `sets` (REMOVE it where None), ADD `adds`."""
        e = Expr()
        assigned = [f"{e.n(k)} = {e.v(v)}" for k, v in sets.items() if v is not None]
        removed = [e.n(k) for k, v in sets.items() if v is None]
        added = [f"{e.n(k)} {e.v(v)}" for k, v in (adds or {}).items()]
        clauses = [
            f"{word} {', '.join(parts)}"
            for word, parts in (("SET", assigned), ("REMOVE", removed), ("ADD", added))
            if parts
        ]
        op: dict[str, Any] = {
            "TableName": self._table,
            "Key": key(pk, sk),
            "UpdateExpression": " ".join(clauses),
        }
        if condition is not None:
            op["ConditionExpression"] = condition(e)
        op.update(e.params())
        return op

    def delete_op(
        self, pk: str, sk: str = "#", condition: Condition | None = None
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self._table, "Key": key(pk, sk)}
        if condition is not None:
            e = Expr()
            op["ConditionExpression"] = condition(e)
            op.update(e.params())
        return op

    def check_op(self, pk: str, condition: Condition) -> dict[str, Any]:
        e = Expr()
        op = {"TableName": self._table, "Key": key(pk), "ConditionExpression": condition(e)}
        op.update(e.params())
        return op

    # -- paging ----------------------------------------------------------------------------

    def _page_by_created(
        self,
        index: str,
        partition: str,
        *,
        descending: bool,
        sort: str,
        limit: int,
        cursor: str | None,
        decode: Callable[[dict[str, Any]], R],
        keep: Callable[[R], bool] | None = None,
        attributes: tuple[str, ...] = (),
        filters: Callable[[Expr], str | None] | None = None,
    ) -> Page[R]:
        """One page of `partition` of `index` in creation order, resuming after `cursor`.

        The cursor holds the last item's creation time and id, which is its place in the index
        (`created_key`): the next page starts right after it, however deep, and items created
        meanwhile do not shift it. `filters` gives a FilterExpression (DynamoDB then returns
        only what matches, though it charges what it read) and `keep` has the last word.
        """
        check_limit(limit)
        e = Expr()
        condition = f"{e.n(INDEXES[index])} = {e.v(partition)}"
        if cursor:
            value, last_id = decode_cursor(cursor, sort)
            bound = f"{cursor_time(value, sort)}#{last_id}"
            condition += f" AND {e.n('created_key')} {'<' if descending else '>'} {e.v(bound)}"
        params: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": not descending,
            "Limit": limit + 1 if keep is None else max(limit + 1, 100),
        }
        if attributes:
            params["ProjectionExpression"] = ", ".join(e.n(a) for a in attributes)
        expression = filters(e) if filters is not None else None
        if expression:
            params["FilterExpression"] = expression
        params.update(e.params())
        found: list[tuple[dict[str, Any], R]] = []
        for values in self._query(**params):
            record = decode(values)
            if keep is None or keep(record):
                found.append((values, record))
                if len(found) > limit:
                    break
        next_cursor = None
        if len(found) > limit:
            found = found[:limit]
            last = found[-1][0]
            next_cursor = encode_cursor(sort, last["created_at"], last["id"])
        return Page([record for _, record in found], next_cursor)

    def _owned(self, kind: str, owner: str | None) -> tuple[str, str]:
        """The index and partition of `kind`'s records of `owner` (everyone's for None)."""
        return (BY_OWNER, f"{kind}#{owner}") if owner is not None else (BY_KIND, kind)


def cursor_time(value: str | None, sort: str) -> str:
    """The time in a cursor, checked, as index text; the standard cursor error otherwise."""
    try:
        return time_text(parse_time(str(value)))
    except (TypeError, ValueError):
        decode_cursor("", sort)  # raises the standard invalid-cursor error
        raise AssertionError("unreachable") from None


def attempts() -> Iterator[int]:
    """Numbers for an optimistic loop, with a short random pause after each lost race."""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        yield attempt


def too_busy(kind: str, record_id: str) -> Conflict:
    return Conflict(
        f'{kind} "{record_id}" is being changed by others right now; try again',
        details={"id": record_id},
    )
