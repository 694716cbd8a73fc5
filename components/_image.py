"""The container image every task runs in: one place, read by all components."""

#: Image with the library, kfp and torch installed (``images/``); overridden per task by the
#: pipeline's Kubernetes settings for GPU tasks.
BASE_IMAGE = "ghcr.io/mmrlaif/mmrlaif:0.1.0"
