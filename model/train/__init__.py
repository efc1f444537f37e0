"""The trainer: everything that changes a model's weights. This docstring is its map.

Here, in `model/train/` (which, like all of `model/`, never imports `agent/` or `evals/`: the
examples, pairs and groups come in as data, and online RL's rollouts through a callable):
- `data.py`: training examples from recorded steps (token ids, and a mask that is 1 on the
  tokens the model sampled), seeded batches, padding into tensors.
- `lora.py`: attaching a LoRA adapter, saving it, checkpoints (`OUT/checkpoint-N/`) and resume.
- `logprobs.py`: the sampled tokens' log-probs under the policy and the reference (adapter off).
- `sft.py`, `dpo.py`, `grpo.py`: each method's loss, its optimizer step, and its `train_*`.
- `loop.py`: `fit`, the one loop all three run on: one optimizer step per seeded batch,
  checkpoints every N steps, resume, the final adapter in `OUT/adapter/`.
- `distributed.py`: several processes (torchrun, accelerate): each a share of every batch,
  gradients summed before the step.
Not here: merging an adapter into the weights for inference (`model.adapter`, the loader's).

Elsewhere:
- The orchestration, `evals/train.py` (`run_training`): in `evals/` because it runs the agent
  loop and the scorers.
- Its data sources, also in `evals/`: `rollouts.py` (fresh episodes of train-split cases through
  the agent loop, scored and logged), `rewards.py` (the scores, their shaping, and `verifiable`
  for the user's own episodes), `references.py` (the data sets' reference answers as examples),
  `selection.py` (which logged episodes are usable, what SFT keeps, which pairs DPO takes).
  The episodes themselves are the trajectory log's (`agent/log.py`).
- The report, `evals/train_report.py`; the command line and progress bars, `tui/training.py`;
  how the shipped adapter was trained, `evals/TRAINING.md`.

The flow of `edgeagent train sft|dpo|rl --out OUT`:
1. `tui.training` reads the flags and loads the train- and test-split cases (bad input fails
   here, before the model loads), loads the model unquantized and without an adapter
   (`evals.train.load_settings`), and gives it a fresh trainable adapter or the `--adapter`
   one (`make_trainable`).
2. `evals.train.run_training` evaluates the test split into `OUT/eval-before/`.
3. SFT and DPO: the episodes are the log's (`--from-log`), those a stopped run listed in
   `OUT/rollouts.jsonl` (`--resume`), or fresh rollouts; `evals.selection` turns them into
   examples (SFT, plus any `--references`) or pairs (DPO) for `train_sft` or `train_dpo`.
   RL: `train_grpo`, whose every step first samples its cases' groups with the adapter as it is
   then, through the collector `evals.train.train_rl` passes in.
4. All three go through `fit`: figures per step to `OUT/history.jsonl`, checkpoints, the
   adapter to `OUT/adapter/`.
5. The test split again with the adapter into `OUT/eval-after/`, then `OUT/curve.png` and
   `OUT/report.md`.
"""
