"""The shipped example values of ``conf/emr.toml``: which keys still hold them, and refusing to call AWS with them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from softlines_attr.emr.spec import EmrSpec
from softlines_attr.errors import ConfigError

#: Values that mark a key of the shipped ``conf/emr.toml`` as still to be set by the user.
PLACEHOLDER_MARK = "change-me"
PLACEHOLDER_ACCOUNT = "000000000000"


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if is_dataclass(value):
        for f in fields(value):
            yield from _walk(getattr(value, f.name), f"{prefix}{f.name}.")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}{k}.")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{prefix[:-1]}[{i}].")
    else:
        yield prefix[:-1], value


def placeholders(spec: EmrSpec) -> list[str]:
    """The keys that still hold the shipped placeholder values (``change-me``, account 000000000000)."""
    found = []
    for key, value in _walk(spec, ""):
        if key == "source":
            continue
        if isinstance(value, str) and (PLACEHOLDER_MARK in value or value == PLACEHOLDER_ACCOUNT):
            found.append(key)
    return found


def require_no_placeholders(spec: EmrSpec) -> None:
    """Refuse to call AWS with the shipped example values; ``--dry-run`` does not need this."""
    keys = placeholders(spec)
    if keys:
        raise ConfigError(
            f"{spec.source}: keys {keys[:6]}{' ...' if len(keys) > 6 else ''} still hold the example values "
            f"({PLACEHOLDER_MARK!r} / account {PLACEHOLDER_ACCOUNT}); expected your own account, buckets, subnet and "
            "roles (copy conf/emr.toml and edit it; see docs/EMR.md)"
        )
