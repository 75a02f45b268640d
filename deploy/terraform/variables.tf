# Inputs. Per-environment values live in environments/dev.tfvars and environments/prod.tfvars;
# `terraform apply -var-file=environments/dev.tfvars -var worker_image_tag=TAG`.

variable "environment" {
  description = "Deployment stage: dev (cheap, easy to destroy) or prod (protected, kept longer)."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be \"dev\" or \"prod\"."
  }
}

variable "region" {
  description = "AWS region for every resource."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name; resources are named NAME-ENVIRONMENT-..."
  type        = string
  default     = "tabpilot"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

# -- the API (Lambda behind an API Gateway HTTP API) ------------------------------------------

variable "lambda_zip" {
  description = "The API's Lambda package, made by `make lambda-zip`."
  type        = string
  default     = "../../build/lambda/api.zip"
}

variable "lambda_runtime" {
  description = "Python runtime of the API Lambda; must match the Python the zip was built for."
  type        = string
  default     = "python3.11"
}

variable "lambda_memory_mb" {
  description = "API Lambda memory (MiB); CPU grows with it, so cold starts and predictions get faster."
  type        = number
  default     = 2048
}

variable "lambda_timeout_s" {
  description = "API Lambda timeout (s); an HTTP API integration waits at most 30 s."
  type        = number
  default     = 30

  validation {
    condition     = var.lambda_timeout_s >= 3 && var.lambda_timeout_s <= 30
    error_message = "lambda_timeout_s must be 3-30: API Gateway gives up on a request after 30 s."
  }
}

variable "housekeeping_schedule" {
  description = "How often EventBridge invokes the API function for housekeeping: a reconcile pass of Batch jobs and a sweep of stale uploads."
  type        = string
  default     = "rate(1 minute)"
}

variable "api_max_upload_mb" {
  description = "Largest upload the API accepts (TABPILOT_MAX_UPLOAD_MB). Lambda takes request bodies of at most 6 MB (base64-encoded), so more than 4 cannot arrive."
  type        = number
  default     = 4
}

variable "api_stream_max_seconds" {
  description = "Seconds a job event stream stays open on Lambda (TABPILOT_STREAM_MAX_SECONDS); must end before lambda_timeout_s, since API Gateway delivers the stream only when it ends."
  type        = number
  default     = 10
}

variable "api_throttle_rate" {
  description = "Steady requests per second API Gateway lets through, all clients together."
  type        = number
  default     = 50
}

variable "api_throttle_burst" {
  description = "Burst of requests API Gateway lets through above the steady rate."
  type        = number
  default     = 100
}

variable "allowed_hosts" {
  description = "Extra host names the API answers to (a custom domain), besides API Gateway's own."
  type        = list(string)
  default     = []
}

# -- training (AWS Batch on Fargate) -----------------------------------------------------------

variable "worker_image_tag" {
  description = "Tag of the worker image pushed to the ECR repository (tags are immutable: use the git commit)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.worker_image_tag))
    error_message = "worker_image_tag must be a Docker tag: letters, digits, _ . - (at most 128)."
  }
}

variable "worker_vcpu" {
  description = "vCPUs per training job (a Fargate size: 0.25, 0.5, 1, 2, 4, 8 or 16)."
  type        = number
  default     = 2

  validation {
    condition     = contains([0.25, 0.5, 1, 2, 4, 8, 16], var.worker_vcpu)
    error_message = "worker_vcpu must be a Fargate size: 0.25, 0.5, 1, 2, 4, 8 or 16."
  }
}

variable "worker_memory_mb" {
  description = "Memory per training job (MiB); must be a size Fargate allows for worker_vcpu."
  type        = number
  default     = 8192
}

variable "max_vcpus" {
  description = "vCPUs all training jobs may use at once, per compute environment (Spot and on-demand)."
  type        = number
  default     = 16
}

variable "job_timeout_s" {
  description = "Seconds a training attempt may run before Batch stops it: above the largest budget a job may ask for (24 h, engine/budget.py MAX_BUDGET) plus time to load data and export the model."
  type        = number
  default     = 90000
}

variable "job_attempts" {
  description = "Batch attempts per job; attempts after the first happen only when the host went away (Spot reclaimed, EC2 host ended)."
  type        = number
  default     = 2
}

variable "vpc_id" {
  description = "VPC for training containers; empty uses the account's default VPC."
  type        = string
  default     = ""
}

variable "subnet_ids" {
  description = "Subnets for training containers; they need a route to the internet (the containers get a public IP) or VPC endpoints for ECR, S3, DynamoDB and CloudWatch Logs. Empty uses the default VPC's subnets."
  type        = list(string)
  default     = []
}

variable "assign_public_ip" {
  description = "Give training containers a public IP (needed in public subnets without NAT, such as the default VPC's)."
  type        = bool
  default     = true
}

# -- data and logs ---------------------------------------------------------------------------

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object (an upload, a model file) stays recoverable before S3 removes it."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the API's, the gateway's and the training jobs' logs."
  type        = number
  default     = 365
}

variable "protect_data" {
  description = "Refuse to destroy the bucket while it holds objects and turn on DynamoDB deletion protection (prod)."
  type        = bool
  default     = true
}
