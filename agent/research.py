"""Web research steered for a small model: read what a search found, answer from the pages.

A 0.5B model left free answers from search snippets, searches again, or invents URLs. So,
after a search that found pages and before any was read, the next turn starts with the opening
of a fetch_page call and the model's decoding is held to the best `read_choices` URLs found
and not read yet (the opening is recorded as inserted, `Step.prefill`). The answer then comes
from the model on just the pages read and the question: left in the tool conversation it calls
the tool again instead of answering. When that answer is NOT FOUND, the model is told to search
for the missing fact and the next read is steered the same way (a second hop). A page URL that
neither the question nor a tool result showed is refused as a guess, and the next turn starts
as a web_search call.

Not here: the loop (`agent.loop`), the tools (`agent.toolbox`). Every part is a setting
(`agent.read_after_search`, `agent.read_choices`, `agent.fetch_seen_urls_only`).
"""

from __future__ import annotations

from agent.policy import Plain, Turn, View
from agent.settings import TOOL_NAMES, Settings
from model.chat import ToolFormat, call_prefix
from model.messages import Message, ToolCall
from tools.base import Tool, ToolResult

FOCUSED_SYSTEM = (
    "Answer the question from the text. Reply with the answer only, copied exactly from the text."
)
NOT_FOUND = "NOT FOUND"
READ_SYSTEM = FOCUSED_SYSTEM + f" If the text does not contain the answer, reply {NOT_FOUND}."
READ_AGAIN = (
    "The pages read so far do not answer the question. Search for the fact that is still "
    "missing, using the names the pages gave."
)
GUESSED = (
    "that URL is not from the question or any search result, so it is a guess; call "
    "web_search first, then read one of the pages it finds"
)


class Research(Plain):
    def __init__(self, tools: dict[str, Tool], settings: Settings, fmt: ToolFormat) -> None:
        self.tools, self.settings, self.fmt = tools, settings, fmt
        self.found: list[str] = []  # URLs the last search with hits found
        self.steered, self.fetched = False, False  # a fetch was started for them; a page read
        self.read: set[str] = set()  # URLs read in this episode: a second hop reads others
        self.guessed = False  # a guessed URL was just refused: the next turn starts a search

    def before_turn(self, view: View) -> Turn:
        notice = None
        if self.steered and self.fetched:  # the steered read is done: answer from its pages
            answer = self._read_answer(view)
            if NOT_FOUND not in answer.upper() or view.index >= self.settings.agent.max_steps - 1:
                return Turn(answer=answer)
            notice = "the page did not say: searching on"
            view.messages.append(Message(role="user", content=READ_AGAIN))
            self.found, self.steered, self.fetched = [], False, False
        prefill, choices = self._steer()
        return Turn(notice=notice, prefill=prefill, choices=choices)

    def refusal(self, call: ToolCall, messages: list[Message]) -> ToolResult | None:
        if call.name == TOOL_NAMES["fetch"] and self._guessed_url(call, messages):
            self.guessed = True
            return ToolResult(error=GUESSED, error_kind="guess")
        return None

    def observe(self, call: ToolCall, result: ToolResult) -> None:
        if result.error is None and result.metadata.get("hits"):
            self.found = [str(hit["url"]) for hit in result.metadata["hits"]]
        if result.error is None and call.name == TOOL_NAMES["fetch"]:
            self.fetched = True
            self.read.add(str(call.arguments.get("url", "")))

    def _read_answer(self, view: View) -> str:
        """The model, recursively, on just the pages read and the question; every page read
        so far goes in, newest first, so a second hop sees the first."""
        fetch = TOOL_NAMES["fetch"]
        runs = [r for s in view.traj.steps for r in s.tool_runs if r.error is None]
        pages = [r.text for r in runs if r.call.name == fetch]
        answer, sub = view.ask(view.traj.task, "\n\n".join(reversed(pages)), READ_SYSTEM)
        view.traj.steps[-1].sub_episodes.append(sub)
        view.messages.append(Message(role="assistant", content=answer))
        return answer

    def _steer(self) -> tuple[str, list[str]]:
        """The start of the next turn when the policy writes one, and the choices it allows
        next: after a refused guess, the opening of a web_search call (the query is the
        model's); once after a search that found pages, the opening of a fetch_page call, then
        one of the best unread URLs found, the one the model rates likeliest."""
        fetch = TOOL_NAMES["fetch"]
        if self.guessed:  # told to search, a 0.5B model answers from the error instead
            self.guessed = False
            return call_prefix(self.fmt, TOOL_NAMES["search"], "query"), []
        if not (self.settings.agent.read_after_search and fetch in self.tools):
            return "", []
        unread = [u for u in self.found if u not in self.read][: self.settings.agent.read_choices]
        if not unread or self.steered or self.fetched:
            return "", []
        self.steered = True
        end = '")]' if self.fmt is ToolFormat.PYTHONIC else '"}}'
        return call_prefix(self.fmt, fetch, "url"), [u.replace('"', "%22") + end for u in unread]

    def _guessed_url(self, call: ToolCall, messages: list[Message]) -> bool:
        """A small model asked about something it does not know often invents a plausible URL
        and answers from the error. Where it can search instead, say so (a model error)."""
        if not self.settings.agent.fetch_seen_urls_only or TOOL_NAMES["search"] not in self.tools:
            return False
        url = str(call.arguments.get("url", "")).strip()
        shown = (m.content or "" for m in messages if m.role in ("user", "tool"))
        return bool(url) and not any(url in text for text in shown)
