"""The container image every task runs in: one place, read by all components."""

from mmrlaif.images import release_image

#: This release's CPU image (``images/versions.yaml``); the pipeline's Kubernetes settings set
#: each task's image (CPU or GPU) on top.
BASE_IMAGE = release_image("cpu")
