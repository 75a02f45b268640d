# The training worker for AWS Batch: `tabpilot run-job JOB_ID` (the job definition's command,
# `tabpilot run-job Ref::job_id`). Build from the repository root: `make worker-image`.
#
# Two stages: the first installs Tabpilot with its training libraries into a virtual
# environment; the second copies only that environment onto a slim Python, without pip's
# cache, compilers or build files.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tabpilot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# - train: the training libraries; aws: S3, DynamoDB and Batch (boto3); postgres: for a
#   PostgreSQL metadata store (RDS) instead of DynamoDB.
# - XGBoost's Linux wheel depends on NVIDIA's NCCL (about 200 MB), used only for multi-GPU
#   training; the worker trains on CPUs (Fargate has no GPU), so it is removed.
# - Bytecode caches and the test suites shipped inside wheels are not needed at run time.
RUN /opt/tabpilot/bin/pip install ".[train,aws,postgres]" \
 && /opt/tabpilot/bin/pip uninstall --yes nvidia-nccl-cu12 \
 && /opt/tabpilot/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/tabpilot -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} + \
 && /opt/tabpilot/bin/python -c "import tabpilot.engine.training.train, catboost, xgboost"

FROM python:${PYTHON_VERSION}-slim
# LightGBM and XGBoost need the GNU OpenMP runtime, which slim images lack.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/tabpilot /opt/tabpilot
RUN useradd --create-home --uid 10001 tabpilot
USER tabpilot
WORKDIR /home/tabpilot
# Jobs read and write their stores (S3, DynamoDB) through the URIs that the job definition
# sets; the data directory is only scratch space for the job's files.
ENV PATH=/opt/tabpilot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TABPILOT_DATA_DIR=/tmp/tabpilot
CMD ["tabpilot", "run-job", "--help"]
