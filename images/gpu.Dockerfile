# syntax=docker/dockerfile:1
# GPU image: CUDA, torch, DeepSpeed (flash-attention optional) and the library. Runs the GPU
# pipeline tasks and DPO training, single-node multi-GPU in the KFP task or multi-node as a
# Kubeflow Trainer TrainJob (torchrun -m mmrlaif.training.launch).
# Build with `make images` (build args from images/versions.yaml; the defaults below equal it).
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04@sha256:ad6d59a3bbf3e82c1c849c9ac09cfc2a3e0bbb8655042fd899be6681b3fe2a85
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.10.12@sha256:72ab0aeb448090480ccabb99fb5f52b0dc3c71923bffb5e2e26517a1c27b7fec

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_BASE}
ARG PYTHON_VERSION=3.11.14
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
ARG DEEPSPEED_VERSION=0.19.8
ARG FLASH_ATTN_VERSION=
# The benchmarks' reference NLP: NLTK data and AMBER's spaCy model, installed at build time.
ARG SPACY_VERSION=3.8.18
ARG NLTK_RESOURCES="punkt_tab wordnet averaged_perceptron_tagger_eng"
ARG SPACY_MODEL_URL=https://github.com/explosion/spacy-models/releases/download/en_core_web_lg-3.8.0/en_core_web_lg-3.8.0-py3-none-any.whl
ARG APP_UID=1000
# the source revision, tagged on every MLflow run and model version (make images sets it)
ARG GIT_SHA=unknown

# Python from uv's pinned standalone builds (no apt: the CUDA base's Ubuntu has no 3.11).
ENV MMRLAIF_GIT_SHA=${GIT_SHA} \
    UV_NO_CACHE=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/mmrlaif \
    HF_HOME=/tmp/hf
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" "${VIRTUAL_ENV}" \
    && uv pip install --index-url "${TORCH_CUDA_INDEX}" \
         "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

WORKDIR /opt/mmrlaif
COPY pyproject.toml README.md ./
COPY src ./src
COPY components ./components
COPY pipelines ./pipelines
COPY images ./images
COPY configs ./configs
# DeepSpeed builds its ops just in time (nvcc from the devel base); flash-attention only if asked.
RUN uv pip install . "deepspeed==${DEEPSPEED_VERSION}" "spacy==${SPACY_VERSION}" \
        "en_core_web_lg @ ${SPACY_MODEL_URL}" \
    && python -m nltk.downloader -d /usr/local/share/nltk_data ${NLTK_RESOURCES} \
    && if [ -n "${FLASH_ATTN_VERSION}" ]; then \
         uv pip install --no-build-isolation "flash-attn==${FLASH_ATTN_VERSION}"; \
       fi \
    && groupadd --gid "${APP_UID}" mmrlaif \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --shell /usr/sbin/nologin mmrlaif

USER ${APP_UID}:${APP_UID}
CMD ["mmrlaif", "--help"]
