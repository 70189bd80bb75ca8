"""Starting the ps-lite roles as processes and supervising them; :func:`launch_local` runs them all on this machine.

A scheduler or server is ``python -c "import mxnet"`` with ``DMLC_ROLE`` set
(``mxnet/kvstore/kvstore_server.py`` runs the role on import and exits when the workers finish); a
worker is ``python -m softlines_attr.cli train ... --kv-store dist_sync``. :func:`supervise` watches
the roles: the first one to fail (non-zero exit) ends the launch, kills the others and raises
:class:`DistributedLaunchError` naming the role with the tail of its stderr; a timeout does the same.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from softlines_attr.model.distributed.argv import replace_option
from softlines_attr.model.distributed.kvstore import DIST_KV_STORES
from softlines_attr.model.errors import DistributedLaunchError

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 25


@dataclass
class Role:
    """One started ps-lite process.

    Attributes:
        name: ``scheduler``, ``server <i>`` or ``worker <i>`` (the launch order, not the ps-lite rank).
        proc: The process.
        stdout: File holding its standard output.
        stderr: File holding its standard error.
    """

    name: str
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    @property
    def worker(self) -> bool:
        """True for a worker (the roles whose exit ends the run)."""
        return self.name.startswith("worker")

    def tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """The last ``lines`` lines of its stderr."""
        try:
            text = self.stderr.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no stderr file)"
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class LaunchResult:
    """What a finished launch left: each role's exit code and each worker's standard output.

    Attributes:
        exit_codes: role name -> exit code.
        worker_stdout: worker name -> its whole standard output.
        log_dir: Folder with every role's ``<role>.stdout`` / ``<role>.stderr``.
    """

    exit_codes: dict[str, int]
    worker_stdout: dict[str, str]
    log_dir: Path

    def chief_output(self) -> dict | None:
        """The JSON line printed by the worker that wrote the bundle (``"bundle"`` not null), if any."""
        for text in self.worker_stdout.values():
            for line in reversed(text.strip().splitlines()):
                try:
                    printed = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(printed, dict) and printed.get("bundle"):
                    return printed
        return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the scheduler's ``DMLC_PS_ROOT_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def role_env(
    role: str, root_uri: str, root_port: int, num_workers: int, num_servers: int, node_host: str | None = None
) -> dict[str, str]:
    """The ``DMLC_*`` variables of one ps-lite role.

    Args:
        role: ``scheduler``, ``server`` or ``worker``.
        root_uri: The scheduler's host (IP or name every node can reach).
        root_port: The scheduler's port.
        num_workers: Workers in the job.
        num_servers: Servers in the job.
        node_host: The address this process advertises to the others (``DMLC_NODE_HOST``); None: ps-lite picks.
    """
    env = {
        "DMLC_ROLE": role,
        "DMLC_PS_ROOT_URI": root_uri,
        "DMLC_PS_ROOT_PORT": str(root_port),
        "DMLC_NUM_WORKER": str(num_workers),
        "DMLC_NUM_SERVER": str(num_servers),
    }
    if node_host:
        env["DMLC_NODE_HOST"] = node_host
    return env


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies (no orphaned roles), or None off Linux.

    libc is loaded here, in the parent: the hook itself, run between fork and exec, only calls prctl.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

    return hook


def start_role(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Role:
    """Start one role with ``env`` laid over this process's environment; stdout/stderr to ``log_dir/<name>.*``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = name.replace(" ", "-")
    out, err = log_dir / f"{slug}.stdout", log_dir / f"{slug}.stderr"
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdout=fout,
            stderr=ferr,
            stdin=subprocess.DEVNULL,
            preexec_fn=_pdeathsig_hook(),
        )
    log.info("started %s (pid %d): %s", name, proc.pid, " ".join(argv[:4]) + (" ..." if len(argv) > 4 else ""))
    return Role(name, proc, out, err)


def kill_roles(roles: Sequence[Role], grace_s: float = 5.0) -> None:
    """Terminate every still-running role (SIGTERM, then SIGKILL after ``grace_s``)."""
    running = [r for r in roles if r.proc.poll() is None]
    for r in running:
        with contextlib.suppress(ProcessLookupError):
            r.proc.terminate()
    deadline = time.monotonic() + grace_s
    for r in running:
        try:
            r.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                r.proc.kill()
            r.proc.wait()


