# What the README's deploy steps use: the URL to open, where to push the worker image, and the
# environment for running `tabpilot` commands (init-stores, users create) against this deployment.

output "api_url" {
  description = "The platform's URL: REST API, web UI and API docs at /docs."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "worker_repository_url" {
  description = "ECR repository to push the worker image to (docker push URL:TAG)."
  value       = aws_ecr_repository.worker.repository_url
}

output "bucket" {
  description = "S3 bucket of the artifact store."
  value       = aws_s3_bucket.data.bucket
}

output "job_queue" {
  description = "Batch job queue that training jobs are submitted to."
  value       = aws_batch_job_queue.jobs.name
}

output "job_definition" {
  description = "Batch job definition of training jobs (tabpilot run-job Ref::job_id)."
  value       = aws_batch_job_definition.train.name
}

output "api_function" {
  description = "Name of the API Lambda function (for its logs and `aws lambda invoke`)."
  value       = aws_lambda_function.api.function_name
}

output "tabpilot_environment" {
  description = "Shell lines that point a local `tabpilot` at this deployment's stores and runner: eval \"$(terraform output -raw tabpilot_environment)\"."
  value = join("\n", [
    "export TABPILOT_METADATA_URI='${local.metadata_uri}'",
    "export TABPILOT_ARTIFACT_URI='${local.artifact_uri}'",
    "export TABPILOT_RUNNER_URI='${local.runner_uri}'",
    "export AWS_REGION='${var.region}'",
  ])
}
