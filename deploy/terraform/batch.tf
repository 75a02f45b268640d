# Training: AWS Batch on Fargate. Jobs go to Fargate Spot first (about 70% cheaper) and to
# on-demand Fargate when the Spot environment is at its vCPU limit. A job is submitted with
# only its id (`tabpilot run-job Ref::job_id`); the worker reads the job's spec from the
# stores named in its environment.

data "aws_vpc" "default" {
  count   = var.vpc_id == "" ? 1 : 0
  default = true
}

data "aws_subnets" "default" {
  count = length(var.subnet_ids) == 0 ? 1 : 0

  filter {
    name   = "vpc-id"
    values = [local.vpc_id]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }
}

locals {
  vpc_id     = var.vpc_id != "" ? var.vpc_id : data.aws_vpc.default[0].id
  subnet_ids = length(var.subnet_ids) > 0 ? var.subnet_ids : data.aws_subnets.default[0].ids

  job_queue_name      = "${local.name}-jobs"
  job_definition_name = "${local.name}-train"
  runner_uri          = "batch://${local.job_queue_name}?job_definition=${local.job_definition_name}"

  # What Batch runs: Batch puts SubmitJob's parameters.job_id in place of Ref::job_id.
  # Must equal BATCH_COMMAND in src/tabpilot/jobs/batch.py (tests/deploy checks).
  worker_command = ["tabpilot", "run-job", "Ref::job_id"]

  # The worker's whole configuration: the two stores. Everything about a job is in its spec.
  worker_environment = {
    TABPILOT_METADATA_URI = local.metadata_uri
    TABPILOT_ARTIFACT_URI = local.artifact_uri
    TABPILOT_DATA_DIR     = "/tmp/tabpilot"
    AWS_DEFAULT_REGION    = var.region
  }

  # Fargate's statusReason when the host went away: Spot capacity reclaimed, or the EC2 host
  # that ran the task ended. Only these are retried by Batch; a failing job is not.
  host_error_reasons = ["Host EC2*", "Your Spot Task was interrupted*"]
}

resource "aws_security_group" "jobs" {
  name        = "${local.name}-jobs"
  description = "Tabpilot training containers: no inbound traffic; HTTPS out to ECR, S3, DynamoDB and CloudWatch Logs"
  vpc_id      = local.vpc_id

  egress {
    description = "HTTPS to AWS service endpoints"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_batch_compute_environment" "spot" {
  compute_environment_name = "${local.name}-spot"
  type                     = "MANAGED"
  state                    = "ENABLED"

  compute_resources {
    type               = "FARGATE_SPOT"
    max_vcpus          = var.max_vcpus
    subnets            = local.subnet_ids
    security_group_ids = [aws_security_group.jobs.id]
  }
}

resource "aws_batch_compute_environment" "on_demand" {
  compute_environment_name = "${local.name}-on-demand"
  type                     = "MANAGED"
  state                    = "ENABLED"

  compute_resources {
    type               = "FARGATE"
    max_vcpus          = var.max_vcpus
    subnets            = local.subnet_ids
    security_group_ids = [aws_security_group.jobs.id]
  }
}

resource "aws_batch_job_queue" "jobs" {
  name     = local.job_queue_name
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.spot.arn
  }

  compute_environment_order {
    order               = 2
    compute_environment = aws_batch_compute_environment.on_demand.arn
  }
}

resource "aws_batch_job_definition" "train" {
  name                  = local.job_definition_name
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  propagate_tags        = true

  timeout {
    attempt_duration_seconds = var.job_timeout_s
  }

  retry_strategy {
    attempts = var.job_attempts

    dynamic "evaluate_on_exit" {
      for_each = local.host_error_reasons
      content {
        action           = "RETRY"
        on_status_reason = evaluate_on_exit.value
      }
    }

    evaluate_on_exit {
      action    = "EXIT"
      on_reason = "*"
    }
  }

  container_properties = jsonencode({
    image            = "${aws_ecr_repository.worker.repository_url}:${var.worker_image_tag}"
    command          = local.worker_command
    jobRoleArn       = aws_iam_role.worker.arn
    executionRoleArn = aws_iam_role.worker_execution.arn
    environment      = [for key in sort(keys(local.worker_environment)) : { name = key, value = local.worker_environment[key] }]
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.worker_vcpu) },
      { type = "MEMORY", value = tostring(var.worker_memory_mb) },
    ]
    fargatePlatformConfiguration = { platformVersion = "LATEST" }
    networkConfiguration         = { assignPublicIp = var.assign_public_ip ? "ENABLED" : "DISABLED" }
    runtimePlatform              = { operatingSystemFamily = "LINUX", cpuArchitecture = "X86_64" }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.jobs.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "train"
      }
    }
  })
}
