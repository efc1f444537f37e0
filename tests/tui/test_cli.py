"""The command line as a user runs it: a real process, real weights for the slow ones."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tui.cli import main


def edgeagent(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_setting_is_one_line_and_exit_2(capsys) -> None:
    assert main(["ask", "hi", "--set", "sampling.temperature=-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeagent: error: setting 'sampling.temperature'")
    assert "\n" not in err


def test_unknown_model_is_one_line_and_exit_2(capsys) -> None:
    assert main(["model", "info", "--model", "nobody/nothing", "--offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot load 'nobody/nothing'" in err and "qwen2.5-coder-0.5b" in err


@pytest.mark.slow
def test_ask_offline_answers_with_the_embedded_model() -> None:
    out = edgeagent("ask", "--offline", "What is the capital of France?")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_ask_json_and_model_info_for_smollm2() -> None:
    out = edgeagent(
        "ask", "--offline", "--json", "--model", "smollm2", "--max-tokens", "20", "Say hello."
    )
    assert out.returncode == 0, out.stderr
    traj = json.loads(out.stdout)
    assert traj["final_answer"] and traj["mode"] == "offline" and traj["model"] == "smollm2"
    assert traj["steps"][0]["finish_reason"] in ("eos", "length", "doom_loop")
    assert traj["settings"]["sampling"]["max_new_tokens"] == 20
    info = edgeagent("model", "info", "--json", "--model", "smollm2")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["architecture"] == "LlamaForCausalLM" and data["tool_format"] == "fallback"


def test_index_then_sandbox_commands(tmp_path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Quillon\nThe Quillon river is 212 km long.\n")
    (corpus / "b.txt").write_text("Brindlecombe cheese is aged for 47 days.\n")
    out = edgeagent("index", str(corpus), "--out", str(tmp_path / "idx.json"))
    assert out.returncode == 0, out.stderr
    assert "indexed 2 documents" in out.stdout and (tmp_path / "idx.json").is_file()
    missing = edgeagent("index", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr

    good = tmp_path / "ok.py"
    good.write_text("import math\nprint(math.factorial(5))\n")
    ran = edgeagent("sandbox", str(good))
    assert ran.returncode == 0
    assert json.loads(ran.stdout) == {
        "ok": True,
        "stdout": "120\n",
        "error": None,
        "timed_out": False,
    }
    bad = tmp_path / "escape.py"
    bad.write_text("import os\nprint(os.listdir('/'))\n")
    refused = edgeagent("sandbox", str(bad))
    assert refused.returncode == 1
    result = json.loads(refused.stdout)
    assert not result["ok"] and "os" in result["error"] and result["stdout"] == ""
