"""Multi-hop questions for a small model: the question split into lookups, one page each.

Asked "In what year was the founder of Zormont Optics born?" on the company's page, a 0.5B
reader answers with a year that page gives (the founding year) rather than saying the page does
not tell: it rarely abstains, so waiting for its NOT FOUND seldom starts a second hop. So the
model first splits the question into lookups, numbered, a later one naming an earlier answer as
#1 (the references of question decomposition: QDMR, Wolfson et al. 2020; Self-Ask, Press et
al. 2022): "1. Who founded Zormont Optics?" then "2. In what year was #1 born?". Each lookup
asks one fact of one named thing, which the reader answers well; #1 is replaced by its answer
(the bridge) before the next lookup is searched for and read (`agent.research`).

A split is trusted only when its shape makes sense, so a single-hop question stays one lookup:
the lines are numbered 1..n with n at most `max_hops`; every later line names an earlier answer
(#k) and the first names none; and neither the first lookup nor what the reference stands for
in the question is a bare name (a small model splits "Where was Ada Lovelace born?" into "Who
is Ada Lovelace?" and "Where was #1 born?", whose first lookup has nothing to find). After the
first lookup, an answer that is a value or a name the question gave means the same
(`is_bridge`).

Not here: searching, reading or steering (`agent.research`), the model call (`agent.loop`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from model.messages import Message

SPLIT_SYSTEM = (
    "Split the question into the lookups needed to answer it, one per line, numbered. A "
    "question that asks one fact about a thing it names is one lookup: write it unchanged. "
    "When a lookup needs the answer of an earlier one, write #1 (or #2) in its place."
)
# Worked examples, as earlier turns of the conversation: a small model copies a shown form far
# better than it follows a described one. Single and split questions alternate, in forms of
# relation other than any one corpus's ("of", "where", "whose", "that").
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "Which river flows through the city where Ada Lovelace was born?",
        "1. In which city was Ada Lovelace born?\n2. Which river flows through #1?",
    ),
    ("How tall is the Eiffel Tower?", "1. How tall is the Eiffel Tower?"),
    (
        "Who runs the company that owns Instagram?",
        "1. Which company owns Instagram?\n2. Who runs #1?",
    ),
    (
        "In what year did Marie Curie win her first Nobel Prize?",
        "1. In what year did Marie Curie win her first Nobel Prize?",
    ),
    (
        "What language is spoken in the country whose capital is Lima?",
        "1. Which country has Lima as its capital?\n2. What language is spoken in #1?",
    ),
    ("Where is Nokia based?", "1. Where is Nokia based?"),
)
LINE = re.compile(r"^\s*(?:step\s*)?(\d+)\s*[.):]\s*(.+?)\s*$", re.I | re.M)
REF = re.compile(r"#(\d+)")
LINKING = re.compile(r"\s+(?:is|was|are|were|by)\s+", re.I)  # where a restating sentence turns
SENTENCE = re.compile(r"(?<=[a-z0-9]{3}[.!?])\s+(?=[A-Z])")  # not after "St." or "Co."
PLACE = re.compile(r"^(?:in|on|at|from|of)\s+", re.I)
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Words that carry no fact: a reference standing for only these and names is a bare name.
_FUNCTION = (
    "a an the of in on at by for to from with and or is are was were be been does do did "
    "what which who whom whose where when how s its it this that"
)
FUNCTION_WORDS = frozenset(_FUNCTION.split())


class Lookup(BaseModel):
    """One lookup of a plan as it was run: the question read (references filled in) and the
    reader's answer; `meta.lookups` of the trajectory lists them for evals."""

    model_config = ConfigDict(frozen=True)
    question: str
    answer: str


def example_turns() -> list[Message]:
    """The worked examples as earlier turns of the conversation that asks for a split (the
    question itself is the last user turn)."""
    turns: list[Message] = []
    for asked, split in EXAMPLES:
        turns += [Message(role="user", content=asked), Message(role="assistant", content=split)]
    return turns


