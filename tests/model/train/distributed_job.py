"""A training job for `test_distributed.py`: run alone, or by torchrun as N processes.

It trains a LoRA adapter on a tiny model, two DPO steps (through `train_dpo`, so checkpoints
and the final adapter are written as in a real run) then one GRPO step, and saves each
process's adapter weights and step figures to OUT/rank-R.pt. Not collected by pytest (no
`test_` prefix); the test launches it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from model.tiny import tiny_model
from model.train import distributed
from model.train.data import TrainExample
from model.train.dpo import DpoSettings, PreferencePair, train_dpo
from model.train.grpo import Rollout, grpo_step
from model.train.lora import LoraSettings, attach, optimizer_for


def example(seed: int, sampled: int) -> TrainExample:
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(20, 200, (10,), generator=g).tolist()
    answer = torch.randint(20, 200, (sampled,), generator=g).tolist()
    return TrainExample(prompt + answer, [0] * 10 + [1] * sampled)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    distributed.init()
    model = tiny_model("qwen2", seed=0).model
    torch.manual_seed(1)  # the LoRA initialization, alike in every process
    model = attach(model, LoraSettings(rank=4, dropout=0.0))
    pairs = [PreferencePair(example(i, 3 + i % 3), example(100 + i, 4)) for i in range(6)]
    dpo = DpoSettings(learning_rate=1e-2, batch_size=3, save_steps=1)
    stats = [train_dpo(model, pairs, out / "run", dpo)]
    groups = [
        [Rollout([example(200 + 3 * g + i, 2 + i)], float(i == g % 3)) for i in range(3)]
        for g in range(3)
    ]
    stats.append(grpo_step(model, optimizer_for(model, 1e-2), groups))
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    torch.save({"lora": lora, "stats": stats}, out / f"rank-{distributed.rank()}.pt")
    if distributed.active():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
