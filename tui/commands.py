"""The `edgeagent` subcommands: each turns settings into calls to `agent`, `model` or `tools`
and prints what comes back. Steps and tool calls go to stderr as they happen, answers to
stdout, so `edgeagent ask ... > answer.txt` keeps just the answer."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

from agent.events import Done, Event, Notice, StepDone, Token, ToolEnd, ToolStart
from agent.frame import unframed
from agent.settings import Settings
from agent.trajectory import ToolRun, Trajectory
from model.stream import Completion, Generator
from tools.base import Tool
from tui.flags import csv, settings_from


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_model(settings: Settings) -> Any:
    quiet_transformers()
    import torch

    from model.loader import load

    if settings.model.threads:
        torch.set_num_threads(settings.model.threads)
    m = settings.model
    return load(
        m.spec,
        adapter=m.adapter,
        dtype=m.dtype,
        online=not settings.offline,
        progress=lambda msg: say(f"edgeagent: {msg}"),
        quant=m.quant,
        device=m.device,
        relayout=m.relayout,
        lean=m.lean,
    )


def quiet_transformers() -> None:
    """No warnings or progress bars from transformers, without importing it (a lean load never
    does): it reads these at import; where it is imported already, it is told directly."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def make_generator(settings: Settings, args: argparse.Namespace) -> Generator:
    """The generator `--server` asks for (`tui.backend`), else the model loaded here."""
    from tui.backend import generator_for

    return generator_for(settings, args.server, args.server_key, say, load_generator)


def load_generator(settings: Settings) -> Generator:
    """The model loaded in this process and its generator: torch and transformers, which a
    client of a server never imports."""
    from model.generate import Generator as InProcess

    return InProcess(load_model(settings))


def cmd_ask(args: argparse.Namespace) -> int:
    from agent.loop import run_episode

    settings = settings_from(args)
    # Bad paths and unusable files fail here, in a second, not after the model has loaded.
    settings = checked_corpus(settings)
    text = attachment(args.attach, settings) if args.attach else None
    log = trajectory_log(settings)
    generator = make_generator(settings, args)
    question = " ".join(args.question)
    if text is not None:
        from agent.attach import run_with_attachment

        events = run_with_attachment(generator, question, text, settings, log=log)
        traj, last_streamed = show_events(events, quiet=args.json)
    else:
        with episode_tools(settings, question) as tools:
            events = run_episode(
                generator,
                question,
                tools,
                settings,
                log=log,
                mode="offline" if settings.offline else "online",
            )
            traj, last_streamed = show_events(events, quiet=args.json)
    if log is not None and log.failure:
        say(f"edgeagent: warning: {log.failure}; this answer is not (wholly) in the log")
    if args.json:
        print(traj.model_dump_json(indent=2))
    elif (traj.final_answer or "").strip() != last_streamed.strip():
        print(traj.final_answer or "")
    return 0 if traj.outcome == "answer" else 1


def attachment(where: str, settings: Settings) -> str:
    from agent.attach import load_attachment

    return load_attachment(where, settings)


def episode_tools(settings: Settings, question: str) -> ContextManager[dict[str, Tool]]:
    """The tools of one episode (`agent.toolbox`). Offline there are none, and then their
    modules (the fetch tool's HTML extraction, the sandbox, search) are not even imported."""
    if settings.offline:
        return contextlib.nullcontext({})
    from agent.toolbox import toolbox

    return toolbox(settings, question=question)


def checked_corpus(settings: Settings) -> Settings:
    """With --corpus (and tools on), the folder's index, built now if missing or stale: a
    missing or empty folder, or a cache the index cannot be written to, is an IndexBuildError."""
    if settings.offline or settings.search.corpus_dir is None:
        return settings
    from agent.toolbox import ensure_index

    return ensure_index(settings)


def trajectory_log(settings: Settings) -> Any:
    """The trajectory log, tolerant of write errors; None (with a warning) if it cannot be
    opened for writing, since a log that cannot be written must not cost the answer."""
    from agent.log import TrajectoryLog, default_log_path

    if not settings.agent.log:
        return None
    log = TrajectoryLog(default_log_path(), tolerate_errors=True)
    if problem := log.check():
        say(f"edgeagent: warning: {problem}; answering without logging")
        return None
    return log


