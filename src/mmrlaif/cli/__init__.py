"""The ``mmrlaif`` command: local runs (``world``, ``sft``, ``evaluate``, ``demo``, ``run``),
cluster operations (``compile``, ``submit``, ``schedule``, ``promote``) and ``bench score``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from mmrlaif.config import ConfigError, apply_storage, load_config, load_yaml

logger = logging.getLogger("mmrlaif")

#: Adds one subcommand: ``add(name, func, help, config_required=True)`` returns its parser
#: (``--config`` and ``--set`` already declared).
AddCommand = Callable[..., argparse.ArgumentParser]


class CommandError(RuntimeError):
    """A command failed for a reason the user can act on (printed without a traceback)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrlaif`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        cfg = load_config(args.config, _overrides(args.set))
        apply_storage(cfg)
        return int(args.func(cfg, args) or 0)
    except (ConfigError, CommandError, FileNotFoundError, ValueError) as exc:
        print(f"mmrlaif: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.verbose:
            raise
        print("mmrlaif: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    # lazy: the command modules import AddCommand from this one
    from mmrlaif.cli import bench, cluster, estimate, local

    parser = argparse.ArgumentParser(prog="mmrlaif", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(required=True, dest="command")

    def add(name: str, func, help: str, config_required: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument(
            "--config",
            required=config_required,
            action="append",
            # without one, the defaults (an empty YAML file)
            default=None if config_required else [os.devnull],
            help="YAML preset, e.g. configs/tiny_cpu.yaml; repeat to merge overlays over it",
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value by dotted key (repeatable), e.g. sft.max_length=96",
        )
        p.set_defaults(func=func)
        return p

    local.register(add)
    cluster.register(add)
    estimate.register(add)
    bench.register(add)
    return parser


def _overrides(pairs: Sequence[str]) -> dict[str, object]:
    return key_values(pairs, "--set", load_yaml)


def key_values(
    pairs: Sequence[str], flag: str, convert: Callable[[str], object] = str
) -> dict[str, object]:
    """``KEY=VALUE`` arguments of ``flag`` as a mapping (values through ``convert``).

    Raises:
        CommandError: An argument without ``=`` or without a key.
    """
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = convert(value)
    return out


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    from transformers.utils import logging as hf_logging  # lazy: importing mmrlaif.cli stays light

    hf_logging.set_verbosity_warning()
    hf_logging.disable_progress_bar()
