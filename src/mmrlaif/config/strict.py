"""Strict loading of frozen config dataclasses from plain data (YAML / JSON)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading ``1e-4`` as a float, as YAML 1.2 does (1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML safely, ``1e-4`` being a float (not the string PyYAML makes of it).

    Raises:
        yaml.YAMLError: On unreadable YAML.
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a mapping, strictly.

    Args:
        cls: A dataclass type.
        data: Its field values; missing fields take their defaults.
        prefix: Dotted path of ``data`` inside the whole config, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: Naming the dotted key of the first unknown key or wrongly typed value.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = ", ".join(_join(prefix, k) for k in unknown)
        raise ConfigError(f"unknown config key(s): {where} (known: {', '.join(sorted(names))})")
    kwargs = {
        name: _coerce(hints[name], value, _join(prefix, name)) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a dataclass's own check (``__post_init__``): say where
        message = str(exc)
        field_name = message.split(":", 1)[0]
        if prefix and field_name in names:  # "family: ..." of section model: "model.family: ..."
            raise ConfigError(f"{prefix}.{message}") from None
        raise ConfigError(f"{prefix}: {message}" if prefix else message) from None


def to_dict(config: Any) -> dict[str, Any]:
    """Turn a config dataclass into plain YAML/JSON-serialisable data (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    return config


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # ``X | None``: the error of X says what is wrong
            return _coerce(options[0], value, key)
        for arg in options:
            try:
                return _coerce(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (Mapping, dict) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")  # a bug in a dataclass, not input


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def nested_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: nested_copy(v) for k, v in data.items()}
    return data


def overlay(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``top`` into ``base`` in place: mappings merge key by key, anything else replaces."""
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            overlay(base[key], value)
        else:
            base[key] = nested_copy(value)
    return base


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: {part} is not a section")
        node = child
    node[last] = value
