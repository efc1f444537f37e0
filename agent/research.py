"""Web research steered for a small model: read what a search found, answer from the pages.

A 0.5B model left free answers from search snippets, searches again, or invents URLs. So,
after a search that found pages and before any was read, the next turn starts with the opening
of a fetch_page call and the model's decoding is held to the best `read_choices` URLs found
and not read yet (the opening is recorded as inserted, `Step.prefill`). The answer then comes
from the model on just the pages read and a question: left in the tool conversation it calls
the tool again instead of answering.

A question may need more than one page ("In which town was the designer of the Zorvath Bridge
born?"). Before the first answer, the model splits the question into lookups (`agent.hops`);
each lookup is answered from the pages read, newest first, and the next one, with that answer
(the bridge) in it, becomes the query of a web_search call the loop writes whole, whose best
unread hit is read the same way. A lookup the pages do not answer is searched for itself, or
the next unread hit of its search is read. A question of one lookup keeps the older rule: when
the reader says NOT FOUND, the model is told to search for the missing fact. An episode whose
pages never answer ends on one sentence that says so (and what was found on the way).

A page URL that neither the question nor a tool result showed is refused as a guess, and the
next turn starts as a web_search call.

Not here: the loop (`agent.loop`), the tools (`agent.toolbox`), the split (`agent.hops`). Every
part is a setting (`agent.read_after_search`, `agent.read_choices`, `agent.split_question`,
`agent.max_hops`, `agent.fetch_seen_urls_only`).
"""

from __future__ import annotations

