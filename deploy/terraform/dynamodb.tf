# The metadata store (TABPILOT_METADATA_URI = dynamodb://PREFIX?region=REGION): on-demand
# tables with point-in-time recovery. The tables and their indexes are the ones
# src/tabpilot/metadata/dynamo*.py uses; tests/deploy compares the two so they cannot drift.

locals {
  table_prefix = "${local.name}-"
  metadata_uri = "dynamodb://${local.table_prefix}?region=${var.region}"

  # table suffix => keys, attribute types and global secondary indexes (all projecting ALL).
  dynamodb_tables = {
    records = {
      hash_key   = "pk"
      range_key  = "sk"
      attributes = { pk = "S", sk = "S", gsi1pk = "S", gsi1sk = "S" }
      indexes = {
        gsi1 = { hash_key = "gsi1pk", range_key = "gsi1sk" }
      }
      ttl_attribute = ""
    }
  }
}

resource "aws_dynamodb_table" "metadata" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with DynamoDB's AWS-owned key (the default, free); a customer-managed KMS key adds cost and would need kms:Decrypt on both roles.
  for_each = local.dynamodb_tables

  name                        = "${local.table_prefix}${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  deletion_protection_enabled = var.protect_data

  point_in_time_recovery {
    enabled = true
  }

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.hash_key
      range_key       = global_secondary_index.value.range_key
      projection_type = "ALL"
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl_attribute == "" ? [] : [each.value.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }
}

locals {
  # Every table and every index of it, for the roles' policies.
  metadata_table_arns = flatten([
    for table in aws_dynamodb_table.metadata : [table.arn, "${table.arn}/index/*"]
  ])
}
