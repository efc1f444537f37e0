"""What the eval and train commands let a user pick, as plain text: importable by a CLI
without the suites, pydantic models or torch behind them (the `ask` client's start counts).

Not here: checking a pick (each suite's `expand`, `tui.training.reference_spec`).
"""

from __future__ import annotations

# What `--categories` can pick, per suite (one text for every CLI that takes it).
CATEGORIES_HELP = (
    "bfcl: categories or groups (live, non-live); doomloop: families or arms (off, on); "
    "searchqa: variants (tools, tools-free-choice, notools) or kinds (single, two-hop); "
    "longctx: arms (direct, scaffold, model, rlm), sizes (10k, 100k, 1M) or kinds; "
    "comma-separated"
)

# The kinds of reference answer `evals.references.BUILDERS` writes, named here too so a CLI's
# help lists them without importing the builders (and torch); a test keeps the two equal.
REFERENCE_KINDS = ("bfcl", "masked", "abstain", "doomloop", "pytools", "searchqa", "split", "read")

# The suites `evals.rollouts.episode` rolls out, i.e. what `edgeagent train --suite` takes.
ROLLOUT_SUITES = ("bfcl", "searchqa", "incar", "pytools", "doomloop")

# `edgeagent adapter calibrate`'s default target: the shipped adapter's decline rate on BFCL's
# dev no-fit cases (168 of 192), the line its test figures were measured at (`evals.calibrate`).
CALIBRATION_TARGET = 0.875
