# A production deployment: bigger training containers, logs kept a year, data protected from
# `terraform destroy` (the bucket must be emptied and deletion protection turned off first).
environment             = "prod"
worker_vcpu             = 4
worker_memory_mb        = 16384
max_vcpus               = 64
lambda_memory_mb        = 3008
api_throttle_rate       = 100
api_throttle_burst      = 200
noncurrent_version_days = 30
log_retention_days      = 365
protect_data            = true
