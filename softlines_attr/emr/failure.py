"""A failed step's report: EMR's reason, the tail of its stderr from the log URI, and ending a transient cluster."""

from __future__ import annotations

import gzip
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.aws import ApiCall, client_for, is_not_found, send
from softlines_attr.emr.errors import EmrStepFailedError
from softlines_attr.emr.spec import EmrSpec, parse_s3_uri

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)

ENDED_CLUSTER_STATES = ("TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS")


def fetch_log_tail(
    session: boto3.Session, uris: Sequence[str], lines: int, max_bytes: int
) -> tuple[str | None, list[str]]:
    """The last ``lines`` lines of the first of ``uris`` that exists (``.gz`` is decompressed while streamed)."""
    from botocore.exceptions import ClientError

    s3 = client_for(session, "s3")
    for uri in uris:
        bucket, key = parse_s3_uri(uri)
        try:
            if key.endswith(".gz"):
                body = s3.get_object(Bucket=bucket, Key=key)["Body"]
                with gzip.GzipFile(fileobj=body) as fh:
                    tail = deque((line.decode("utf-8", "replace").rstrip("\n") for line in fh), maxlen=lines)
            else:
                body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{max_bytes}")["Body"]
                tail = deque(body.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except ClientError as exc:
            if is_not_found(exc) or "InvalidRange" in str(exc):
                continue
            log.warning("cannot read %s: %s", uri, exc)
            continue
        except (OSError, EOFError) as exc:
            log.warning("cannot decompress %s: %s", uri, exc)
            continue
        return uri, list(tail)
    return None, []


def step_log_uris(spec: EmrSpec, cluster: dict[str, Any], step: dict[str, Any]) -> list[str]:
    """Where a step's stderr may be: EMR's FailureDetails.LogFile, then LogUri/<cluster>/steps/<step>/stderr(.gz)."""
    base = (cluster.get("LogUri") or spec.log_uri).replace("s3n://", "s3://", 1)
    base = base if base.endswith("/") else base + "/"
    folder = f"{base}{cluster['Id']}/steps/{step['Id']}/"
    uris = []
    log_file = step.get("Status", {}).get("FailureDetails", {}).get("LogFile")
    if log_file:
        log_file = log_file.replace("s3n://", "s3://", 1)
        uris.append(log_file if not log_file.endswith("/") else log_file + "stderr.gz")
    uris += [folder + "stderr.gz", folder + "stderr"]
    return list(dict.fromkeys(uris))


def step_failure(
    session: boto3.Session, spec: EmrSpec, cluster_id: str, step: dict[str, Any], label: str
) -> EmrStepFailedError:
    """Report a failed step (reason, stderr tail), terminate a transient cluster, and build the error."""
    emr = client_for(session, "emr")
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    status = step.get("Status", {})
    details = status.get("FailureDetails", {})
    reason = (
        " ".join(x for x in (details.get("Reason"), details.get("Message")) if x)
        or (status.get("StateChangeReason") or {}).get("Message")
        or ""
    )
    if status.get("State") == "CANCELLED" and not reason:
        reason = "cancelled: " + (
            (cluster.get("Status", {}).get("StateChangeReason") or {}).get("Message")
            or "an earlier step failed or the cluster ended"
        )
    uri, tail = fetch_log_tail(
        session, step_log_uris(spec, cluster, step), spec.wait.stderr_tail_lines, spec.wait.max_log_bytes
    )
    cluster_state = cluster["Status"]["State"]
    action = "the cluster is left running (not transient)"
    if cluster.get("AutoTerminate") and cluster_state not in ENDED_CLUSTER_STATES:
        log.warning("terminating transient cluster %s after step %s %s", cluster_id, label, status.get("State"))
        send(session, ApiCall("emr", "TerminateJobFlows", {"JobFlowIds": [cluster_id]}), f"terminating {cluster_id}")
        action = "the transient cluster was terminated"
    elif cluster_state in ENDED_CLUSTER_STATES:
        action = f"the cluster is {cluster_state}"
    if uri:
        log_text = f"--- last {len(tail)} lines of {uri} ---\n" + "\n".join(tail)
    else:
        folder = step_log_uris(spec, cluster, step)[-1].rsplit("/", 1)[0]
        log_text = f"(no stderr in S3 yet: EMR uploads step logs every few minutes; look under {folder}/)"
    return EmrStepFailedError(
        f"step {label} ({step['Id']}) on cluster {cluster_id} ended {status.get('State')}: "
        f"{reason or 'no reason given'}; "
        f"{action}\n{log_text}"
    )
