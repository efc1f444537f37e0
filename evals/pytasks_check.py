"""What a Python-tool task is and when a reply answers it: the `Task` model and `judge`.

A reply is right when it states the task's answer, by the task's `check`:
- int, float: some number in the reply equals the answer (float: within `tol`). Numbers are
  read whole, with thousands commas dropped ("3,910" is 3910, and "3910" is not 391), a
  leading minus kept where it is a sign, and compared exactly (as fractions, so a 60-digit
  factorial is not rounded);
- text: the answer's words, in order and adjacent, among the reply's (letters and digits;
  case kept only where the task is about case: upper or title case);
- list: the items, in order and adjacent, among the reply's numbers (items that are numbers)
  or words ("and" and list bullets or numbering skipped).
Before reading, each literal the question quoted (`echo`: the list an item is picked from) is
cut from the reply, so quoting the question is not answering it. "I computed it" states
nothing and is wrong. Like `evals.scoring.contains_answer`, "states it" can be gamed by
stating many values; a reward built on `judge` should add a length penalty.

Not here: making tasks (`evals.pytasks_data`), running them (`evals.pytasks`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Kind = Literal["arithmetic", "string", "list"]
Check = Literal["int", "float", "text", "list"]

THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# A minus is a sign only where no word or number comes right before it ("5-3" is 5 and 3).
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")
WORD = re.compile(r"[^\W\d_]+|\d+")
BULLET = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+")


class Task(BaseModel):
    """One question with its answer: `answer` is exactly what `code` prints."""

    id: str
    family: str
    kind: Kind
    question: str
    answer: str
    check: Check  # int/float: a number in the reply; text: the string; list: the items in order
    tol: float = 0.0  # float: how far a stated number may be from the answer
    case_sensitive: bool = False  # text: upper and title case must be kept
    items: list[str] = Field(default_factory=list)  # list: the answer's items, in order
    echo: list[str] = Field(default_factory=list)  # question literals a reply may quote
    code: str  # the reference: one python call that prints the answer

    @model_validator(mode="after")
    def _list_items(self) -> Task:
        """A list task's items default to its answer's, as the references print them."""
        if self.check == "list" and not self.items:
            self.items = self.answer.split(", ")
        return self


def numbers(text: str) -> list[Fraction]:
    """Every number the text states, in order."""
    text = THOUSANDS.sub("", text)
    found = []
    for match in NUMBER.finditer(text):
        token = match.group()
        if token.startswith("-") and match.start() > 0 and text[match.start() - 1] == "-":
            token = token[1:]  # "--5" is a dash and a 5
        found.append(Fraction(token))
    return found


def _run(needle: list[str], hay: list[str]) -> bool:
    """Whether `needle` appears in `hay` in order and adjacent."""
    size = len(needle)
    return size > 0 and any(hay[i : i + size] == needle for i in range(len(hay) - size + 1))


def _words(text: str, case_sensitive: bool) -> list[str]:
    words = WORD.findall(text)
    return words if case_sensitive else [w.lower() for w in words]


def _list_tokens(text: str, of_numbers: bool) -> list[str]:
    text = BULLET.sub(" ", text)
    if of_numbers:
        return [_plain(n) for n in numbers(text)]
    return [w for w in _words(text, False) if w != "and" and not w.isdigit()]


def _plain(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def judge(task: Task, reply: str) -> tuple[bool, dict[str, Any]]:
    """Whether `reply` answers `task`, and why, in a few words."""
    text = reply
    for literal in task.echo:
        text = text.replace(literal, " ")
    if not text.strip():
        return False, {"why": "no answer"}
    if task.check in ("int", "float"):
        want, tol = Fraction(task.answer), Fraction(task.tol)
        said = numbers(text)
        ok = any(abs(x - want) <= tol for x in said)
        shown = ", ".join(_plain(x) for x in said[:6]) or "no number"
        return ok, {"why": f"{'states' if ok else 'does not state'} {task.answer} ({shown})"}
    if task.check == "text":
        ok = _run(_words(task.answer, task.case_sensitive), _words(text, task.case_sensitive))
        return ok, {"why": f"{'states' if ok else 'does not state'} {task.answer!r}"}
    of_numbers = all(NUMBER.fullmatch(item) for item in task.items)
    items = [_plain(Fraction(i)) for i in task.items] if of_numbers else task.items
    ok = _run([i if of_numbers else i.lower() for i in items], _list_tokens(text, of_numbers))
    return ok, {"why": f"{'lists' if ok else 'does not list'} {', '.join(task.items)} in order"}
