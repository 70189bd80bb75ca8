"""One option of a worker's command line (``train ... --out OUT --gpus 0``): its value, or the line with it replaced.

The launchers start every worker as ``python -m softlines_attr.cli train ...``; they read ``--out``
and ``--gpus`` from that command line and give each worker its own (a scratch ``--out`` on a node, a
worker's share of the GPUs).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

# train command options that belong to the launcher, not to the workers it starts
LAUNCH_OPTIONS = ("launch", "num_workers", "num_servers", "launch_timeout", "launch_logs", "master", "spark_profile")


def argv_from_namespace(
    parser: argparse.ArgumentParser, args: argparse.Namespace, drop: Sequence[str] = LAUNCH_OPTIONS
) -> list[str]:
    """Turn parsed options back into a command line for ``parser`` (options left at their default are omitted).

    Values are written back as the parser reads them: flags for ``store_true``/``store_false``,
    tuples and lists joined with commas (the train command's integer lists), everything else with
    ``str``. ``tests/test_model_distributed.py`` checks that parsing the result gives the same
    namespace, so an option added later that does not round-trip fails there.

    Args:
        parser: The (sub)command's parser.
        args: Its parsed arguments.
        drop: Destinations to leave out (the launcher's own options).
    """
    argv: list[str] = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
        if not action.option_strings or action.dest in drop or action.dest == "help" or not hasattr(args, action.dest):
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
            argv.append(flag)
        elif isinstance(value, (tuple, list)):
            argv += [flag, ",".join(str(v) for v in value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


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
