"""Terraform's DynamoDB table is the one the DynamoDB store creates and uses: same name for the
URI's prefix, keys, attributes, indexes and billing (compared with `table_definition`, the
store's own CreateTable request), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.terraform import Config, blocks, load_config

pytest.importorskip("boto3", reason="the DynamoDB store needs boto3: the aws extra")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config()


def _local(config: Config, value: str) -> Any:
    """The value of `${local.x}`, or `value` itself when it is a literal."""
    if value.startswith("${local.") and value.endswith("}") and value.count("${") == 1:
        return config.local(value[len("${local.") : -1])
    assert "${" not in value, f"cannot resolve {value!r} here"
    return value


def terraform_definition(config: Config, prefix: str) -> dict[str, Any]:
    """The CreateTable request that Terraform's `aws_dynamodb_table.metadata` amounts to."""
    table = config.resource("aws_dynamodb_table", "metadata")
    attributes = {_local(config, item["name"]): item["type"] for item in blocks(table, "attribute")}
    indexes = config.local("metadata_indexes")
    (dynamic_attributes, dynamic_indexes) = sorted(
        (entry for entry in blocks(table, "dynamic")), key=lambda entry: next(iter(entry))
    )
    # The dynamic blocks add one string attribute per index key and one index per entry.
    assert dynamic_attributes["attribute"]["for_each"] == "${toset(values(local.metadata_indexes))}"
    for name in indexes.values():
        attributes[name] = "S"
    gsi = dynamic_indexes["global_secondary_index"]
    assert gsi["for_each"] == "${local.metadata_indexes}"
    (content,) = gsi["content"]
    sort_key = _local(config, content["range_key"])
    assert content["projection_type"] == "ALL"
    suffix = config.local("metadata_table_suffix")
    assert table["name"] == "${local.table_prefix}${local.metadata_table_suffix}"
    return {
        "TableName": prefix + suffix,
        "BillingMode": table["billing_mode"],
        "AttributeDefinitions": sorted(attributes.items()),
        "KeySchema": [(table["hash_key"], "HASH"), (table["range_key"], "RANGE")],
        "GlobalSecondaryIndexes": sorted(
            (name, ((partition, "HASH"), (sort_key, "RANGE")), "ALL")
            for name, partition in indexes.items()
        ),
    }


def store_definition(prefix: str) -> dict[str, Any]:
    """The store's own CreateTable request for `dynamodb://PREFIX`, in the same shape."""
    items = pytest.importorskip("tabpilot.metadata.dynamo_items")
    request = items.table_definition(prefix)
    return {
        "TableName": request["TableName"],
        "BillingMode": request["BillingMode"],
        "AttributeDefinitions": sorted(
            (item["AttributeName"], item["AttributeType"])
            for item in request["AttributeDefinitions"]
        ),
        "KeySchema": [(item["AttributeName"], item["KeyType"]) for item in request["KeySchema"]],
        "GlobalSecondaryIndexes": sorted(
            (
                index["IndexName"],
                tuple((key["AttributeName"], key["KeyType"]) for key in index["KeySchema"]),
                index["Projection"]["ProjectionType"],
            )
            for index in request.get("GlobalSecondaryIndexes", [])
        ),
    }


def test_terraform_table_is_the_stores_table(config: Config) -> None:
    prefix = "tabpilot-dev"
    assert terraform_definition(config, prefix) == store_definition(prefix)


def test_the_uri_terraform_gives_opens_that_table(config: Config) -> None:
    """The store reads the prefix from the URI Terraform writes, and names the same table."""
    dynamo = pytest.importorskip("tabpilot.metadata.dynamo")
    assert config.local("metadata_uri") == "dynamodb://${local.table_prefix}?region=${var.region}"
    assert config.local("table_prefix") == "${local.name}"
    store = dynamo.DynamoMetadataStore("tabpilot-dev", "eu-west-1", client=object())
    table = config.resource("aws_dynamodb_table", "metadata")
    assert table["name"] == "${local.table_prefix}${local.metadata_table_suffix}"
    assert store.table == "tabpilot-dev" + config.local("metadata_table_suffix")
