# One role per component, each allowed exactly the AWS actions its code calls (tests/deploy
# derives them from the code and compares), on this deployment's resources only:
#
#   api               the API Lambda: artifacts (S3), metadata (DynamoDB), submitting,
#                     listing, describing and terminating training jobs (Batch), checking
#                     that the worker image exists (ECR), its own logs
#   worker            the training container (Batch job role): artifacts and metadata
#   worker_execution  what ECS needs to start that container: pull the image, write its logs
#
# Creating the bucket and tables is Terraform's job (or `tabpilot init-stores` with a
# developer's own credentials), so no role may create or delete them.

locals {
  artifact_objects = "${aws_s3_bucket.data.arn}/${local.artifact_prefix}/*"
  job_definition_arns = [
    "arn:${local.partition}:batch:${var.region}:${local.account_id}:job-definition/${local.job_definition_name}",
    "arn:${local.partition}:batch:${var.region}:${local.account_id}:job-definition/${local.job_definition_name}:*",
  ]
  batch_jobs_arn = "arn:${local.partition}:batch:${var.region}:${local.account_id}:job/*"
}

# -- who may assume each role -------------------------------------------------------------------

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# -- the API Lambda -------------------------------------------------------------------------------

data "aws_iam_policy_document" "api" {
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.api.arn}:*"]
  }

  statement {
    sid = "ArtifactObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.artifact_objects]
  }

  statement {
    # Listing is confined to the artifact prefix; HeadBucket (the store's ping) is authorized
    # as s3:ListBucket too and carries no prefix, hence IfExists.
    sid       = "ArtifactListing"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data.arn]

    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = ["${local.artifact_prefix}/*", local.artifact_prefix]
    }
  }

  statement {
    sid = "MetadataTables"
    # Transactions (TransactWriteItems) are authorized item by item: Put, Update, Delete and
    # ConditionCheck items need PutItem, UpdateItem, DeleteItem and ConditionCheckItem.
    actions = [
      "dynamodb:GetItem",
      "dynamodb:Query",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
    ]
    resources = local.metadata_table_arns
  }

  statement {
    sid       = "SubmitTrainingJobs"
    actions   = ["batch:SubmitJob"]
    resources = concat([aws_batch_job_queue.jobs.arn], local.job_definition_arns)
  }

  statement {
    sid       = "CancelTrainingJobs"
    actions   = ["batch:TerminateJob"]
    resources = [local.batch_jobs_arn]
  }

  statement {
    # Batch's Describe* and ListJobs take no resource-level permissions: "*" is the only form.
    sid = "ReadTrainingJobs"
    actions = [
      "batch:DescribeJobs",
      "batch:ListJobs",
      "batch:DescribeJobQueues",
      "batch:DescribeJobDefinitions",
    ]
    resources = ["*"]
  }

  statement {
    # The start-up check that the job definition's image was pushed (jobs/batch_check.py).
    sid       = "CheckWorkerImage"
    actions   = ["ecr:DescribeImages"]
    resources = [aws_ecr_repository.worker.arn]
  }
}

resource "aws_iam_role" "api" {
  name                 = "${local.name}-api"
  assume_role_policy   = data.aws_iam_policy_document.assume_lambda.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "api" {
  name   = "tabpilot-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

# -- the training container (Batch job role) ----------------------------------------------------

data "aws_iam_policy_document" "worker" {
  statement {
    sid = "ArtifactObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = [local.artifact_objects]
  }

  statement {
    # Listing is confined to the artifact prefix; HeadBucket (the store's ping) is authorized
    # as s3:ListBucket too and carries no prefix, hence IfExists.
    sid       = "ArtifactListing"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data.arn]

    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = ["${local.artifact_prefix}/*", local.artifact_prefix]
    }
  }

  statement {
    sid = "MetadataTables"
    # Transactions (TransactWriteItems) are authorized item by item: Put, Update, Delete and
    # ConditionCheck items need PutItem, UpdateItem, DeleteItem and ConditionCheckItem.
    actions = [
      "dynamodb:GetItem",
      "dynamodb:Query",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
    ]
    resources = local.metadata_table_arns
  }
}

resource "aws_iam_role" "worker" {
  name                 = "${local.name}-worker"
  assume_role_policy   = data.aws_iam_policy_document.assume_ecs_tasks.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "worker" {
  name   = "tabpilot-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

# -- starting the training container (ECS task execution role) ---------------------------------

data "aws_iam_policy_document" "worker_execution" {
  statement {
    # ECR's registry login takes no resource-level permission.
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullWorkerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.worker.arn]
  }

  statement {
    sid       = "JobLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.jobs.arn}:*"]
  }
}

resource "aws_iam_role" "worker_execution" {
  name                 = "${local.name}-worker-execution"
  assume_role_policy   = data.aws_iam_policy_document.assume_ecs_tasks.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "worker_execution" {
  name   = "tabpilot-worker-execution"
  role   = aws_iam_role.worker_execution.id
  policy = data.aws_iam_policy_document.worker_execution.json
}

# API Gateway writes its access log through CloudWatch Logs' resource policy for the service,
# which HTTP APIs set up themselves; no role is needed for it.