def parse_plan(question: str, reply: str, max_hops: int) -> list[str]:
    """The lookups of the model's split, or `[question]` when the split is not to be trusted
    (see the module's doc): research then goes on as for one lookup."""
    lines = [(int(n), text.strip()) for n, text in LINE.findall(reply)]
    steps = [text for _, text in lines]
    if not 2 <= len(steps) <= max_hops or [n for n, _ in lines] != list(range(1, len(steps) + 1)):
        return [question]
    for at, step in enumerate(steps):
        refs = [int(n) for n in REF.findall(step)]
        if (at == 0) != (not refs) or any(not 1 <= n <= at for n in refs):
            return [question]
    if _same(steps[0], question) or _names_only(steps[0]) or _bare_name(question, steps[1:]):
        return [question]
    return steps


def resolve(step: str, answers: list[str]) -> str:
    """The lookup with each #k replaced by the k-th answer (left as is when there is none)."""

    def answer(match: re.Match[str]) -> str:
        k = int(match.group(1))
        return answers[k - 1] if 1 <= k <= len(answers) else match.group(0)

    return REF.sub(answer, step)


def bridge(answer: str, lookup: str) -> str:
    """The reader's answer as a name to put in the next lookup: its first line (of that, the
    sentence that says most of the lookup), without quotes or a closing full stop, and, when it
    restates the lookup, only the name: after its last linking word ("The Zorvath Bridge was
    designed by Elspeth Varnock") or before the lookup's verb ("Prasha Zondess designed the
    Fathel Viaduct")."""
    line = next((ln for ln in answer.splitlines() if ln.strip()), "").strip()
    asked = {w for w in _words(lookup) if w not in FUNCTION_WORDS}
    said = max(SENTENCE.split(line), key=lambda s: len(asked & set(_words(s))))
    said = said if asked & set(_words(said)) else line
    name = said.strip().strip("\"'`*").rstrip(".,;:").strip()
    return _after_linking(name, asked) or _before_verb(name, asked) or name


def _after_linking(name: str, asked: set[str]) -> str:
    parts = LINKING.split(name)
    for at in range(len(parts) - 1, 0, -1):
        before, after = " ".join(parts[:at]), " ".join(parts[at:]).strip()
        after = PLACE.sub("", after)  # "is in Halvern": the place, not the preposition
        if after and asked & set(_words(before)):
            return after
    return ""


def _before_verb(name: str, asked: set[str]) -> str:
    """The name that opens an active restatement: the words before the first lower-case word
    the lookup has (its verb), when they are a name (capitalized words)."""
    tokens = name.split()
    for at, token in enumerate(tokens):
        if token[:1].islower() and asked & set(_words(token)):
            before = " ".join(tokens[:at]).rstrip(",")
            return before if at and _names_only(before) else ""
    return ""


def is_bridge(answer: str, question: str) -> bool:
    """Whether a first lookup's answer is a thing to look up next: not a value (it starts with
    a digit: a year, a length) and not only words the question already has (it named it). When
    it is not, the split was of a one-lookup question ("1. What is the main span of the Zorvath
    Bridge?" "2. How long is #1?"), whose answer the pages read already hold."""
    said = set(_words(question))
    new = [w for w in _words(answer) if w not in FUNCTION_WORDS and w not in said]
    return bool(new) and not answer.lstrip()[:1].isdigit()


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def _same(a: str, b: str) -> bool:
    return _words(a) == _words(b)


def _names_only(step: str) -> bool:
    """Whether a lookup asks nothing but a name ("Who is Ada Lovelace?"): every word is
    capitalized or a function word, so it names no fact to find."""
    return all(w[0].isupper() or w.lower() in FUNCTION_WORDS for w in WORD.findall(step))


def _bare_name(question: str, later: list[str]) -> bool:
    """Whether the words the later lookups dropped from the question (what the references
    stand for) are only capitalized words and function words: a name the question gave."""
    kept = {w for step in later for w in _words(REF.sub(" ", step))}
    dropped = [w for w in WORD.findall(question) if w.lower() not in kept]
    return all(w[0].isupper() or w.lower() in FUNCTION_WORDS for w in dropped)
