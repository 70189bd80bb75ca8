"""The promote driver: evaluate the candidate and the registry's current model on the same val split, apply the
gate, and commit the candidate as the current model (one pointer write) or refuse it.

A refusal is a decision, not an error: the registry's pointer is unchanged and the reasons are in the returned
decision and in ``REGISTRY/decisions/<run_id>/decision.json`` (:mod:`softlines_attr.promote.registry`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.config import PipelineConfig
from softlines_attr.io.commit import StagedOutput
from softlines_attr.io.storage import is_s3
from softlines_attr.io.tables import new_run_id
from softlines_attr.promote.errors import PromoteInputError
from softlines_attr.promote.gate import GateDecision, HeadScore, apply_gate
from softlines_attr.promote.registry import (
    REGISTRY_JOB,
    current_bundle_dir,
    publish_bundle,
    version_name,
    write_decision,
)

if TYPE_CHECKING:  # pragma: no cover
    from softlines_attr.model.bundle import Bundle
    from softlines_attr.model.evaluation import Evaluation
    from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)

SPLIT = "val"


def head_scores(evaluation: Evaluation) -> dict[str, HeadScore]:
    """The gate's view of an :class:`~softlines_attr.model.evaluation.Evaluation`: per attribute, accuracy and
    coverage at the target precision."""
    return {
        h.attribute or h.head: HeadScore(
            attribute=h.attribute or h.head,
            head=h.head,
            accuracy=h.accuracy,
            coverage=h.abstain.coverage,
            target_precision=h.abstain.target_precision,
            records=h.records,
        )
        for h in evaluation.heads
    }


def _candidate_dir(candidate: str, download_dir: Path) -> Path:
    """The candidate's local bundle folder (an ``s3://`` bundle is downloaded).

    Raises:
        PromoteInputError: not one bundle folder.
    """
    from softlines_attr.score.errors import ScoreInputError
    from softlines_attr.score.models import resolve_model_dirs

    try:
        found = resolve_model_dirs([candidate], download_dir)
    except ScoreInputError as exc:
        raise PromoteInputError(f"--candidate: {exc}") from None
    if len(found) != 1:
        raise PromoteInputError(
            f"--candidate {candidate}: expected one model bundle folder, found {len(found)} bundles in it"
        )
    return found[0]


def _local_shards(shards: str, download_dir: Path) -> str:
    """A local folder of the shards' current version: ``shards`` itself, or on S3 its current version downloaded
    (refine and multi shards hold the human-tagged images only: small).

    Raises:
        PromoteInputError: an S3 location without objects.
    """
    if not is_s3(shards):
        return shards
    from softlines_attr.io.commit import resolve_current
    from softlines_attr.io.storage import download_tree

    current = resolve_current(shards)
    if not download_tree(current, download_dir):
        raise PromoteInputError(f"--shards {shards}: expected a shard job's output, found no objects at {current}")
    return str(download_dir)


def _model_facts(bundle: Bundle, source: str, scores: dict[str, HeadScore] | None) -> dict[str, Any]:
    m = bundle.manifest
    return {
        "source": source,
        "params_sha256": m.files.get("model.params"),
        "model_digest": m.model_digest,
        "attributes": sorted(h.attribute for h in m.heads if h.attribute),
        "heads": {a: vars(s) for a, s in sorted((scores or {}).items())},
    }


def _decision_doc(
    gate: GateDecision | None,
    *,
    status: str,
    reasons: list[str],
    run_id: str,
    registry: str,
    shards: str,
    conf: PipelineConfig,
    candidate: dict[str, Any],
    current: dict[str, Any] | None,
    current_run_id: str | None,
) -> dict[str, Any]:
    return {
        "job": REGISTRY_JOB,
        "run_id": run_id,
        "decision": status,
        "promoted": status == "promoted",
        "reasons": reasons,
        "checks": [vars(c) for c in gate.checks] if gate is not None else [],
        "gate": {
            "max_accuracy_drop_points": conf.promote.max_accuracy_drop,
            "min_coverage": conf.promote.min_coverage,
            "target_precision": conf.evaluate.target_precision,
            "target_precision_by_attribute": dict(conf.evaluate.target_precision_by_attribute),
        },
        "registry": registry,
        "shards": shards,
        "split": SPLIT,
        "candidate": candidate,
        "current": current,
        "current_run_id_before": current_run_id,
        "current_run_id_after": run_id if status == "promoted" else current_run_id,
    }


@dataclass(frozen=True)
class Judgement:
    """The outcome of evaluating both models and applying the gate.

    Attributes:
        gate: The gate's decision; None when the current model cannot be evaluated on the shards.
        status: ``promoted`` or ``refused``.
        reasons: Why.
        evaluations: ``candidate`` (and ``current``) -> ``evaluation.json``'s document.
        candidate: The candidate's scores by attribute.
        current: The current model's scores by attribute (None without one, or when it cannot be evaluated).
    """

    gate: GateDecision | None
    status: str
    reasons: list[str]
    evaluations: dict[str, dict]
    candidate: dict[str, HeadScore]
    current: dict[str, HeadScore] | None


def _judge(
    cand: Bundle,
    cur: Bundle | None,
    shard_set: ShardSet,
    conf: PipelineConfig,
    *,
    threads: int,
    current_run_id: str | None,
) -> Judgement:
    """Evaluate the candidate (and the current model) on the val split and apply the gate.

    Raises:
        EvaluateInputError: the candidate cannot be evaluated on the shards.
    """
    from softlines_attr.model.errors import EvaluateInputError
    from softlines_attr.model.evaluate import evaluate_bundle
    from softlines_attr.model.evaluation import evaluation_to_json

    cand_eval = evaluate_bundle(cand, shard_set, conf.evaluate, split=SPLIT, threads=threads)
    evaluations = {"candidate": evaluation_to_json(cand_eval)}
    cand_scores = head_scores(cand_eval)
    if cur is None:
        gate = apply_gate(cand_scores, None, conf.promote)
        return Judgement(gate, "promoted", list(gate.reasons), evaluations, cand_scores, None)
    try:
        cur_eval = evaluate_bundle(cur, shard_set, conf.evaluate, split=SPLIT, threads=threads)
    except EvaluateInputError as exc:  # ClassMismatchError included: the taxonomy changed
        reason = f"the current model (run {current_run_id}) cannot be evaluated on these shards: {exc}"
        return Judgement(None, "refused", [reason], evaluations, cand_scores, None)
    evaluations["current"] = evaluation_to_json(cur_eval)
    cur_scores = head_scores(cur_eval)
    gate = apply_gate(
        cand_scores,
        cur_scores,
        conf.promote,
        current_attributes=[h.attribute for h in cur.manifest.heads if h.attribute],
        candidate_attributes=[h.attribute for h in cand.manifest.heads if h.attribute],
    )
    status = "promoted" if gate.promote else "refused"
    return Judgement(gate, status, list(gate.reasons), evaluations, cand_scores, cur_scores)


def run_promote(
    candidate: str,
    shards: str,
    registry: str,
    conf: PipelineConfig,
    *,
    run_id: str | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Evaluate, gate, and promote or refuse ``candidate``; returns the decision (also written under ``decisions/``).

    Args:
        candidate: The candidate bundle folder (local or s3://).
        shards: Refine or multi shards (a shard job's ``--out``, local or s3://: its current version is downloaded):
            both models are evaluated on their val split.
        registry: The registry folder (local or s3://).
        conf: The loaded conf (``[promote]``, ``[evaluate]``, ``[output]``).
        run_id: This promotion's run id (default: a new one).
        threads: Image decoding threads.

    Returns:
        The decision: ``decision`` (``promoted``, ``refused`` or ``already_current``), ``reasons``, every check,
        both models' val metrics, the run ids current before and after, ``decision_file``.

    Raises:
        PromoteInputError: an unusable candidate or shards; RegistryError: a registry version without one bundle.
        OutputLocationError: a registry folder that is a file, read-only, or another job's output.
        BundleError, BundleIntegrityError: the candidate does not verify.
    """
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.errors import EvaluateInputError
    from softlines_attr.shard.contract import read_shard_set

    run_id = run_id or new_run_id()
    staged = StagedOutput(registry, run_id, job=REGISTRY_JOB, keep_versions=conf.output.keep_versions)
    previous = staged.prepare()  # refuses a file, a read-only folder or another job's output before any work
    work = Path(tempfile.mkdtemp(prefix="promote-"))
    try:
        cand_dir = _candidate_dir(candidate, work / "candidate")
        cand = load_bundle(cand_dir)
        cur_dir = current_bundle_dir(previous, work / "current")
        cur = load_bundle(cur_dir) if cur_dir is not None else None
        shard_set = read_shard_set(_local_shards(shards, work / "shards"))
        common = {"run_id": run_id, "registry": staged.out_dir, "shards": shards, "conf": conf}
        if cur is not None and cur.manifest.model_digest == cand.manifest.model_digest:
            doc = _decision_doc(
                None,
                status="already_current",
                reasons=[f"the candidate is the current model (run {previous.run_id}): nothing to do"],
                candidate=_model_facts(cand, candidate, None),
                current=_model_facts(cur, previous.uri, None),
                current_run_id=previous.run_id,
                **common,
            )
            staged.abort()
            doc["decision_file"] = write_decision(staged.fs, staged.out_dir, run_id, doc, {})
            return doc
        try:
            judged = _judge(cand, cur, shard_set, conf, threads=threads, current_run_id=previous.run_id)
        except EvaluateInputError as exc:
            raise PromoteInputError(f"--candidate {candidate} on --shards {shards}: {exc}") from None
        doc = _decision_doc(
            judged.gate,
            status=judged.status,
            reasons=judged.reasons,
            candidate=_model_facts(cand, candidate, judged.candidate),
            current=_model_facts(cur, previous.uri, judged.current) if cur is not None else None,
            current_run_id=previous.run_id,
            **common,
        )
        if judged.status == "promoted":
            doc["bundle"] = publish_bundle(staged, cand_dir, version_name(candidate))
            staged.commit(doc)  # the commit point: one pointer write
            log.info("promoted %s: %s is the current model of %s", candidate, doc["bundle"], staged.out_dir)
        else:
            staged.abort()
            log.info("refused %s: %s", candidate, "; ".join(judged.reasons))
        doc["decision_file"] = write_decision(staged.fs, staged.out_dir, run_id, doc, judged.evaluations)
        return doc
    except BaseException:
        staged.abort()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
