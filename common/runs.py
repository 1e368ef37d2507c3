"""Run directories: unique default names, one owner at a time, workers that die with their parent.

* ``${run_id:}`` (a Hydra/OmegaConf resolver, registered by :func:`register_resolvers`) is a short
  random suffix of the default run directories, so two runs started in the same second get two
  directories.
* :class:`RunLock` is an exclusive ``flock`` on ``<run dir>/.lock`` held by the process that owns a
  run; the file names the owner (pid, host, token). The kernel drops the lock when the owner dies,
  so a lock is never stale; a second run into the same directory is refused while the first lives.
* :func:`exit_with_parent` makes a worker process (DDP ranks started by the owner) exit as soon as
  its parent is gone, so a killed run leaves no worker that keeps writing.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from common.errors import UserInputError

LOCK_FILE = ".lock"
#: environment variable naming the owning process's lock token; DDP workers inherit it
OWNER_ENV = "GENPRIOR_RUN_OWNER"


def init_suffix(solver_target: str, init_name: str) -> str:
    """``-<init>`` for solvers that take an initialisation (generative ones), ``""`` for classical ones."""
    from hydra.utils import get_class

    from solvers.base import Solver

    cls = get_class(solver_target)  # refused with one line by invert.py when it is no Solver
    return f"-{init_name}" if isinstance(cls, type) and issubclass(cls, Solver) and cls.requires_prior else ""


def register_resolvers() -> None:
    """``${run_id:}``: 6 random hex digits, the same for every use within one composed config;
    ``${init_suffix:<solver _target_>,<init name>}``: see :func:`init_suffix`."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: secrets.token_hex(3), use_cache=True)
    if not OmegaConf.has_resolver("init_suffix"):
        OmegaConf.register_new_resolver("init_suffix", init_suffix)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunLock:
    """Exclusive ownership of a run directory for the lifetime of this process (or until :meth:`release`)."""

    def __init__(self, run_dir: str | os.PathLike, what: str = "run"):
        self.path = Path(run_dir) / LOCK_FILE
        self.what = what
        self.token = secrets.token_hex(8)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = read_owner(self.path.parent)
            who = f"pid {owner.get('pid')} on {owner.get('host')}" if owner else "another process"
            raise UserInputError(
                f"{self.path.parent} is in use by another {self.what} ({who}); wait for it to finish, "
                f"or pass another hydra.run.dir"
            ) from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": self.token}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        self._fd = fd
        os.environ[OWNER_ENV] = self.token
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
            if os.environ.get(OWNER_ENV) == self.token:
                del os.environ[OWNER_ENV]


def read_owner(run_dir: str | os.PathLike) -> dict:
    """The lock record of a run directory (``{}`` when there is none or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def owns_run(run_dir: str | os.PathLike, token: str | None) -> bool:
    """Whether the run directory's lock still names ``token`` (a new owner has not taken over)."""
    return token is not None and read_owner(run_dir).get("token") == token


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """Start a daemon thread that ends this process (``os._exit``) once its parent process has died.

    For processes that a run's owner starts (DDP ranks): when the owner is killed, even with
    ``kill -9``, they are re-parented and notice within ``poll_seconds``."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def leave_process_group() -> None:
    """Wait for every rank, then destroy the default process group (no-op outside DDP).

    A rank that finishes early (e.g. no image left in its shard) would otherwise exit while the
    others still run, leaving gloo's exit-time teardown to race them; it can abort the rank
    ("terminate called without an active exception", SIGABRT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def claim_run(run_dir: str | os.PathLike, what: str = "run") -> str:
    """Make this process the owner of ``run_dir`` (:class:`RunLock`) and return the owner's token;
    in a process that the owner started (a DDP rank re-running the script, which inherits the
    token) join the owner's run instead and exit when the owner dies."""
    inherited = os.environ.get(OWNER_ENV)
    if inherited is not None and owns_run(run_dir, inherited):
        exit_with_parent()
        return inherited
    lock = RunLock(run_dir, what).acquire()
    _held.append(lock)  # held until the process ends
    return lock.token


def release_runs() -> None:
    """Give up every run directory this process claimed (for entry points run in-process, e.g. by tests;
    a script's runs are released when it exits)."""
    while _held:
        _held.pop().release()


_held: list[RunLock] = []
