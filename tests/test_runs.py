"""Run directories: unique names, resume only with the same results config, one owner, DDP edge cases."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from common.errors import UserInputError
from common.runs import RunLock, claim_run, owns_run, read_owner, register_resolvers
from lightning_modules.inversion import ContiguousShards, check_resume, differing_keys, results_config
from tests.cli import ROOT, run_cli, run_inprocess

HIO = ("solver=hio", "solver.iterations=20", "restarts=1", "logger=csv", "trainer.enable_progress_bar=false")


# -- unique run directories ---------------------------------------------------------------
def test_run_id_is_fixed_within_a_config_and_differs_between_configs():
    register_resolvers()
    first = OmegaConf.create({"dir": "x/${run_id:}", "again": "${dir}", "log": "${dir}/log"})
    assert first.dir == first.again and first.log == f"{first.dir}/log" and len(first.dir) == len("x/") + 6
    ids = {OmegaConf.create({"dir": "${run_id:}"}).dir for _ in range(50)}
    assert len(ids) == 50


def test_classical_run_directories_carry_no_init_name():
    from common.runs import init_suffix

    assert init_suffix("solvers.classical.HybridInputOutput", "mii") == ""
    assert init_suffix("solvers.generative.GenerativeSolver", "mii") == "-mii"


# -- resume only with the same results config ---------------------------------------------
CONFIG = {"solver": {"name": "prilo", "lr": 0.1, "schedule": [{"kind": "init", "steps": 3}]},
          "operator": {"name": "fourier_pr"}, "seed": 0, "restarts": 4,
          "data": {"_target_": "datamodules.EmbeddedMNISTDataModule", "batch_size": 64, "split_seed": 0},
          "init": {"name": "mii", "num_candidates": 5000}, "trainer": {"precision": "32-true", "devices": 1}}


def test_results_config_hashes_files_and_drops_execution_settings(tmp_path):
    prior = tmp_path / "prior.pt"
    prior.write_bytes(b"weights-1")
    a = results_config(CONFIG, {"prior": prior, "init.checkpoint": None})
    moved = tmp_path / "moved.pt"
    moved.write_bytes(b"weights-1")
    other_batch = {**CONFIG, "data": {**CONFIG["data"], "batch_size": 8}, "trainer": {"precision": "32-true",
                                                                                     "devices": 2}}
    assert results_config(other_batch, {"prior": moved}) == a  # same file elsewhere, other batch/devices
    prior.write_bytes(b"weights-2")
    assert differing_keys(a, results_config(CONFIG, {"prior": prior})) == ["prior.sha256"]
    classical = results_config(CONFIG, {})
    assert "prior" not in classical and "init" not in classical


def test_check_resume_refuses_another_configuration_naming_the_keys(tmp_path):
    check_resume(tmp_path, CONFIG)  # first run: recorded
    assert json.loads((tmp_path / "results_config.json").read_text()) == CONFIG
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "00000000_r0.pt").write_bytes(b"x")
    check_resume(tmp_path, json.loads(json.dumps(CONFIG)))  # identical: resume
    changed = {**CONFIG, "seed": 1, "solver": {**CONFIG["solver"], "name": "dpr"}}
    with pytest.raises(UserInputError, match=r"differs in seed, solver\.name;") as err:
        check_resume(tmp_path, changed)
    assert "\n" not in str(err.value)
    schedule = {**CONFIG, "solver": {**CONFIG["solver"], "schedule": [{"kind": "init", "steps": 4}]}}
    with pytest.raises(UserInputError, match="solver.schedule"):
        check_resume(tmp_path, schedule)


def test_results_without_a_recorded_config_are_not_resumed(tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "00000000_r0.pt").write_bytes(b"x")
    with pytest.raises(UserInputError, match="without a results_config.json"):
        check_resume(tmp_path, CONFIG)


# -- one owner per run directory ------------------------------------------------------------
def test_run_lock_refuses_a_second_owner_until_released(tmp_path):
    first = RunLock(tmp_path, "invert.py run").acquire()
    assert read_owner(tmp_path)["pid"] == os.getpid() and owns_run(tmp_path, first.token)
    with pytest.raises(UserInputError, match=rf"in use by another invert.py run \(pid {os.getpid()} on"):
        RunLock(tmp_path, "invert.py run").acquire()
    first.release()
    second = RunLock(tmp_path).acquire()
    assert not owns_run(tmp_path, first.token) and owns_run(tmp_path, second.token)
    second.release()


@pytest.mark.slow
def test_lock_of_a_killed_owner_is_free(tmp_path):
    code = f"from common.runs import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); " \
           "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(UserInputError, match="in use"):
        RunLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    RunLock(tmp_path).acquire().release()


def test_a_process_started_by_the_owner_joins_its_run(tmp_path, monkeypatch):
    lock = RunLock(tmp_path).acquire()
    try:
        assert claim_run(tmp_path) == lock.token  # inherited token: joins instead of being refused
        monkeypatch.delenv("GENPRIOR_RUN_OWNER")
        with pytest.raises(UserInputError, match="in use"):
            claim_run(tmp_path)
    finally:
        lock.release()


# -- DDP sharding ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5])
def test_contiguous_shards_cover_every_index_once(n, monkeypatch):
    import torch.distributed as dist

    shards = []
    for rank in range(3):
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        monkeypatch.setattr(dist, "get_world_size", lambda: 3)
        sampler = ContiguousShards(n)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1])
    assert sum(shards, []) == list(range(n))


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_ddp_resume_with_fewer_images_left_than_processes(tmp_path):
    out = tmp_path / "ddp"
    proc = run_inprocess("invert.py", *HIO, "num_images=2", "batch_size=1", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "parts" / "00000001_r0.pt").unlink()  # an interrupted run: one image left for two processes
    proc = run_cli("invert.py", *HIO, "num_images=2", "trainer.devices=2", "trainer.strategy=ddp_spawn",
                   "trainer.accelerator=cpu", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 of 2 images already solved" in proc.stdout
    assert [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]] == [0, 1]
    other = run_inprocess("invert.py", *HIO, "num_images=2", "seed=1", f"hydra.run.dir={out}")
    lines = other.stderr.strip().splitlines()
    assert other.returncode == 2 and len(lines) == 1, other.stderr[-2000:]
    assert "differs in operator.seed, seed;" in lines[0]


@pytest.mark.slow
def test_killed_run_leaves_no_writing_workers_and_a_second_run_is_refused(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(ROOT / "invert.py"), "solver=hio", "solver.iterations=3000", "restarts=1",
            "num_images=40", "batch_size=1", "logger=csv", "trainer.enable_progress_bar=false",
            "trainer.devices=2", "trainer.strategy=ddp_spawn", "trainer.accelerator=cpu", f"hydra.run.dir={out}"]
    main = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not list((out / "parts").glob("*.pt")) and time.time() < deadline:
            time.sleep(0.5)
        assert list((out / "parts").glob("*.pt")), "no part written"
        second = run_inprocess("invert.py", *args[2:])
        assert second.returncode == 2 and f"in use by another invert.py run (pid {main.pid}" in second.stderr
        workers = _children(main.pid)
        assert workers
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        deadline = time.time() + 10
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "workers outlived the killed run"
    finally:
        if main.poll() is None:
            main.kill()
    parts = sorted(p.name for p in (out / "parts").glob("*.pt"))
    time.sleep(2)
    assert sorted(p.name for p in (out / "parts").glob("*.pt")) == parts  # nobody writes any more
    assert torch.load(out / "parts" / parts[0], weights_only=True)["rows"]
