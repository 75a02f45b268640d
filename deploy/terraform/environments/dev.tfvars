# A development deployment: small, cheap, easy to tear down (`terraform destroy` empties the bucket).
environment             = "dev"
worker_vcpu             = 2
worker_memory_mb        = 8192
max_vcpus               = 8
lambda_memory_mb        = 2048
api_throttle_rate       = 20
api_throttle_burst      = 40
noncurrent_version_days = 7
log_retention_days      = 30
protect_data            = false
