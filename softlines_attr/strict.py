"""The conf's strict parser: TOML tables (or JSON objects) into typed dataclasses.

:func:`parse_dataclass` refuses unknown keys, missing keys and values of the wrong type, naming the
file, the dotted key and what was expected; every spec of the project (pipeline conf, training
settings, EMR specs, manifests) is read through it. :func:`read_toml`, :func:`deep_merge` and
:func:`check_keys_known` are the file-level helpers of the layered conf (a user's file laid over
the defaults key by key); :func:`config_to_dict` is the way back to JSON.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from softlines_attr.errors import ConfigError

T = TypeVar("T")


_PLURALS: dict[Any, str] = {int: "integers", float: "numbers", str: "strings", bool: "booleans (true or false)"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        raw = typing.get_args(tp)
        args = [a for a in raw if a is not Ellipsis]
        if origin is tuple and raw and raw[-1] is not Ellipsis:  # a fixed length: "a list of 3 numbers"
            kinds = set(args)
            return (
                f"a list of {len(args)} {_PLURALS.get(args[0], 'values')}"
                if len(kinds) == 1
                else f"a list of {len(args)} values"
            )
        return f"a list of {_PLURALS.get(args[0], 'values')}" if args else "a list"
    if origin is dict:
        return f"a table of {_type_name(typing.get_args(tp)[1])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a table"
    if tp is type(None):
        return "nothing"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, *, source: str, key: str) -> Any:
    def fail() -> ConfigError:
        return ConfigError(f"{source}: key {key!r}: expected {_type_name(tp)}, found {value!r}")

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise fail()
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, source=source, key=key)
            except ConfigError:
                continue
        raise fail()
    if tp is type(None):
        if value is not None:
            raise fail()
        return None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail()
        return parse_dataclass(tp, value, source=source, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise fail()
            items = [_convert(v, a, source=source, key=f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail()
        val_tp = typing.get_args(tp)[1]
        return {str(k): _convert(v, val_tp, source=source, key=f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail()
        return value
    raise ConfigError(f"{source}: key {key!r}: no parser for type {tp!r}")  # pragma: no cover


def parse_dataclass(cls: type[T], data: Mapping[str, Any], *, source: str, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys, missing keys and wrong types.

    Args:
        cls: A dataclass type whose fields carry type hints.
        data: The parsed TOML (or JSON) table.
        source: The file name used in error messages.
        prefix: The dotted key prefix of ``data`` inside the file, for error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ConfigError: naming the file, the key and what was expected.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {(prefix + unknown[0])!r}; expected one of {sorted(prefix + k for k in fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], source=source, key=f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing key {prefix + name!r}; expected {_type_name(hints[name])}")
    return cls(**kwargs)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing file or a syntax error into ``ConfigError``."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; expected a TOML file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# tables whose keys are the user's own (Spark settings, per-attribute overrides), not checked against the defaults
_FREE_TABLES = frozenset({"conf", "target_precision_by_attribute"})


def check_keys_known(user: Mapping[str, Any], default: Mapping[str, Any], *, source: str, prefix: str = "") -> None:
    """An override file may only name keys the defaults define (so typos are caught with their file)."""
    for key, value in user.items():
        if key not in default:
            raise ConfigError(
                f"{source}: unknown key {prefix + key!r}; expected one of {sorted(prefix + k for k in default)}"
            )
        if isinstance(value, Mapping) and isinstance(default[key], Mapping) and key not in _FREE_TABLES:
            check_keys_known(value, default[key], source=source, prefix=f"{prefix}{key}.")


def config_to_dict(conf: Any) -> Any:
    """A JSON-ready view of a config dataclass (for run summaries and model manifests)."""
    if dataclasses.is_dataclass(conf):
        return {f.name: config_to_dict(getattr(conf, f.name)) for f in dataclasses.fields(conf)}
    if isinstance(conf, (list, tuple)):
        return [config_to_dict(v) for v in conf]
    if isinstance(conf, dict):
        return {k: config_to_dict(v) for k, v in conf.items()}
    return conf
