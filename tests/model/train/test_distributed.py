"""Data-parallel training over two real processes (torchrun, gloo on CPU): each process trains
on its share of every batch, and the result is the update one process makes on the whole."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.train import distributed

pytest.importorskip("peft")

JOB = Path(__file__).with_name("distributed_job.py")
ROOT = Path(__file__).parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job(out: Path, processes: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if processes == 1:
        command = [sys.executable, str(JOB), str(out)]
    else:
        launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
        command = [sys.executable, *launcher, f"--master_port={_free_port()}", str(JOB), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_take_the_steps_one_process_takes(tmp_path: Path) -> None:
    _job(tmp_path / "one", 1)
    _job(tmp_path / "two", 2)
    alone = torch.load(tmp_path / "one" / "rank-0.pt")
    ranks = [torch.load(tmp_path / "two" / f"rank-{r}.pt") for r in (0, 1)]
    fresh_b = [n for n in alone["lora"] if "lora_B" in n]
    assert fresh_b and all(alone["lora"][n].abs().sum() > 0 for n in fresh_b)  # it trained
    for name, weight in alone["lora"].items():
        assert torch.equal(ranks[0]["lora"][name], ranks[1]["lora"][name]), name  # in step
        # = one process, up to float summation order (Adam's steps here are about 1e-2)
        assert torch.allclose(ranks[0]["lora"][name], weight, atol=1e-4), name
    for got, want in zip(ranks[0]["stats"], alone["stats"], strict=True):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-5)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-4)  # summed, not mean
    run = tmp_path / "two" / "run"
    assert (run / "checkpoint-2" / "optimizer.pt").is_file() and (run / "adapter").is_dir()
    # Online GRPO: each process sampled its own share of the prompts, and all trained on all.
    shares = [r["collected"] for r in ranks]
    assert all(shares) and sorted(shares[0] + shares[1]) == sorted(alone["collected"]) == [0, 1, 2]
    assert (tmp_path / "two" / "rl" / "adapter").is_dir()


def test_one_process_shards_nothing() -> None:
    assert not distributed.active() and distributed.world() == 1 and distributed.is_main()
    assert distributed.shard([1, 2, 3]) == [1, 2, 3] and distributed.gather([4]) == [4]
    assert distributed.total(2.5) == 2.5
