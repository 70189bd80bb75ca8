"""``softlines-attr emr stage|launch|add-steps|wait|schedule|iam --conf FILE [--dry-run]``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softlines_attr.emr.release import Release
    from softlines_attr.emr.spec import EmrSpec

log = logging.getLogger(__name__)

HELP = "run the pipeline on Amazon EMR: stage a release, launch GPU clusters, follow steps, schedule runs"

_SUBCOMMANDS: dict[str, str] = {
    "stage": "build the wheel and upload a content-addressed release (wheel, jobs/, conf/, emr/) to S3",
    "launch": "create a (transient) GPU cluster that installs the release and runs the pipeline's steps",
    "add-steps": "add the pipeline's steps to a running cluster (with the release it was bootstrapped with)",
    "wait": "follow a cluster's steps to their end; on a failure print the reason and the stderr tail",
    "schedule": "create or update the Step Functions pipeline and the EventBridge Scheduler schedule",
    "iam": "print (or write) the least-privilege IAM role documents for this spec",
}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conf", type=Path, default=None, metavar="FILE", help="the EMR spec TOML (default: conf/emr.toml)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the exact API requests as JSON and call nothing")
    parser.add_argument(
        "--profile",
        default=None,
        help="an AWS profile of boto3's standard credential chain (default: AWS_PROFILE / the chain)",
    )
    parser.add_argument("--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _release_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release",
        default=None,
        metavar="ID",
        help="a staged release id (default: the id of the source tree, as `emr stage` uploads it)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        metavar="DIR",
        help="the source tree (default: found from the current folder)",
    )


def _step_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--step",
        action="append",
        default=None,
        metavar="NAME",
        help="only this step of the spec (repeatable; default: all)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the EMR sub-subcommands."""
    sub = parser.add_subparsers(dest="emr_command", metavar="ACTION", required=True)
    parsers = {name: sub.add_parser(name, help=text, description=text) for name, text in _SUBCOMMANDS.items()}
    for p in parsers.values():
        _common(p)
    parsers["stage"].add_argument(
        "--source",
        type=Path,
        default=None,
        metavar="DIR",
        help="the source tree (default: found from the current folder)",
    )
    _release_args(parsers["launch"])
    _step_args(parsers["launch"])
    parsers["launch"].add_argument(
        "--keep-alive", action="store_true", help="keep the cluster after the steps (default: the spec's `transient`)"
    )
    parsers["launch"].add_argument(
        "--wait", action="store_true", help="follow the steps after launching (as `emr wait`)"
    )
    parsers["add-steps"].add_argument("--cluster-id", required=True, help="the running cluster (j-...)")
    parsers["add-steps"].add_argument(
        "--release",
        default=None,
        metavar="ID",
        help="the release of the job files (default: the cluster's own release tag)",
    )
    _step_args(parsers["add-steps"])
    parsers["wait"].add_argument("--cluster-id", required=True, help="the cluster to follow (j-...)")
    parsers["wait"].add_argument(
        "--until-terminated",
        action="store_true",
        help="after the steps, also wait for a transient cluster to terminate",
    )
    _release_args(parsers["schedule"])
    parsers["iam"].add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="write one JSON file per role here (default: print them)"
    )


def _release(args: argparse.Namespace, spec: EmrSpec) -> Release:
    from softlines_attr.emr.stage import local_release_id, release_for

    rid = getattr(args, "release", None) or local_release_id(getattr(args, "source", None))
    return release_for(spec, rid)


def run(args: argparse.Namespace) -> int:
    """Run one EMR action; package errors become exit code 2 in ``softlines_attr.cli``."""
    from softlines_attr.emr.aws import make_session
    from softlines_attr.emr.spec import load_emr_spec

    spec = load_emr_spec(args.conf)
    session = None if args.dry_run else make_session(args.profile, spec.region)
    action = args.emr_command
    if action == "stage":
        from softlines_attr.emr.stage import stage

        result = stage(spec, root=args.source, session=session, dry_run=args.dry_run)
        if not args.dry_run:
            print(json.dumps(result.to_json()))
        return 0
    if action == "launch":
        from softlines_attr.emr.run import launch, wait

        transient = False if args.keep_alive else None
        cluster_id = launch(
            spec, _release(args, spec), session=session, dry_run=args.dry_run, transient=transient, step_names=args.step
        )
        if args.wait and cluster_id:
            wait(spec, cluster_id, session=session)
        return 0
    if action == "add-steps":
        from softlines_attr.emr.run import add_steps
        from softlines_attr.emr.stage import release_for

        release = release_for(spec, args.release) if args.release else None
        add_steps(spec, args.cluster_id, session=session, release=release, dry_run=args.dry_run, step_names=args.step)
        return 0
    if action == "wait":
        from softlines_attr.emr.run import wait

        wait(spec, args.cluster_id, session=session, dry_run=args.dry_run, until_terminated=args.until_terminated)
        return 0
    if action == "schedule":
        from softlines_attr.emr.schedule import schedule

        schedule(spec, _release(args, spec), session=session, dry_run=args.dry_run)
        return 0
    if action == "iam":
        from softlines_attr.emr.iam import documents, render

        docs = documents(spec)
        if args.out is None:
            print(json.dumps(docs, indent=2))
            return 0
        args.out.mkdir(parents=True, exist_ok=True)
        for name, doc in docs.items():
            (args.out / name).write_text(render(doc), encoding="utf-8")
            log.info("wrote %s", args.out / name)
        return 0
    raise AssertionError(f"unhandled emr action {action!r}")  # pragma: no cover