def show_events(events: Iterable[Event], quiet: bool) -> tuple[Trajectory, str]:
    """Stream each step's text to stdout and tool calls to stderr as they happen.

    Returns the finished trajectory and the text of the last step streamed, so the caller
    prints the final answer only where it differs from what the user already saw."""
    traj, text, last, open_line = None, "", "", False
    for event in events:
        if isinstance(event, Done):
            traj = event.trajectory
        if quiet:
            continue
        if isinstance(event, Token):
            print(event.text, end="", flush=True)
            text, open_line = text + event.text, True
            continue
        if open_line:
            print(flush=True)
            open_line = False
        if isinstance(event, StepDone):
            last, text = text, ""
        elif isinstance(event, ToolStart):
            say(f"→ {event.call.name}({json.dumps(event.call.arguments, ensure_ascii=False)})")
        elif isinstance(event, ToolEnd):
            say(f"← {_summary(event.run)} ({event.run.duration_s:.1f} s)")
        elif isinstance(event, Notice):
            say(f"! {event.text}")
    assert traj is not None, "an episode always ends with its Done event"
    return traj, last


def _summary(run: ToolRun) -> str:
    if run.error:
        return f"error: {run.error[:150]}"
    lines = [ln for ln in unframed(run.text).splitlines() if ln.strip()]
    return (lines[0][:150] if lines else "(empty)") + (f" … {len(lines)} lines" if lines else "")


def cmd_chat(args: argparse.Namespace) -> int:
    from tui import store

    # A corpus or conversation that does not exist is an error now, before the model loads.
    settings = checked_corpus(settings_from(args))
    chat = store.load(args.resume or None) if args.resume is not None else None
    if args.plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return plain_chat(settings, chat, args)
    from tui.app import ChatApp, load_generator
    from tui.backend import generator_for

    def loader(settings: Settings, progress: Any) -> Any:
        here = lambda s: load_generator(s, progress)  # noqa: E731
        return generator_for(settings, args.server, args.server_key, progress, here)

    ChatApp(settings, chat=chat, loader=loader).run()
    return 0


def plain_chat(settings: Settings, chat: Any = None, args: Any = None) -> int:
    """A line chat with no tools, for pipes and terminals the app cannot drive. A resumed
    conversation (`chat`, a tui.store.Chat) is read back and its new turns saved to it."""
    from agent.conversation import Conversation

    settings = settings.model_copy(update={"offline": True})
    earlier = chat.exchanges() if chat is not None else []
    generator = make_generator(settings, args) if args else load_generator(settings)
    conversation = Conversation(generator, settings, earlier)
    if chat is not None:
        say(f"edgeagent: resuming conversation {chat.id} ({len(chat.turns)} turns) as a plain "
            "chat, offline with no tools; Ctrl-D to leave.")  # fmt: skip
    else:
        say("edgeagent: chatting offline with no tools; Ctrl-D to leave.")
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        answer = ""
        for event in conversation.turn(line):
            if isinstance(event, Completion):
                answer = event.text.strip()
            else:
                print(event.text, end="", flush=True)
        print()
        if chat is not None:
            chat = save_turn(chat, line, answer)


def save_turn(chat: Any, question: str, answer: str) -> Any:
    """Add a plain-chat turn to a resumed conversation and save it; the chat to save into next
    time, or None after a failure (said once: the conversation goes on unsaved)."""
    from tui import store

    chat.turns.append(store.Turn(question=question, answer=answer, outcome="answer"))
    try:
        store.save(chat)
    except OSError as e:
        say(f"edgeagent: warning: cannot save the conversation: {e.strerror or e}; "
            "going on without saving")  # fmt: skip
        return None
    return chat


