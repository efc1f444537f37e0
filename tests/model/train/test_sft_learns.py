"""SFT learns, not just moves parameters: a tiny random model, trained on prompts of one task,
does that task on prompts it never saw.

The task is a tool choice: a prompt of random letters holds one operator sign somewhere, and the
reply must be the call of that operator's tool, `<tool_call>add</tool_call>` and the end token
(six tokens). Before training the random model's greedy reply is never right; after about three
seconds of SFT (48 steps, LoRA, one thread) held-out prompts, new letters and new positions, are
answered right in a clear majority (32 of 32 here; 30 to 32 with other seeds), and their loss
falls about tenfold. Right replies need the operator: one tool for every prompt would be right on
about a quarter.

The model is built with `LEARNABLE_INIT` (`model.tiny` says why the default init does not
learn). Copying a prompt token into the reply, the first idea, did not learn at either init
within 10 s (at most 1 of 32 held-out copies right).

Not here: the data of real training runs (`evals.train`), the losses' exact values
(`tests/model/train/test_sft.py`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from model.tiny import LEARNABLE_INIT, tiny_model
from model.train.data import TrainExample
from model.train.lora import LoraSettings, attach
from model.train.sft import SftSettings, example_loss, train_sft

pytestmark = pytest.mark.usefixtures("one_thread")

TOOLS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
LETTERS = "abcdefghijklmnopqrstuvwxyz"
FILLER = 6  # letters around the operator


def task(tokenizer: Any, rng: random.Random) -> tuple[list[int], list[int]]:
    """A prompt (start token, letters with an operator among them) and its right reply."""
    sign = rng.choice(sorted(TOOLS))
    letters = [rng.choice(LETTERS) for _ in range(FILLER)]
    letters.insert(rng.randrange(FILLER + 1), sign)
    text = "<|im_start|>user\n" + "".join(letters) + "<|im_end|>\n<|im_start|>assistant\n"
    prompt = tokenizer.encode(text)
    reply = tokenizer.encode(f"<tool_call>{TOOLS[sign]}</tool_call>") + [tokenizer.eos_token_id]
    return prompt, reply


def example(prompt: list[int], reply: list[int]) -> TrainExample:
    return TrainExample(prompt + reply, [0] * len(prompt) + [1] * len(reply))


def greedy(model: Any, prompt: list[int], n: int) -> list[int]:
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt) :]


def measure(model: Any, cases: list[tuple[list[int], list[int]]]) -> tuple[float, float]:
    """Loss per reply token, and the share of exactly right greedy replies."""
    with torch.no_grad():
        loss = sum(float(example_loss(model, example(p, r))) for p, r in cases)
    right = sum(greedy(model, p, len(r)) == r for p, r in cases)
    return loss / sum(len(r) for _, r in cases), right / len(cases)


def test_sft_learns_a_tool_choice_that_holds_on_unseen_prompts(tmp_path: Path) -> None:
    lm = tiny_model("qwen2", seed=0, init_range=LEARNABLE_INIT)
    rng = random.Random(0)
    train = [task(lm.tokenizer, rng) for _ in range(128)]
    held_out = [task(lm.tokenizer, rng) for _ in range(32)]
    assert not {tuple(p) for p, _ in held_out} & {tuple(p) for p, _ in train}
    assert len(held_out[0][1]) == 6  # <tool_call>, three letters, </tool_call>, the end token
    model = attach(lm.model, LoraSettings(rank=16, dropout=0.0))
    loss_before, reward_before = measure(model, held_out)
    settings = SftSettings(learning_rate=1e-2, epochs=3, batch_size=8, seed=0)
    train_sft(model, [example(p, r) for p, r in train], tmp_path, settings)
    loss_after, reward_after = measure(model, held_out)
    assert reward_before == 0.0
    assert reward_after >= 0.75  # a clear majority; ignoring the operator gets about 0.25
    assert loss_after < 0.25 * loss_before
