# The metadata store (TABPILOT_METADATA_URI = dynamodb://PREFIX?region=REGION): one on-demand
# table, PREFIX-metadata, with point-in-time recovery. Its keys and indexes are the ones
# src/tabpilot/metadata/dynamo_items.py uses (tests/deploy compares the two, so they cannot
# drift): every record under its own partition (pk, sk), and three indexes sorted by creation
# (owner, kind, status) so that no request path ever scans.

locals {
  table_prefix          = local.name
  metadata_table_suffix = "-metadata" # dynamo_items.TABLE_SUFFIX
  metadata_uri          = "dynamodb://${local.table_prefix}?region=${var.region}"

  # Global secondary index => its partition key; each sorts by created_key, projects ALL.
  metadata_indexes = {
    by_owner  = "owner_key"
    by_kind   = "kind"
    by_status = "status"
  }
  metadata_index_sort_key = "created_key"
}

resource "aws_dynamodb_table" "metadata" {
  # checkov:skip=CKV_AWS_119:Encrypted at rest with DynamoDB's AWS-owned key (the default, free); a customer-managed KMS key adds cost and would need kms:Decrypt on both roles.
  name                        = "${local.table_prefix}${local.metadata_table_suffix}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.protect_data

  point_in_time_recovery {
    enabled = true
  }

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = local.metadata_index_sort_key
    type = "S"
  }

  dynamic "attribute" {
    for_each = toset(values(local.metadata_indexes))
    content {
      name = attribute.value
      type = "S"
    }
  }

  dynamic "global_secondary_index" {
    for_each = local.metadata_indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value
      range_key       = local.metadata_index_sort_key
      projection_type = "ALL"
    }
  }
}

locals {
  # The table and its indexes, for the roles' policies.
  metadata_table_arns = [aws_dynamodb_table.metadata.arn, "${aws_dynamodb_table.metadata.arn}/index/*"]
}
