"""`edgeagent eval --server URL` against a real server on a tiny model: the same results as the
run in-process, requests sent together when the suite batches, the server named in run.json,
and a server whose weights are not the run's refused in one line before any case runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_harness import Running, servers

from model import batch
from model.generate import Generator
from model.loader import load
from model.tiny import tiny_model
from tui.cli import main

# float weights, as `load` gives the server below (the setting's default is int8 on a CPU)
SUITE = ["eval", "--suite", "bfcl", "--limit", "6", "--set", "sampling.max_new_tokens=12",
         "--quant", "none"]  # fmt: skip


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    yield from servers()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A tiny model saved as a folder: the spec both the server and the eval name."""
    lm = tiny_model("qwen2")
    out = tmp_path / "tiny"
    lm.model.save_pretrained(out)
    lm.tokenizer.save_pretrained(out)
    return out


def outputs(run: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (run / "bfcl.jsonl").read_text().splitlines()]
    return {r["id"]: r["output"] for r in rows}


def test_eval_through_a_server_matches_the_run_in_process(
    folder, serve, tmp_path, monkeypatch
) -> None:
    running = serve(Generator(load(str(folder))), slots=4)
    model = ["--model", str(folder)]
    here, there, together = tmp_path / "here", tmp_path / "there", tmp_path / "together"
    assert main([*SUITE, *model, "--batch", "1", "--out", str(here)]) == 0
    argv = [*SUITE, *model, "--server", running.url]
    assert main([*argv, "--batch", "1", "--out", str(there)]) == 0
    assert outputs(there) == outputs(here) and len(outputs(here)) >= 6
    meta = json.loads((there / "run.json").read_text())
    assert meta["server"] == running.url and meta["model"] == str(folder)
    assert "server" not in json.loads((here / "run.json").read_text())
    sent = []
    at_once = batch._concurrently

    def spied(generator, prompts, sampling, guard, slots):  # type: ignore[no-untyped-def]
        sent.append((len(prompts), slots))
        return at_once(generator, prompts, sampling, guard, slots)

    monkeypatch.setattr(batch, "_concurrently", spied)
    assert main([*argv, "--batch", "4", "--out", str(together)]) == 0  # 4 requests in flight
    assert outputs(together).keys() == outputs(here).keys()
    assert sent == [(len(outputs(here)), 4)]


def test_a_server_with_other_weights_is_refused_first(folder, serve, tmp_path, capsys) -> None:
    running = serve(Generator(load(str(folder))))
    argv = [*SUITE, "--model", str(folder), "--server", running.url, "--out", str(tmp_path / "r")]
    assert main([*argv, "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    assert "the server serves dtype 'float32', this run asks for 'bfloat16'" in err
    assert not (tmp_path / "r").exists()  # nothing ran
    assert main([*SUITE, "--server", running.url, "--out", str(tmp_path / "s")]) == 2
    assert "the server serves model" in capsys.readouterr().err
