"""One option of a worker's command line (``train ... --out OUT --gpus 0``): its value, or the line with it replaced.

The launchers start every worker as ``python -m softlines_attr.cli train ...``; they read ``--out``
and ``--gpus`` from that command line and give each worker its own (a scratch ``--out`` on a node, a
worker's share of the GPUs).
"""

from __future__ import annotations

from collections.abc import Sequence


def replace_option(argv: Sequence[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option``'s value set to ``value`` (appended when absent; ``--opt=v`` form handled)."""
    out: list[str] = []
    found = False
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == option and i + 1 < len(argv):
            out += [option, value]
            found, skip = True, True
        elif arg.startswith(option + "="):
            out.append(f"{option}={value}")
            found = True
        else:
            out.append(arg)
    return out if found else [*out, option, value]


def option_value(argv: Sequence[str], option: str) -> str | None:
    """The value of ``option`` in ``argv`` (last one wins), or None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value