def cmd_model_info(args: argparse.Namespace) -> int:
    from model.loader import describe

    info = describe(load_model(settings_from(args)))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    info["parameters"] = f"{info['parameters'] / 1e6:.1f} M"
    info["embedding_parameters"] = f"{info['embedding_parameters'] / 1e6:.1f} M"
    info["embedding_share"] = f"{info['embedding_share']:.0%}"
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def cmd_model_prepare(args: argparse.Namespace) -> int:
    lm = load_model(settings_from(args))
    print(f"{lm.spec}: ready in {lm.source}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from agent.toolbox import index_path_for
    from tools.index import build_index

    corpus = Path(args.dir)
    if not corpus.is_dir():
        say(f"edgeagent: error: {corpus} is not a folder of documents")
        return 2
    # A missing or empty folder or an unwritable index file is an IndexBuildError (one line).
    out = Path(args.out) if args.out else index_path_for(corpus)
    stats = build_index(corpus, out, base_url=args.base_url)
    print(f"indexed {stats.documents} documents ({stats.terms} terms) into {stats.index_path}")
    for skipped in stats.skipped:
        say(f"skipped {skipped}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from tools.sandbox import run_file

    settings = settings_from(args)
    if not Path(args.file).is_file():  # a bad path is the user's error, not the code's
        say(f"edgeagent: error: {args.file} is not a file")
        return 2
    outcome = run_file(args.file, settings.sandbox)
    print(json.dumps(outcome.model_dump(include={"ok", "stdout", "error", "timed_out"})))
    return 0 if outcome.ok else 1


def cmd_log(args: argparse.Namespace) -> int:
    from agent import log
    from agent.stats import stats
    from tui import logview

    path = Path(args.path) if args.path else log.default_log_path()
    contents = log.read_log(path)
    if skipped := logview.format_skipped(contents, path):
        say(f"edgeagent: {skipped}")  # on stderr: what is shown is still every usable episode
    if args.log_command == "stats":
        print(logview.format_stats(stats(contents.trajectories)))
        return 0
    if args.id:
        traj = log.find_in(contents.trajectories, args.id)
        if traj is None:
            say(f"edgeagent: error: no episode {args.id} in {path}")
            return 2
        print(traj.model_dump_json(indent=2) if args.json else logview.format_episode(traj))
        return 0
    print(logview.format_list(contents.trajectories, limit=args.limit))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from evals import runner

    if args.action == "compare":
        if len(args.runs) != 2:
            say("edgeagent: error: eval compare takes two run folders: RUN_A RUN_B")
            return 2
        from evals.compare import compare

        try:
            table = compare(Path(args.runs[0]), Path(args.runs[1]))
        except FileNotFoundError as e:
            say(f"edgeagent: error: {e}")
            return 2
        print(table)
        return 0
    settings = settings_from(args)
    names = list(runner.SUITES) if args.suite == "all" else csv(args.suite)
    if args.resume and not args.out:
        say("edgeagent: error: --resume goes on with the run in --out DIR; give --out")
        return 2
    meta = runner.run_meta(settings, args.split, args.limit, args.data)
    if args.categories:
        meta["categories"] = args.categories
    stamp = meta["date"][:19].replace(":", "").replace("-", "")
    out = Path(args.out) if args.out else Path("eval-runs") / f"{stamp}-{settings.model.spec}"
    try:  # a wrong suite name, data path or run to resume fails here, before the model loads
        cases = {
            n: runner.load_suite_cases(n, args.split, args.limit, args.data, args.categories)
            for n in names
        }
        if args.resume:
            runner.check_resumable(out, meta)
    except (FileNotFoundError, ValueError) as e:
        say(f"edgeagent: error: {e}")
        return 2
    generator = make_generator(settings, args)
    if (served := getattr(generator, "info", None)) is not None:  # a RemoteGenerator
        if problem := runner.served_mismatch(meta, served):
            say(f"edgeagent: error: {problem}")
            return 2
        meta["server"] = generator.url
    run = runner.run_all(generator, settings, cases, out, meta, bar, args.resume)
    print(runner.markdown(meta, run["summary"]))
    say(f"edgeagent: results in {out}")
    return 0


def bar(name: str, cases: list[Any]) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=len(cases), desc=name, file=sys.stderr, unit="case")
    right = [0]

    def progress(suite: str, done: int, total: int, result: Any) -> None:
        right[0] += result.correct
        bar.set_postfix(correct=f"{right[0]}/{done}")
        bar.update(1)
        if done == total:
            bar.close()

    return progress
