# syntax=docker/dockerfile:1
# Labeler image: an OpenAI-compatible server (vLLM) for the labeler VLM (yes/no from logprobs)
# and for the claim-extraction / question LLM. Run it as a Deployment next to the pipeline and
# point labeling.endpoint / labeling.llm_endpoint at its Service, e.g.
#   args: ["--model", "llava-hf/llava-v1.6-34b-hf", "--max-logprobs", "20", "--port", "8000"]
# Build with `make images` (build args from images/versions.yaml; the default below equals it).
ARG VLLM_BASE=vllm/vllm-openai:v0.28.0@sha256:61fc8a896b0a4fbbbdc063bc4b0dbc25ce98e02b5050c24aeb7830ac02039b14
FROM ${VLLM_BASE}

ARG APP_UID=1000
ENV HOME=/home/mmrlaif \
    HF_HOME=/models/hf \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

RUN groupadd --gid "${APP_UID}" mmrlaif \
    && useradd --uid "${APP_UID}" --gid "${APP_UID}" --create-home --shell /usr/sbin/nologin mmrlaif \
    && mkdir -p /models/hf \
    && chown -R "${APP_UID}:${APP_UID}" /models

USER ${APP_UID}:${APP_UID}
EXPOSE 8000
ENTRYPOINT ["vllm", "serve"]
CMD ["--help"]
