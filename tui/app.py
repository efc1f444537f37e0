"""The terminal app (Textual): chat with the agent, watch its steps, stop it, pick up later.

`edgeagent` (or `edgeagent chat`) opens it. The model loads in a worker thread while the window
is already up; each question runs one agent episode in another worker, whose events are handed
to the UI thread as they come, so the UI never waits on the model. Esc sets the episode's
cancel event: generation stops at the next token, the partial answer stays on screen and the
log records the episode as cancelled. Conversations are saved after every turn (`tui.store`).
Expected failures (a model that cannot load, an attachment that cannot be read, a tool that
fails) show as one-line notices; the app never shows a traceback.

Not here: the widgets (`tui.widgets`), the agent itself (`agent.loop`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Markdown, Static

from agent.attach import AttachError, load_attachment, run_with_attachment
from agent.events import Done, Event, Notice, StepDone, Token, ToolEnd, ToolStart
from agent.log import TrajectoryLog, default_log_path
from agent.loop import run_episode
from agent.settings import TOOL_NAMES, Settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from model import adapter as adapters
from model.generate import Generator
from model.loader import ModelLoadError
from tui import store
from tui.widgets import AssistantTurn, PromptBox, StatusBar

COMMANDS = {
    "/offline": "in-car mode on or off: no tools, no network, the shortest prompt",
    "/tools": "show the tools, or choose them: /tools search,fetch,python",
    "/attach": "attach a file or URL to your next question: /attach PATH|URL",
    "/model": "show the model, or load another: /model smollm2",
    "/clear": "start a new conversation",
    "/save": "save this conversation as Markdown: /save [PATH]",
    "/help": "this list",
}
KEYS = "Enter sends · Ctrl+J new line · Up/Down history · Tab completes · Esc stops"
HELP = "\n".join(f"- `{c}`: {text}" for c, text in COMMANDS.items()) + f"\n\n{KEYS}"

Loader = Callable[[Settings, Callable[[str], None]], Generator]


def load_generator(settings: Settings, progress: Callable[[str], None]) -> Generator:
    from model.loader import load

    m = settings.model
    lm = load(m.spec, adapter=m.adapter, dtype=m.dtype, online=not settings.offline,
              progress=progress, quant=m.quant, device=m.device, relayout=m.relayout,
              lean=m.lean)  # fmt: skip
    return Generator(lm)


class ChatApp(App[None]):
    TITLE = "edgeagent"
    CSS = """
    #chat { height: 1fr; padding: 0 1; }
    .user { margin: 1 0 0 0; padding: 0 1; background: $boost; color: $text; }
    .assistant { height: auto; margin: 0 0 0 2; }
    .step, .final { margin: 0; }
    .tool { margin: 0; }
    .tool-output { color: $text-muted; }
    .notice { color: $warning; margin: 0 0 0 2; }
    #status { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    PromptBox { height: auto; max-height: 8; border: tall $accent; }
    """
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+y", "copy", "Copy answer"),
        Binding("ctrl+o", "toggle_offline", "Offline"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        *,
        generator: Generator | None = None,
        loader: Loader = load_generator,
        chat: store.Chat | None = None,
        chats_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings.model_copy(deep=True)
        self.generator, self.loader = generator, loader
        self.chat = chat or store.Chat()
        self.chats_dir = chats_dir
        log = TrajectoryLog(default_log_path(), tolerate_errors=True)
        self.log_sink = log if settings.agent.log else None
        self.warned: set[str] = set()  # storage warnings already shown, each shown once
        self.cancel: threading.Event | None = None
        self.attachment: str | None = None
        self.pending: tuple[str, str | None] | None = None  # asked before the model was ready
        self.busy = False

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="chat")
        yield StatusBar(id="status")
        yield PromptBox(list(COMMANDS), id="prompt")
        yield Footer()

    async def on_mount(self) -> None:
        self.status()
        chat = self.query_one("#chat")
        if self.chat.turns:
            for turn in self.chat.turns:
                await chat.mount(Static(turn.question, classes="user", markup=False))
                await chat.mount(Markdown(turn.answer, classes="final"))
            await self.notice(f"resumed: {self.chat.title}")
        else:
            await chat.mount(Markdown(f"Ask anything. Commands:\n\n{HELP}", id="welcome"))
        self.query_one(PromptBox).focus()
        if self.generator is None:
            self.load_model()

    # The status bar and notices

    def status(self, **figures: Any) -> None:
        m = self.settings.model
        active = adapters.label(m.spec, m.adapter)  # None where no adapter applies
        shown = "adapter" if active and active.startswith("shipped:") else Path(active or "").name
        model = m.spec + (f" + {shown}" if active else "")
        self.query_one(StatusBar).show(model, self.settings.offline, **figures)

    async def notice(self, text: str) -> None:
        chat = self.query_one("#chat")
        await chat.mount(Static(text, classes="notice", markup=False))
        chat.scroll_end(animate=False)

    # Model loading

    @work(thread=True, exclusive=True, group="load")
    def load_model(self) -> None:
        def progress(message: str) -> None:
            self.call_from_thread(self.status, busy=message)

        progress("loading model…")
        try:
            generator = self.loader(self.settings, progress)
        except ModelLoadError as e:
            self.call_from_thread(self.notice, f"cannot load the model: {e}")
            self.call_from_thread(self.status, busy="no model: /model SPEC to try another")
            return
        self.call_from_thread(self._model_ready, generator)

    async def _model_ready(self, generator: Generator) -> None:
        self.generator = generator
        self.status()
        if self.pending is not None:
            question, attachment = self.pending
            self.pending = None
            await self.start_turn(question, attachment)

    # Input

    async def on_prompt_box_submitted(self, message: PromptBox.Submitted) -> None:
        text = message.text
        if text.startswith("/"):
            await self.command(text)
            return
        if self.busy:
            self.notify("Still answering: Esc stops it.", severity="warning")
            return
        attachment, self.attachment = self.attachment, None
        chat = self.query_one("#chat")
        for welcome in self.query("#welcome"):
            await welcome.remove()
        shown = text + (f"\n📎 {attachment}" if attachment else "")
        await chat.mount(Static(shown, classes="user", markup=False))
        if self.generator is None:
            self.pending = (text, attachment)
            await self.notice("the model is still loading; your question goes as soon as it is")
            return
        await self.start_turn(text, attachment)

    async def start_turn(self, question: str, attachment: str | None) -> None:
        turn = AssistantTurn()
        await self.query_one("#chat").mount(turn)
        self.busy = True
        self.cancel = threading.Event()
        self.status(busy="thinking…")
        self.run_turn(question, attachment, turn, self.cancel)

    # One episode, in a worker thread

    @work(thread=True, exclusive=True, group="turn")
    def run_turn(
        self, question: str, attachment: str | None, turn: AssistantTurn, cancel: threading.Event
    ) -> None:
        start, traj = time.perf_counter(), None
        try:
            with self._episode(question, attachment, cancel) as events:
                for event in events:
                    traj = event.trajectory if isinstance(event, Done) else traj
                    self.call_from_thread(self.show, turn, event)
        except AttachError as e:
            self.call_from_thread(turn.notice, str(e))
        except Exception as e:  # a bug of ours, already in the log: one line, no traceback
            self.call_from_thread(turn.notice, f"error: {type(e).__name__}: {e}")
        self.call_from_thread(self._turn_done, question, attachment, turn, traj, start)

    @contextlib.contextmanager
    def _episode(
        self, question: str, attachment: str | None, cancel: threading.Event
    ) -> Iterator[Iterator[Event]]:
        assert self.generator is not None
        settings, log = self.settings.model_copy(deep=True), self.log_sink
        if attachment:
            text = load_attachment(attachment, settings)
            yield run_with_attachment(
                self.generator, question, text, settings, log=log, cancel=cancel
            )
            return
        system = settings.offline_system_prompt if settings.offline else settings.system_prompt
        mode = "offline" if settings.offline else "online"
        with toolbox(settings, question=question) as tools:
            yield run_episode(
                self.generator, question, tools, settings, history=self.chat.history(system),
                log=log, cancel=cancel, mode=mode,
            )  # fmt: skip

    async def show(self, turn: AssistantTurn, event: Event) -> None:
        chat = self.query_one("#chat")
        if isinstance(event, Token):
            await turn.token(event.text)
        elif isinstance(event, StepDone):
            turn.end_step()
        elif isinstance(event, ToolStart):
            await turn.tool_start(event.step, event.call)
        elif isinstance(event, ToolEnd):
            turn.tool_end(event.step, event.run)
        elif isinstance(event, Notice):
            await turn.notice(event.text)
        elif isinstance(event, Done):
            await turn.final(event.text, event.trajectory)
        chat.scroll_end(animate=False)

    def _turn_done(
        self,
        question: str,
        attachment: str | None,
        turn: AssistantTurn,
        traj: Trajectory | None,
        start: float,
    ) -> None:
        self.busy, self.cancel = False, None
        steps = [s for s in traj.steps] if traj is not None else []
        tokens = sum(len(s.completion_ids) for s in steps)
        decode = sum(s.decode_s for s in steps)
        self.status(
            tok_s=tokens / decode if decode > 0 else 0.0,
            steps=len(steps),
            elapsed=time.perf_counter() - start,
        )
        self.chat.turns.append(
            store.Turn(
                question=question,
                answer=turn.answer,
                outcome=traj.outcome if traj is not None else "error",
                episode_id=traj.id if traj is not None else None,
                attachment=attachment,
            )
        )
        try:
            store.save(self.chat, self.chats_dir)
        except OSError as e:
            self.warn_once(f"cannot save the conversation: {e.strerror or e}")
        if self.log_sink is not None and self.log_sink.failure:
            self.warn_once(f"{self.log_sink.failure}; answers are not logged")

    def warn_once(self, text: str) -> None:
        """A storage problem (read-only or full cache) said once; the chat goes on without it."""
        if text not in self.warned:
            self.warned.add(text)
            self.notify(text, severity="warning", timeout=10)

    # Keys

    def action_stop(self) -> None:
        if self.cancel is not None and not self.cancel.is_set():
            self.cancel.set()
            self.notify("Stopped.")

    async def action_regenerate(self) -> None:
        if self.busy or not self.chat.turns:
            return
        last = self.chat.turns.pop()
        await self.start_turn(last.question, last.attachment)

    def action_copy(self) -> None:
        answer = next((t.answer for t in reversed(self.chat.turns) if t.answer), "")
        if answer:
            self.copy_to_clipboard(answer)
            self.notify("Copied the last answer.")

    async def action_toggle_offline(self) -> None:
        await self.command("/offline")

    # Slash commands

    async def command(self, text: str) -> None:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        handler = {
            "/offline": self._offline,
            "/tools": self._tools,
            "/attach": self._attach,
            "/model": self._model,
            "/clear": self._clear,
            "/save": self._save,
            "/help": self._help,
        }.get(name)
        if handler is None:
            await self.notice(f"unknown command {name}; /help lists them")
            return
        await handler(arg)

    async def _offline(self, arg: str) -> None:
        self.settings.offline = not self.settings.offline
        self.status()
        state = "on: no tools, no network" if self.settings.offline else "off: tools are back"
        await self.notice(f"offline (in-car) mode {state}")

    async def _tools(self, arg: str) -> None:
        if arg:
            wanted = [t.strip() for t in arg.split(",") if t.strip()]
            unknown = [t for t in wanted if t not in TOOL_NAMES]
            if unknown:
                await self.notice(f"unknown tool {unknown[0]}; choose from {', '.join(TOOL_NAMES)}")
                return
            self.settings.agent.tools = wanted  # type: ignore[assignment]
        tools = ", ".join(self.settings.agent.tools) or "none"
        note = " (off while offline)" if self.settings.offline else ""
        await self.notice(f"tools: {tools}{note}")

    async def _attach(self, arg: str) -> None:
        if not arg:
            await self.notice("usage: /attach PATH|URL")
            return
        if not arg.startswith(("http://", "https://")) and not Path(arg).expanduser().is_file():
            await self.notice(f"cannot attach {arg}: no such file, and not an http(s) URL")
            return
        self.attachment = arg
        await self.notice(f"attached {arg}: it goes with your next question")

    async def _model(self, arg: str) -> None:
        if not arg:
            await self.notice(f"model: {self.settings.model.spec} ({self.settings.model.dtype})")
            return
        if self.busy:
            await self.notice("still answering: Esc first, then /model")
            return
        self.settings.model.spec, self.generator = arg, None
        self.load_model()

    async def _clear(self, arg: str) -> None:
        self.chat = store.Chat()
        await self.query_one("#chat").remove_children()
        self.status()

    async def _save(self, arg: str) -> None:
        path = Path(arg).expanduser() if arg else Path(f"edgeagent-{self.chat.id}.md")
        try:
            path.write_text(store.transcript(self.chat))
        except OSError as e:
            await self.notice(f"cannot save to {path}: {e.strerror}")
            return
        await self.notice(f"saved to {path}")

    async def _help(self, arg: str) -> None:
        await self.query_one("#chat").mount(Markdown(HELP))
