# The artifact store (TABPILOT_ARTIFACT_URI = s3://BUCKET/artifacts) and the API's Lambda package
# (under deploy/). Private, encrypted, TLS only, versioned so a deleted upload or model can be
# recovered for var.noncurrent_version_days.

resource "aws_s3_bucket" "data" {
  # checkov:skip=CKV_AWS_18:Access logging needs a second bucket; CloudTrail data events can be turned on instead when an audit trail is required.
  # checkov:skip=CKV_AWS_144:Cross-region replication doubles storage cost; versioning and the region's own durability protect the data.
  # checkov:skip=CKV2_AWS_62:Nothing consumes S3 event notifications: jobs learn of their files through the metadata store.
  bucket        = "${local.name}-${local.account_id}-${var.region}"
  force_destroy = !var.protect_data
}

locals {
  # Objects the platform reads and writes live under this prefix; roles get no other keys.
  artifact_prefix = "artifacts"
  artifact_uri    = "s3://${aws_s3_bucket.data.bucket}/${local.artifact_prefix}"
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    # SSE-KMS with the account's AWS-managed key (aws/s3): no key to pay for or administer, and
    # roles that may use the bucket need no KMS permission of their own.
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket     = aws_s3_bucket.data.id
  depends_on = [aws_s3_bucket_versioning.data]

  # Uploads stream in multipart parts (storage/s3.py); a client that vanishes mid-upload
  # leaves parts that are billed but invisible. The store aborts failed uploads itself; this
  # catches the ones whose process died.
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # A deleted or replaced dataset upload or model file stays recoverable for a while, then goes.
  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }
}

data "aws_iam_policy_document" "data_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.data.arn,
      "${aws_s3_bucket.data.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket     = aws_s3_bucket.data.id
  policy     = data.aws_iam_policy_document.data_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.data]
}

# The API's Lambda package: uploaded here because a zip over 50 MB cannot be sent to Lambda
# directly. The key carries the zip's hash, so a new build is a new object and a new deploy.
resource "aws_s3_object" "api_zip" {
  bucket      = aws_s3_bucket.data.id
  key         = "deploy/lambda/api-${filemd5(var.lambda_zip)}.zip"
  source      = var.lambda_zip
  source_hash = filemd5(var.lambda_zip)
}
