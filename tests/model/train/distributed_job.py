"""A training job for `test_distributed.py`: run alone, or by torchrun as N processes.

It trains a LoRA adapter on a tiny model, two DPO steps (through `train_dpo`, so checkpoints
and the final adapter are written as in a real run) then one online GRPO step (through
`train_grpo`, each process collecting the groups of its share of the prompts), and saves each
process's adapter weights, step figures and collected prompts to OUT/rank-R.pt. Not collected
by pytest (no `test_` prefix); the test launches it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from model.tiny import tiny_model
from model.train import distributed
from model.train.data import TrainExample
from model.train.dpo import DpoSettings, PreferencePair, train_dpo
from model.train.grpo import GrpoSettings, Rollout, train_grpo
from model.train.lora import LoraSettings, attach


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
    collected: list[int] = []

    def collect(share: list[int], step: int) -> list[list[Rollout]]:
        collected.extend(share)
        return [groups[g] for g in share]

    grpo = GrpoSettings(learning_rate=1e-2, prompts_per_step=3)
    stats.append(train_grpo(model, [0, 1, 2], collect, out / "rl", grpo))
    lora = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    torch.save(
        {"lora": lora, "stats": stats, "collected": collected},
        out / f"rank-{distributed.rank()}.pt",
    )
    if distributed.active():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
