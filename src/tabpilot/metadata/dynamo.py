"""`DynamoMetadataStore`: the metadata store on one DynamoDB table (`dynamodb://PREFIX`).

`dynamodb://PREFIX?region=REGION` uses the table `PREFIX-metadata` (its layout:
`tabpilot.metadata.dynamo_items`). boto3 finds the credentials, the region (unless the URI
names one) and the endpoint the standard AWS way (`AWS_PROFILE`/`AWS_ACCESS_KEY_ID`, a task or
instance role, `AWS_REGION`, `AWS_ENDPOINT_URL` for an emulator); Tabpilot adds no AWS setting.
The table is made by Terraform in a deployment and by `tabpilot init-stores` (`ensure_table`:
on-demand billing, its three indexes) in development and tests; a missing table is named with
that advice on first use.

How the `MetadataStore` contract is kept without SQL transactions:

- **Every state change is a conditional write**: a record is read consistently, and written on
  condition that its `rev` is still the one read (retried otherwise). A job's status change and
  its status event are one TransactWriteItems (with the model record, for a job that
  succeeds), so a claim has exactly one winner however many workers race (`dynamo_jobs`).
- **Listings are Queries through indexes**, never Scans: by owner and creation time, everyone's
  by creation time, jobs by status (the queue). Cursors hold the last item's place in the index.
  Filters (tag, text, ...) are applied to what the owner's partition returns.
- **Nothing grows inside an item**: events are items of their own (`event#<seq>`), and
  profiles and cards larger than 32 KB are compressed into pieces (`dynamo_docs`, which says
  why pieces in the table rather than S3 objects).
- Unique names, token hashes and deploy keys are guard items written in the same transaction
  as their record (`dynamo_records`).

Index reads are eventually consistent in DynamoDB: a record written a moment ago may be missing
from a listing for a moment; reads of one record are consistent.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from tabpilot.errors import InvalidInput
from tabpilot.metadata.dynamo_base import TABLE_READY_TIMEOUT_S
from tabpilot.metadata.dynamo_items import INDEXES, table_definition
from tabpilot.metadata.dynamo_jobs import DynamoJobs
from tabpilot.metadata.dynamo_records import DynamoDatasets, DynamoModels, DynamoUsers

__all__ = ["DynamoMetadataStore"]


class DynamoMetadataStore(DynamoJobs, DynamoDatasets, DynamoModels, DynamoUsers):
    """Metadata in the DynamoDB table `<prefix>-metadata`; safe to share between threads."""

    def ensure_table(self) -> bool:
        """Create the table with its indexes if it is missing and wait until it is active;
        returns whether it was created. Idempotent, also when several run at once."""
        created = False
        try:
            description = self._call("describe_table", TableName=self._table)["Table"]
        except InvalidInput as exc:
            if exc.details.get("reason") != "no_table":
                raise
            try:
                self._client.create_table(**table_definition(self._prefix))
                created = True
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise self._translate(error) from None
            description = self._wait_until_active()
        self._check_layout(description)
        return created

    def _wait_until_active(self) -> dict[str, Any]:
        deadline = time.monotonic() + TABLE_READY_TIMEOUT_S
        while True:
            description: dict[str, Any] = self._call("describe_table", TableName=self._table)[
                "Table"
            ]
            indexes = description.get("GlobalSecondaryIndexes") or []
            if description.get("TableStatus") == "ACTIVE" and all(
                i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes
            ):
                return description
            if time.monotonic() > deadline:
                raise self.misconfigured(
                    f'the table "{self._table}" did not become active within '
                    f"{TABLE_READY_TIMEOUT_S:.0f} s; look at it in the AWS console",
                    reason="table_not_ready",
                )
            time.sleep(1)

    def _check_layout(self, description: dict[str, Any]) -> None:
        """Refuse a table of the same name that lacks the keys or indexes this store uses."""
        keys = {k["AttributeName"]: k["KeyType"] for k in description.get("KeySchema", [])}
        indexes = {i["IndexName"] for i in description.get("GlobalSecondaryIndexes") or []}
        missing = sorted(set(INDEXES) - indexes)
        if keys != {"pk": "HASH", "sk": "RANGE"} or missing:
            raise self.misconfigured(
                f'the table "{self._table}" exists but was not made for Tabpilot (it needs the '
                f"keys pk and sk and the indexes {', '.join(INDEXES)}; missing: "
                f"{', '.join(missing) or 'the keys'}); choose another table prefix",
                reason="wrong_table",
            )
