"""The `edgeagent` command line: the parser and the dispatch to `tui.commands`.

This and the Textual app are the only places that print. Expected errors (a missing model, a
bad setting, a missing or empty corpus, an unusable attachment, a cache or file that cannot be
read or written) become one line on stderr and exit code 2, checked before the model loads where
they can be; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from agent.settings import SettingsError
from evals.choices import CATEGORIES_HELP
from tui import bench, commands
from tui.backend import add_server_flags
from tui.flags import add_agent_flags, add_settings_flags
from tui.serve import add_serve_parser
from tui.training import add_adapter_parser, add_train_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeagent", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("chat", help="the terminal app (the default)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="ID",
        help="continue the latest saved conversation, or the one whose id starts with ID",
    )
    p.add_argument("--plain", action="store_true", help="a plain line chat, without the app")
    add_agent_flags(p)
    add_settings_flags(p)
    add_server_flags(p)
    p.set_defaults(func=commands.cmd_chat)

    p = sub.add_parser("ask", help="answer one question, with tools unless --offline")
    p.add_argument("question", nargs="+")
    p.add_argument("--json", action="store_true", help="print the trajectory as JSON")
    p.add_argument(
        "--attach",
        metavar="PATH_OR_URL",
        help="a document to ask about; long ones are searched in the sandbox (RLM)",
    )
    add_agent_flags(p)
    add_settings_flags(p)
    add_server_flags(p)
    p.set_defaults(func=commands.cmd_ask)

    model = sub.add_parser("model", help="inspect or prepare a model").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("info", help="architecture, size, embedding share, dtype, cache")
    p.add_argument("--json", action="store_true")
    add_settings_flags(p)
    p.set_defaults(func=commands.cmd_model_info)
    p = model.add_parser("prepare", help="convert a model into the cache ahead of first use")
    add_settings_flags(p)
    p.set_defaults(func=commands.cmd_model_prepare)

    p = sub.add_parser(
        "bench",
        help="time to first token and decode speed (prints figures)",
        description="Times our path and references on one prompt, for the model of --model "
        "or, without one, for each embedded model in turn.",
    )
    p.add_argument(
        "--variants",
        default="float32,bfloat16,int8,int4",
        help="our path's variants, DTYPE[+int8|+int4], comma-separated (int8 = float32+int8); "
        "none: no engine table",
    )
    p.add_argument(
        "--reference",
        default="auto",
        help="llama.cpp, transformers or both (auto: both, llama.cpp where installed), or none",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians shown")
    p.add_argument("--tokens", type=int, default=64, help="tokens to decode")
    p.add_argument(
        "--agent-episodes", type=int, default=2, help="episodes for the agent overhead (0: skip)"
    )
    p.add_argument(
        "--ask-rounds",
        type=int,
        default=3,
        help="rounds of `ask --offline` timed "
        "from process start to first token, through a server and in-process (0: skip)",
    )
    p.add_argument("--ask-server", metavar="URL", help="the server to time `ask` through "
                   "(default: one the bench starts on the model)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    add_settings_flags(p)
    p.set_defaults(func=bench.cmd_bench)

    p = sub.add_parser("eval", help="run eval suites, or compare two runs")
    p.add_argument("action", nargs="?", choices=["run", "compare"], default="run")
    p.add_argument("runs", nargs="*", metavar="RUN", help="compare: two run folders")
    p.add_argument("--suite", default="all",
                   help="bfcl,searchqa,longctx,doomloop,latency,incar,pytools or all")  # fmt: skip
    p.add_argument("--limit", type=int, help="at most N cases per suite (a smoke run)")
    p.add_argument("--data", help="the suite's data: a folder or file in its format")
    p.add_argument("--categories", help=CATEGORIES_HELP)
    p.add_argument("--split", choices=["train", "test", "all"], default="test")
    p.add_argument("--out", help="run folder (default: eval-runs/DATE-MODEL)")
    p.add_argument("--resume", action="store_true", help="go on with the run in --out: cases "
                   "it already holds are not run again")  # fmt: skip
    p.add_argument("--batch", dest="eval.batch", type=int, metavar="N",
                   help="BFCL cases decoded at once (default 8; 1: one by one)")  # fmt: skip
    add_settings_flags(p)
    add_server_flags(p, default="none")
    p.set_defaults(func=commands.cmd_eval)

    add_train_parser(sub)
    add_adapter_parser(sub)
    add_serve_parser(sub)

    p = sub.add_parser("index", help="index a folder of .md/.txt/.html for offline search")
    p.add_argument("dir")
    p.add_argument("--out", help="index file (default: in the cache, found again by --corpus)")
    p.add_argument("--base-url", help="serve hits under this URL instead of file://")
    p.set_defaults(func=commands.cmd_index)

    p = sub.add_parser("sandbox", help="run a Python file in the sandbox, print one JSON object")
    p.add_argument("file")
    add_settings_flags(p)
    p.set_defaults(func=commands.cmd_sandbox)

    log = sub.add_parser("log", help="read the trajectory log").add_subparsers(
        dest="log_command", required=True
    )
    p = log.add_parser("show", help="list recent episodes, or show one by id prefix")
    p.add_argument("id", nargs="?")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.add_argument("--path", help="log file (default: $EDGEAGENT_LOG or the cache)")
    p.set_defaults(func=commands.cmd_log)
    p = log.add_parser("stats", help="outcomes, steps, tool use, doom loops")
    p.add_argument("--path")
    p.set_defaults(func=commands.cmd_log)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["chat", *argv]
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return _run(args.func, args)


def _run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return func(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, expected_errors()):
            print(f"edgeagent: error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, OSError):  # a path or disk problem no nearer check words better
            where = f": {e.filename}" if e.filename else ""
            print(f"edgeagent: error: {e.strerror or e}{where}", file=sys.stderr)
            return 2
        raise


def expected_errors() -> tuple[type[Exception], ...]:
    """The errors that are one line for the user. Imported only once a command has failed, so
    a command that succeeds imports no module it did not use (`ask` on a server: no tools)."""
    from agent.attach import AttachError
    from agent.log import LogError
    from model.adapter import AdapterError
    from model.loaded import ModelLoadError
    from tools.index import IndexBuildError
    from tui.store import StoreError

    return (
        ModelLoadError,
        SettingsError,
        LogError,
        AttachError,
        StoreError,
        IndexBuildError,
        AdapterError,
    )


if __name__ == "__main__":
    sys.exit(main())
