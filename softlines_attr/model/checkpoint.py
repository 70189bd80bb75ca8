"""Training checkpoints: symbol, params and optimizer state per epoch (mx.nd.save, no pickle), and resume."""

from __future__ import annotations

import logging
from pathlib import Path

import mxnet as mx

from softlines_attr.model.errors import TrainInputError

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoints/model"


def checkpoint_paths(out_dir: Path, epoch: int) -> tuple[Path, Path, Path]:
    """The symbol, params and optimizer-state files of the checkpoint after ``epoch`` (1-based)."""
    prefix = out_dir / CHECKPOINT_PREFIX
    return (
        prefix.with_name(f"{prefix.name}-symbol.json"),
        prefix.with_name(f"{prefix.name}-{epoch:04d}.params"),
        prefix.with_name(f"{prefix.name}-{epoch:04d}.states"),
    )


def latest_checkpoint(out_dir: Path) -> int:
    """The last epoch with a complete checkpoint (params and optimizer states) under ``out_dir``; 0 if none."""
    folder = (out_dir / CHECKPOINT_PREFIX).parent
    epochs = []
    for params in folder.glob(f"{Path(CHECKPOINT_PREFIX).name}-[0-9][0-9][0-9][0-9].params"):
        epoch = int(params.stem.rsplit("-", 1)[1])
        if checkpoint_paths(out_dir, epoch)[2].is_file():
            epochs.append(epoch)
    return max(epochs, default=0)


def save_checkpoint(out_dir: Path, epoch: int, mod: mx.mod.Module) -> None:
    """Write the checkpoint after ``epoch``: symbol JSON, params and optimizer states (all mx.nd.save, no pickle).

    The optimizer states (SGD momentum per parameter) and update counters make a resumed run
    continue exactly where this one stopped. The states file is written last: a checkpoint is
    complete when it exists.
    """
    sym_file, params_file, states_file = checkpoint_paths(out_dir, epoch)
    sym_file.parent.mkdir(parents=True, exist_ok=True)
    sym_file.write_text(mod.symbol.tojson(), encoding="utf-8")
    arg, aux = mod.get_params()
    mx.nd.save(str(params_file), {**{f"arg:{k}": v for k, v in arg.items()}, **{f"aux:{k}": v for k, v in aux.items()}})
    updater = getattr(mod, "_updater", None)
    optimizer = getattr(mod, "_optimizer", None)
    states: dict[str, mx.nd.NDArray] = {}
    if updater is not None and optimizer is not None:
        for index, state in updater.states.items():
            if isinstance(state, mx.nd.NDArray):
                states[f"state:{index}"] = state.as_in_context(mx.cpu())
            elif state is not None:
                raise TrainInputError(
                    f"checkpoint: optimizer state of parameter {index} is a {type(state).__name__}; expected one "
                    f"NDArray (SGD)"
                )
        counts = sorted(_update_counts(mod, optimizer).items())
        states["count:index"] = mx.nd.array([i for i, _ in counts] or [0], dtype="int64")
        states["count:value"] = mx.nd.array([c for _, c in counts] or [0], dtype="int64")
        states["count:num_update"] = mx.nd.array([optimizer.num_update], dtype="int64")
    else:
        log.warning(
            "checkpoint %d: the optimizer updates on the kvstore; its states are not saved (resume restarts momentum)",
            epoch,
        )
    tmp = states_file.with_suffix(".states.tmp")
    mx.nd.save(str(tmp), states or {"count:num_update": mx.nd.array([0], dtype="int64")})
    tmp.replace(states_file)
    log.info("checkpoint after epoch %d: %s", epoch, params_file)


def load_checkpoint(
    out_dir: Path, epoch: int
) -> tuple[dict[str, mx.nd.NDArray], dict[str, mx.nd.NDArray], dict[str, mx.nd.NDArray]]:
    """The arg params, aux params and optimizer states saved after ``epoch``."""
    _, params_file, states_file = checkpoint_paths(out_dir, epoch)
    loaded = mx.nd.load(str(params_file))
    arg = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
    aux = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
    return arg, aux, mx.nd.load(str(states_file))


def _update_counts(mod: mx.mod.Module, optimizer: mx.optimizer.Optimizer) -> dict[int, int]:
    """The optimizer's per-parameter update counts for the module's (first) device (drives num_update)."""
    device_id = mod._context[0].device_id
    return optimizer._all_index_update_counts.setdefault(device_id, {})


def restore_optimizer(mod: mx.mod.Module, states: dict[str, mx.nd.NDArray]) -> None:
    """Put saved optimizer states and update counters back into a bound module's updater."""
    updater = getattr(mod, "_updater", None)
    optimizer = getattr(mod, "_optimizer", None)
    if updater is None or optimizer is None or "count:index" not in states:
        log.warning("resume: no optimizer states to restore; momentum restarts from zero")
        return
    ctx = mod._context[0]
    for key, value in states.items():
        if key.startswith("state:"):
            updater.states[int(key[6:])] = value.as_in_context(ctx)
            updater.states_synced[int(key[6:])] = True
    indices = states["count:index"].asnumpy().tolist()
    values = states["count:value"].asnumpy().tolist()
    counts = _update_counts(mod, optimizer)  # updated in place: the optimizer holds this dict per device
    counts.clear()
    counts.update({int(i): int(v) for i, v in zip(indices, values) if v})
    optimizer.num_update = int(states["count:num_update"].asnumpy()[0])
