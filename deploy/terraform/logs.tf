# CloudWatch log groups, made here (not by the services on first write) so that their
# retention is set and no role needs logs:CreateLogGroup.

resource "aws_cloudwatch_log_group" "api" {
  # checkov:skip=CKV_AWS_158:Logs are encrypted by CloudWatch's own keys; a customer-managed KMS key adds cost and key administration without a requirement for it.
  name              = "/aws/lambda/${local.name}-api"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "gateway" {
  # checkov:skip=CKV_AWS_158:Logs are encrypted by CloudWatch's own keys; a customer-managed KMS key adds cost and key administration without a requirement for it.
  name              = "/aws/apigateway/${local.name}-api"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "jobs" {
  # checkov:skip=CKV_AWS_158:Logs are encrypted by CloudWatch's own keys; a customer-managed KMS key adds cost and key administration without a requirement for it.
  name              = "/aws/batch/${local.name}-jobs"
  retention_in_days = var.log_retention_days
}
