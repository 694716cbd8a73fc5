"""Where a run's starting policy comes from: a hub id, a local folder, an ``s3://`` folder, or
a model registry reference (``models:/<name>@<alias>``, ``models:/<name>/<version>``), or a
tiny random twin of a real family (``twin:<family>[@<seed>]``), resolved when the run starts."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from mmrlaif.families import parse_twin_spec
from mmrlaif.io import s3
from mmrlaif.tracking.uri import redact_uri

logger = logging.getLogger(__name__)

_REF = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w.-]+)|/(?P<version>\d+))$")


class PolicySourceError(ValueError):
    """A policy reference that cannot be resolved (bad syntax, no such alias or version)."""


@dataclass(frozen=True)
class ResolvedPolicy:
    """A resolved starting policy.

    Attributes:
        spec: What the config said.
        kind: ``hub``, ``local``, ``s3``, ``registry`` or ``twin``.
        path: What to load: a local folder, or the hub id as is.
        registered_model: For a registry reference: the model's name.
        version: For a registry reference: the version it resolved to.
        alias: For an alias reference: the alias.
    """

    spec: str
    kind: str
    path: str
    registered_model: str | None = None
    version: str | None = None
    alias: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """Plain data (for ``policy_source.json``)."""
        return asdict(self)


def parse_registry_ref(spec: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/3`` as ``(name, alias, version)``.

    Raises:
        PolicySourceError: ``spec`` starts with ``models:/`` but is neither form.
    """
    match = _REF.match(spec)
    if not match:
        raise PolicySourceError(
            f"model.name_or_path: {spec!r} is not models:/<name>@<alias> or models:/<name>/<n>"
        )
    return match["name"], match["alias"], match["version"]


def resolve_policy(spec: str, tracking_uri: str | None, download_to: str | Path) -> ResolvedPolicy:
    """Resolve ``spec`` to something :func:`mmrlaif.models.load_vlm` can load.

    Registry references and ``s3://`` folders are downloaded under ``download_to``, a twin is
    built and saved there; a local folder or a hub id is returned as is.

    Args:
        spec: The policy reference (``model.name_or_path``).
        tracking_uri: MLflow tracking URI (its registry), for ``models:/`` references.
        download_to: An empty folder for downloads.

    Raises:
        PolicySourceError: A malformed reference, an alias no version holds, a missing version.
    """
    download_to = Path(download_to)
    if spec.startswith("models:/"):
        return _resolve_registry(spec, tracking_uri, download_to)
    if spec.startswith("twin:"):
        # lazy: the twins import torch and transformers; other sources need neither
        from mmrlaif.toyworld.twins import save_twin

        try:
            family, seed = parse_twin_spec(spec)
        except ValueError as exc:
            raise PolicySourceError(f"model.name_or_path: {exc}") from exc
        local = save_twin(family, download_to / "twin", seed=seed)
        return ResolvedPolicy(spec, "twin", str(local))
    if s3.is_s3(spec):
        local = s3.download_tree(spec, download_to / "s3")
        return ResolvedPolicy(spec, "s3", str(local))
    if spec.startswith(("/", "./", "../", "~")) or Path(spec).expanduser().is_dir():
        return ResolvedPolicy(spec, "local", str(Path(spec).expanduser()))
    return ResolvedPolicy(spec, "hub", spec)


def _resolve_registry(spec: str, tracking_uri: str | None, download_to: Path) -> ResolvedPolicy:
    # lazy: mlflow takes seconds to import; only a registry source needs it
    from mlflow.exceptions import MlflowException

    from mmrlaif.tracking import mlflow_client as mf

    if not tracking_uri:
        raise PolicySourceError(f"{spec}: no MLflow tracking URI to resolve it against")
    name, alias, version = parse_registry_ref(spec)
    client = mf.client(tracking_uri)
    try:
        mv = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise PolicySourceError(
            f"{spec}: registered model {name!r} has no {what} in {redact_uri(tracking_uri)} "
            f"({exc.message}); "
            "seed the loop first: run once from a base model and promote it"
        ) from exc
    local = Path(client.download_artifacts(mv.run_id, "model", str(download_to)))
    logger.info("policy %s resolved to %s version %s", spec, name, mv.version)
    return ResolvedPolicy(spec, "registry", str(local), name, str(mv.version), alias)
