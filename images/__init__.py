"""The container images: ``versions.yaml`` read by the pipeline code and by ``make images``.

Shipped inside the package as ``mmrlaif.images``: a compiled pipeline names the images of the
release that compiled it (``<registry>/<name>:<release>``), and ``mmrlaif images`` builds those
very images from the Dockerfiles here with the pinned base images as build arguments.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

#: The image roles: CPU tasks, GPU tasks (training included), the labeler server.
ROLES: tuple[str, ...] = ("cpu", "gpu", "labeler")


@dataclass(frozen=True)
class Versions:
    """Contents of ``images/versions.yaml``.

    Attributes:
        release: Tag of the release images (the package version).
        registry: Default registry of the release images.
        names: Image name per role.
        dockerfiles: Dockerfile per role, relative to the repository root.
        build_args: Build arguments of every Dockerfile (pinned base images, versions).
    """

    release: str
    registry: str
    names: Mapping[str, str]
    dockerfiles: Mapping[str, str]
    build_args: Mapping[str, str]

    def image(self, role: str, registry: str | None = None) -> str:
        """The release image of ``role`` (``<registry>/<name>:<release>``).

        Raises:
            ValueError: An unknown role.
        """
        if role not in self.names:
            raise ValueError(f"unknown image role {role!r}; expected one of {sorted(self.names)}")
        return f"{(registry or self.registry).rstrip('/')}/{self.names[role]}:{self.release}"


def parse_versions(text: str, source: str = "versions.yaml") -> Versions:
    """Parse and check a versions file.

    Raises:
        ValueError: Naming the file and the missing or malformed entry.
    """
    data = yaml.safe_load(text) or {}
    try:
        images = data["images"]
        versions = Versions(
            release=str(data["release"]),
            registry=str(data["registry"]),
            names={role: str(images[role]["name"]) for role in ROLES},
            dockerfiles={role: str(images[role]["dockerfile"]) for role in ROLES},
            build_args={k: "" if v is None else str(v) for k, v in data["build_args"].items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{source}: missing or malformed entry {exc}") from exc
    for key, value in versions.build_args.items():
        if key.endswith(("_BASE", "_IMAGE")) and "@sha256:" not in value:
            raise ValueError(f"{source}: build_args.{key} must be pinned by digest, got {value!r}")
    return versions


@cache
def load_versions() -> Versions:
    """The versions file shipped with this package."""
    text = resources.files(__name__).joinpath("versions.yaml").read_text()
    return parse_versions(text)


def release_image(role: str, registry: str | None = None) -> str:
    """The release image of ``role`` from the shipped versions file."""
    return load_versions().image(role, registry)


def build_commands(
    root: Path,
    registry: str | None = None,
    push: bool = False,
    roles: tuple[str, ...] = ROLES,
    git_sha: str | None = None,
) -> list[list[str]]:
    """``docker build`` (and ``docker push``) commands for the release images.

    Args:
        root: The repository root (the build context).
        registry: Registry to tag for (default: the versions file's).
        push: Also push each image after building it.
        roles: Which images.
        git_sha: The source revision baked into the images (``MMRLAIF_GIT_SHA``).

    Returns:
        The commands, in order, as argument lists.
    """
    versions = load_versions()
    commands: list[list[str]] = []
    for role in roles:
        tag = versions.image(role, registry)
        cmd = ["docker", "build", "--file", str(root / versions.dockerfiles[role]), "--tag", tag]
        for key, value in versions.build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        if git_sha:
            cmd += ["--build-arg", f"GIT_SHA={git_sha}"]
        commands.append([*cmd, str(root)])
        if push:
            commands.append(["docker", "push", tag])
    return commands


def format_command(cmd: list[str]) -> str:
    """A command as a shell line."""
    return shlex.join(cmd)
