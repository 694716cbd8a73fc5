# syntax=docker/dockerfile:1
# CPU image: the library, kfp and MLflow. Runs the CPU pipeline tasks (world, pairs, selection,
# tracking), the MLflow tracking server of the Helm chart and the chart's schedule hook.
# Build with `make images` (build args from images/versions.yaml; the defaults below equal it).
ARG PYTHON_BASE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
FROM ${PYTHON_BASE}

ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG PSYCOPG_VERSION=2.9.11
# The benchmarks' reference NLP: NLTK data and AMBER's spaCy model, installed at build time.
ARG SPACY_VERSION=3.8.18
ARG NLTK_RESOURCES="punkt_tab wordnet averaged_perceptron_tagger_eng"
ARG SPACY_MODEL_URL=https://github.com/explosion/spacy-models/releases/download/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl
ARG APP_UID=1000
# the source revision, tagged on every MLflow run and model version (make images sets it)
ARG GIT_SHA=unknown

ENV MMRLAIF_GIT_SHA=${GIT_SHA} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/mmrlaif \
    HF_HOME=/tmp/hf

WORKDIR /opt/mmrlaif
# torch and torchvision first, from the CPU index: the package's pins would otherwise pull a CUDA
# build (and PyPI's torchvision does not import beside a CPU torch).
RUN pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY images ./images
COPY configs ./configs
RUN pip install --no-cache-dir . "psycopg2-binary==${PSYCOPG_VERSION}" "spacy==${SPACY_VERSION}" \
        "en_core_web_lg @ ${SPACY_MODEL_URL}" \
    && python -m nltk.downloader -d /usr/local/share/nltk_data ${NLTK_RESOURCES} \
    && groupadd --gid "${APP_UID}" mmrlaif \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --shell /usr/sbin/nologin mmrlaif

USER ${APP_UID}:${APP_UID}
CMD ["mmrlaif", "--help"]