def supervise(
    roles: Sequence[Role],
    *,
    timeout_s: float | None = None,
    shutdown_s: float = 60.0,
    poll_s: float = 0.2,
    on_poll: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Wait for the workers to finish, then for the scheduler and servers to exit on their own.

    Args:
        roles: Every started role.
        timeout_s: Wall-clock limit for the whole run (None: none).
        shutdown_s: How long the scheduler and servers get to exit after the last worker (they stop
            when the workers leave); past it they are killed, with a warning (the run succeeded).
        poll_s: Polling interval.
        on_poll: Called at every poll while the workers run (e.g. uploading new checkpoints).

    Returns:
        role name -> exit code.

    Raises:
        DistributedLaunchError: a role exited non-zero (the others are killed; the message names
            the role, its exit code and the tail of its stderr), or the timeout passed.
    """
    started = time.monotonic()
    try:
        while True:
            failed = [r for r in roles if r.proc.poll() not in (None, 0)]
            if failed:
                first = failed[0]
                kill_roles(roles)
                raise DistributedLaunchError(
                    f"{first.name} failed: expected exit code 0, found {first.proc.returncode}; "
                    "the other roles were stopped. "
                    f"Last lines of its stderr ({first.stderr}):\n{first.tail()}"
                )
            if all(r.proc.poll() == 0 for r in roles if r.worker):
                break
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                running = [r for r in roles if r.proc.poll() is None]
                kill_roles(roles)
                tails = "\n".join(f"--- {r.name} ({r.stderr}):\n{r.tail(10)}" for r in running)
                raise DistributedLaunchError(
                    f"distributed training timed out: expected the workers to finish within {timeout_s:.0f} s, "
                    f"found {', '.join(r.name for r in running)} still running (stopped). "
                    f"Last lines of their stderr:\n{tails}"
                )
            if on_poll is not None:
                on_poll()
            time.sleep(poll_s)
    except BaseException:
        kill_roles(roles)
        raise
    deadline = time.monotonic() + shutdown_s
    for r in roles:
        try:
            r.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s still running %.0f s after the workers finished; stopping it", r.name, shutdown_s)
            kill_roles([r])
    return {r.name: int(r.proc.returncode) for r in roles}


def split_gpus(gpus: Sequence[int], num_workers: int) -> list[str] | None:
    """The machine's GPUs dealt to the local workers: worker i gets the i-th consecutive group (``--gpus`` values).

    Returns:
        None for no GPUs (CPU workers).

    Raises:
        DistributedLaunchError: the GPUs cannot be split evenly.
    """
    if not gpus:
        return None
    if len(gpus) % num_workers:
        raise DistributedLaunchError(
            f"expected a number of --gpus divisible by --num-workers {num_workers}, found {len(gpus)} ({list(gpus)})"
        )
    k = len(gpus) // num_workers
    return [",".join(str(g) for g in gpus[i * k : (i + 1) * k]) for i in range(num_workers)]


def server_argv(python: str = sys.executable) -> list[str]:
    """A scheduler or server: importing mxnet with ``DMLC_ROLE`` set runs the role (kvstore_server.py), then exits."""
    return [python, "-c", "import mxnet"]


def worker_argv(train_argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """A worker: the train command (``train_argv`` starts with ``train``) in a fresh interpreter."""
    return [python, "-m", "softlines_attr.cli", *train_argv]


def launch_local(
    num_workers: int,
    num_servers: int,
    train_argv: Sequence[str],
    *,
    timeout_s: float | None = None,
    log_dir: str | Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    worker_gpus: Sequence[str] | None = None,
) -> LaunchResult:
    """Run a ``dist_*`` training on this machine: scheduler, servers and workers as processes on loopback.

    Args:
        num_workers: Workers (each reads its part of the shards).
        num_servers: Parameter servers.
        train_argv: The workers' command line, starting with ``train`` and holding ``--kv-store dist_*``.
        timeout_s: Wall-clock limit (None: none).
        log_dir: Where every role's stdout/stderr go (default: a new temporary folder).
        extra_env: Variables added to every role's environment (e.g. ``OMP_NUM_THREADS``).
        python: The interpreter for the roles.
        worker_gpus: Per worker, its ``--gpus`` value (see :func:`split_gpus`); None: the command line's for all.

    Returns:
        Exit codes, the workers' standard output and the log folder.

    Raises:
        DistributedLaunchError: bad counts, a role failed, or the timeout passed.
    """
    if num_workers < 1 or num_servers < 1:
        raise DistributedLaunchError(
            f"expected at least 1 worker and 1 server, found {num_workers} workers and {num_servers} servers"
        )
    if worker_gpus is not None and len(worker_gpus) != num_workers:
        raise DistributedLaunchError(f"expected a --gpus value per worker ({num_workers}), found {len(worker_gpus)}")
    if not train_argv or train_argv[0] != "train" or not any(a in DIST_KV_STORES for a in train_argv):
        raise DistributedLaunchError(
            "expected a worker command line 'train ... --kv-store dist_sync|dist_device_sync', "
            f"found {list(train_argv)[:6]}"
        )
    logs = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="softlines-dist-"))
    port = free_port("127.0.0.1")
    extra = dict(extra_env or {})
    roles: list[Role] = []
    try:
        roles.append(
            start_role(
                "scheduler",
                server_argv(python),
                {**extra, **role_env("scheduler", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")},
                logs,
            )
        )
        for i in range(num_servers):
            roles.append(
                start_role(
                    f"server {i}",
                    server_argv(python),
                    {**extra, **role_env("server", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")},
                    logs,
                )
            )
        for i in range(num_workers):
            argv = replace_option(train_argv, "--gpus", worker_gpus[i]) if worker_gpus is not None else list(train_argv)
            roles.append(
                start_role(
                    f"worker {i}",
                    worker_argv(argv, python),
                    {**extra, **role_env("worker", "127.0.0.1", port, num_workers, num_servers, "127.0.0.1")},
                    logs,
                )
            )
    except BaseException:
        kill_roles(roles)
        raise
    log.info(
        "local ps-lite job: scheduler 127.0.0.1:%d, %d servers, %d workers; logs in %s",
        port,
        num_servers,
        num_workers,
        logs,
    )
    codes = supervise(roles, timeout_s=timeout_s)
    outputs = {r.name: r.stdout.read_text(encoding="utf-8", errors="replace") for r in roles if r.worker}
    return LaunchResult(codes, outputs, logs)
