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
# - XGBoost: the CPU-only build (xgboost-cpu, 4.5 MB, the same `xgboost` module) replaces the
#   Linux wheel, which carries CUDA kernels and NVIDIA's NCCL (about 800 MB together) for GPU
#   training; Fargate has no GPU. It is pinned to the version pip resolved.
# - CatBoost requires plotly, matplotlib and graphviz for its notebook plots, which a worker
#   never draws (about 120 MB with theirs); the last line checks that training still imports
#   and fits without them.
# - pip, bytecode caches and the test suites shipped inside wheels are not needed at run time.
# Measured on a venv built the same way (Python 3.11, x86_64): 874 MB; the image adds the slim
# base (about 130 MB).
RUN /opt/tabpilot/bin/pip install ".[train,aws,postgres]" \
 && XGB_VERSION="$(/opt/tabpilot/bin/python -c 'import importlib.metadata as m; print(m.version("xgboost"))')" \
 && /opt/tabpilot/bin/pip uninstall --yes xgboost nvidia-nccl-cu12 \
 && /opt/tabpilot/bin/pip install "xgboost-cpu==${XGB_VERSION}" \
 && /opt/tabpilot/bin/pip uninstall --yes plotly matplotlib graphviz fonttools contourpy \
      kiwisolver cycler pillow \
 && /opt/tabpilot/bin/python -c "import numpy as np, catboost, xgboost, tabpilot.engine.training.train; \
X = np.random.rand(60, 3); y = np.arange(60) % 2; \
catboost.CatBoostClassifier(iterations=3, verbose=0).fit(X, y); xgboost.XGBClassifier(n_estimators=3).fit(X, y)" \
 && /opt/tabpilot/bin/pip uninstall --yes pip setuptools wheel \
 && find /opt/tabpilot -depth -type d \( -name __pycache__ -o -name tests \) -exec rm -rf {} +

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
