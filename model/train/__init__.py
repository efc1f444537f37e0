"""The trainer's parts: LoRA adapters and checkpoints, examples from trajectories, the losses
(SFT, DPO, GRPO), their shared loop and data-parallel steps. The orchestration of
`edgeagent train` is `evals.train`."""
