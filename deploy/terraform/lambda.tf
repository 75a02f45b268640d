# The API and web UI: the FastAPI app on Lambda (tabpilot.aws.lambda_handler.handler, package
# from `make lambda-zip`), also invoked every minute by EventBridge for housekeeping.

locals {
  api_function_name = "${local.name}-api"
  api_host          = replace(aws_apigatewayv2_api.http.api_endpoint, "https://", "")

  # Everything the API process reads; validated by Settings at the container's first event.
  api_environment = {
    TABPILOT_AUTH          = "token"
    TABPILOT_DATA_DIR      = "/tmp/tabpilot" # Lambda's only writable directory
    TABPILOT_METADATA_URI  = local.metadata_uri
    TABPILOT_ARTIFACT_URI  = local.artifact_uri
    TABPILOT_RUNNER_URI    = local.runner_uri
    TABPILOT_ALLOWED_HOSTS = join(",", concat([local.api_host], var.allowed_hosts))
    TABPILOT_MAX_UPLOAD_MB = tostring(var.api_max_upload_mb)
    TABPILOT_WEB_SECRET    = random_password.web_secret.result
    # API Gateway and Mangum deliver a response whole, so a job's event stream must end well
    # inside the request timeout; the browser's EventSource reconnects and resumes.
    TABPILOT_STREAM_MAX_SECONDS = tostring(var.api_stream_max_seconds)
  }
}

# The key that signs browser sessions and CSRF tokens, shared by every Lambda container. It is
# made here and passed in the environment (encrypted at rest by Lambda) rather than read from
# SSM at start-up: that would add a network call to every cold start, an SSM and a KMS
# permission to the role, and a code path that exists only on AWS. Rotate it with
# `terraform apply -replace=random_password.web_secret` (browser sessions then end).
resource "random_password" "web_secret" {
  length  = 48
  special = false
}

resource "aws_lambda_function" "api" {
  # checkov:skip=CKV_AWS_50:X-Ray tracing costs per trace and needs xray:PutTraceSegments on the role; the API logs each request instead.
  # checkov:skip=CKV_AWS_115:Concurrency is bounded by API Gateway throttling (api_throttle_rate/burst); reserving concurrency fails on new accounts whose limit is 10.
  # checkov:skip=CKV_AWS_116:A dead-letter queue serves asynchronous invocations; API requests are synchronous and a missed housekeeping run is repeated a minute later.
  # checkov:skip=CKV_AWS_117:The function calls only AWS public endpoints (S3, DynamoDB, Batch) with IAM; a VPC would need a NAT gateway or endpoints (about 32 USD a month each) for nothing in return.
  # checkov:skip=CKV_AWS_173:The environment holds the web secret, which Lambda encrypts at rest with its AWS-managed key; a customer-managed key adds cost and administration.
  # checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the package comes from this repository's own build (`make lambda-zip`).
  function_name    = local.api_function_name
  description      = "Tabpilot API and web UI (${var.environment})"
  role             = aws_iam_role.api.arn
  handler          = "tabpilot.aws.lambda_handler.handler"
  runtime          = var.lambda_runtime
  architectures    = ["x86_64"]
  s3_bucket        = aws_s3_object.api_zip.bucket
  s3_key           = aws_s3_object.api_zip.key
  source_code_hash = filebase64sha256(var.lambda_zip)
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_s

  environment {
    variables = local.api_environment
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.api.name
  }

  depends_on = [aws_iam_role_policy.api, aws_cloudwatch_log_group.api]
}

# Housekeeping: one reconcile pass of the Batch runner and a sweep of stale uploads per run
# (Lambda freezes background threads between requests, so nothing else would do it).
resource "aws_cloudwatch_event_rule" "housekeeping" {
  name                = "${local.name}-housekeeping"
  description         = "Tabpilot: reconcile Batch jobs with the metadata store"
  schedule_expression = var.housekeeping_schedule
}

resource "aws_cloudwatch_event_target" "housekeeping" {
  rule = aws_cloudwatch_event_rule.housekeeping.name
  arn  = aws_lambda_function.api.arn
}

resource "aws_lambda_permission" "housekeeping" {
  statement_id  = "AllowEventBridgeHousekeeping"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.api.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.housekeeping.arn
}