from agent.hops import SPLIT_SYSTEM, Lookup, bridge, example_turns, is_bridge, parse_plan, resolve
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
NOT_ANSWERED = "I could not find the answer in the pages I read"
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
        self.plan: list[str] | None = None  # the lookups, once the question is split
        self.done: list[Lookup] = []  # the lookups answered, in order: the bridges
        self.query: str | None = None  # the next turn searches for this lookup
        self.searched: set[str] = set()  # the lookups searched for
        self.ours = False  # the last search was the loop's: with nothing new, the end

    def before_turn(self, view: View) -> Turn:
        notice = None
        if self.steered and self.fetched:  # the steered read is done: answer from its pages
            turn = self._after_read(view)
            if turn.answer is not None:
                return turn
            notice = turn.notice
        elif self.ours and not self._unread():  # the loop's search found no page left to read
            return Turn(answer=self._not_answered())
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

    def _after_read(self, view: View) -> Turn:
        """Answer the current lookup from the pages read; then end, or say what comes next: a
        search for the next lookup, for this one again, or (one lookup) the model's own."""
        if self.plan is None:
            self.plan = self._split(view)
        at = len(self.done)
        lookup = resolve(self.plan[at], [d.answer for d in self.done])
        answer, question = self._read_answer(view, lookup), view.traj.task
        first = answer and at == 0 and len(self.plan) > 1
        if first and not is_bridge(bridge(answer, lookup), question):  # nothing new to look up
            self.plan = view.traj.meta["plan"] = [question]
            lookup, answer = question, self._read_answer(view, question)
        if answer and at == len(self.plan) - 1:
            return Turn(answer=answer)
        if answer:  # a bridge: the next lookup names it
            self.done.append(Lookup(question=lookup, answer=bridge(answer, lookup)))
            view.traj.meta["lookups"] = [d.model_dump() for d in self.done]
        if view.index >= self.settings.agent.max_steps - 1:  # no turns left for another read
            return Turn(answer=self._not_answered())
        self.steered, self.fetched = False, False
        if answer:
            self.found, self.query = [], resolve(self.plan[at + 1], [d.answer for d in self.done])
            return Turn(notice=f"found {self.done[-1].answer}: searching on")
        if len(self.plan) == 1:  # the model searches for what is missing
            self.found = []
            view.messages.append(Message(role="user", content=READ_AGAIN))
        elif lookup not in self.searched:  # search for the lookup itself
            self.found, self.query = [], lookup
        elif not self._unread():  # its search has nothing left to read
            return Turn(answer=self._not_answered())
        return Turn(notice="the page did not say: searching on")

    def _split(self, view: View) -> list[str]:
        """The question's lookups: the model's split when `agent.split_question` is on and the
        split is trusted (`agent.hops`), else the question alone."""
        agent, question = self.settings.agent, view.traj.task
        if not agent.split_question or agent.max_hops < 2:
            return [question]
        reply, sub = view.chat(question, SPLIT_SYSTEM, example_turns())
        view.traj.steps[-1].sub_episodes.append(sub)
        plan = parse_plan(question, reply, agent.max_hops)
        view.traj.meta["plan"] = plan
        return plan

    def _read_answer(self, view: View, question: str) -> str:
        """The model, recursively, on just the pages read and the question: its answer, or ""
        when it says the pages do not tell. Every page read so far goes in, newest first, so a
        second hop sees the first."""
        fetch = TOOL_NAMES["fetch"]
        runs = [r for s in view.traj.steps for r in s.tool_runs if r.error is None]
        pages = [r.text for r in runs if r.call.name == fetch]
        answer, sub = view.ask(question, "\n\n".join(reversed(pages)), READ_SYSTEM)
        view.traj.steps[-1].sub_episodes.append(sub)
        view.messages.append(Message(role="assistant", content=answer))
        return "" if NOT_FOUND in answer.upper() else answer.strip()

    def _not_answered(self) -> str:
        """One sentence: nothing answered the question, and what was found on the way."""
        found = " and that ".join(f'the answer to "{d.question}" is {d.answer}' for d in self.done)
        return f"{NOT_ANSWERED}; they say only that {found}." if found else f"{NOT_ANSWERED}."

    def _unread(self) -> list[str]:
        return [u for u in self.found if u not in self.read][: self.settings.agent.read_choices]

    def _steer(self) -> tuple[str, list[str]]:
        """The start of the next turn when the policy writes one, and the choices it allows
        next: after a refused guess, the opening of a web_search call (the query is the
        model's); for a lookup, a web_search call for it (the query held to the lookup); once
        after a search that found pages, the opening of a fetch_page call, then one of the best
        unread URLs found, the one the model rates likeliest."""
        fetch, search = TOOL_NAMES["fetch"], TOOL_NAMES["search"]
        end = '")]' if self.fmt is ToolFormat.PYTHONIC else '"}}'
        if self.guessed:  # told to search, a 0.5B model answers from the error instead
            self.guessed = False
            return call_prefix(self.fmt, search, "query"), []
        if not (self.settings.agent.read_after_search and fetch in self.tools):
            return "", []
        if self.query is not None and search in self.tools:
            query, self.query, self.ours = self.query, None, True
            self.searched.add(query)
            return call_prefix(self.fmt, search, "query"), [_quotable(query) + end]
        unread = self._unread()
        if not unread or self.steered or self.fetched:
            return "", []
        self.steered, self.ours = True, False
        return call_prefix(self.fmt, fetch, "url"), [u.replace('"', "%22") + end for u in unread]

    def _guessed_url(self, call: ToolCall, messages: list[Message]) -> bool:
        """A small model asked about something it does not know often invents a plausible URL
        and answers from the error. Where it can search instead, say so (a model error)."""
        if not self.settings.agent.fetch_seen_urls_only or TOOL_NAMES["search"] not in self.tools:
            return False
        url = str(call.arguments.get("url", "")).strip()
        shown = (m.content or "" for m in messages if m.role in ("user", "tool"))
        return bool(url) and not any(url in text for text in shown)


def _quotable(text: str) -> str:
    """`text` as the inside of a quoted argument, in either call format: one line, no quotes
    or backslashes (a query loses nothing by it)."""
    return " ".join(text.replace('"', " ").replace("\\", " ").split())
