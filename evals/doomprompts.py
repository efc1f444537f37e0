"""The doom-loop suite's prompts: deterministic generators of the tasks that make small models
repeat themselves, each with its answer and a rule that checks a reply against it.

A family is a function of a seeded `random.Random` that returns a `Problem`: the prompt, the
answer as shown on the page, and a `check` (plain JSON, so it travels in `EvalCase.data`):
- `{"kind": "number"}`: the last number said is the answer (arithmetic, puzzles, tool tasks);
- `{"kind": "choice", "choices": [...]}`: the last of the choices named is the answer;
- `{"kind": "seq", "of": "int"|"letter"|"binary"|"word", "items": [...]}`: the items appear in
  this order among the reply's integers, single letters, 0/1 words or words (other tokens may
  come between: a table's other columns, a line's label);
- `{"kind": "set", "lo": A, "hi": B, "items": [...]}`: the integers strictly between A and B
  that the reply names are exactly these (primes in a range).
Families: the five hard little problems (`arith`, `chain`, `order`, `collatz`, `weekday`); long
counting (`count`, `countdown`); enumeration (`spell`, `alphabet`, `primes`, `binary`);
repetition-prone formats and step-by-step sequences (`table`, `template`, `fib`, `powers`); and
`tool`, a task for one python call then an answer (run as an agent episode by `evals.doomloop`).
Every list answer, written bare, takes under 60% of the suite's token cap (a slow test checks
it with the embedded models' tokenizers).

Not here: running or scoring a model (`evals.doomloop`), the loop test (`model.guard`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any, NamedTuple

NAMES = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")
INTEGER = re.compile(r"(?<![\d.])\d+(?![\d.]\d)")
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


class Problem(NamedTuple):
    prompt: str
    answer: str  # as the page shows it
    check: dict[str, Any]


def number(answer: int) -> Problem:
    return Problem("", str(answer), {"kind": "number"})


def seq(prompt: str, items: list[Any], of: str = "int") -> Problem:
    shown = [str(x) for x in items]
    answer = ", ".join(shown if len(shown) <= 8 else [*shown[:3], "...", *shown[-2:]])
    return Problem(prompt, answer, {"kind": "seq", "of": of, "items": items})


# --- hard little problems (the suite's first families; their prompts never change) ------------


def arith(rng: random.Random) -> Problem:
    a, b, c, d = rng.randint(11, 49), rng.randint(11, 49), rng.randint(2, 9), rng.randint(2, 19)
    return number(a * b - c * d)._replace(prompt=f"Compute {a}*{b} - {c}*{d} step by step.")


def chain(rng: random.Random) -> Problem:
    a, b, c, e = rng.randint(3, 30), rng.randint(3, 30), rng.randint(3, 9), rng.randint(2, 7)
    r = rng.randint(2, min(12, ((a + b) * c - 1) // e))  # so that d below is positive
    d = (a + b) * c - r * e
    prompt = (
        f"Start with {a}. Add {b}, multiply the result by {c}, subtract {d}, then divide by {e}. "
        "What number do you get? Show each step."
    )
    return number(r)._replace(prompt=prompt)


def order(rng: random.Random) -> Problem:
    people = rng.sample(NAMES, 4)  # tallest first
    facts = []
    for hi, lo in zip(people, people[1:], strict=False):
        facts.append(
            f"{hi} is taller than {lo}." if rng.random() < 0.5 else f"{lo} is shorter than {hi}."
        )
    rng.shuffle(facts)
    ask_shortest = rng.random() < 0.5
    question = "Who is the shortest?" if ask_shortest else "Who is the tallest?"
    answer = people[-1] if ask_shortest else people[0]
    prompt = f"{' '.join(facts)} {question} Explain your reasoning."
    return Problem(prompt, answer, {"kind": "choice", "choices": people})


def collatz_steps(n: int) -> int:
    steps = 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return steps


def collatz(rng: random.Random) -> Problem:
    n = rng.choice([k for k in range(6, 40) if collatz_steps(k) <= 20])
    prompt = (
        f"Start with {n}. If the number is even, halve it; if it is odd, multiply it by 3 and "
        "add 1. Repeat until you reach 1. How many steps does it take? List every step."
    )
    return number(collatz_steps(n))._replace(prompt=prompt)


def weekday(rng: random.Random) -> Problem:
    start, n = rng.randrange(7), rng.randint(20, 400)
    prompt = (
        f"Today is {DAYS[start]}. What day of the week will it be in {n} days? Think it through."
    )
    return Problem(prompt, DAYS[(start + n) % 7], {"kind": "choice", "choices": DAYS})


# --- long counting and enumeration ------------------------------------------------------------


def count(rng: random.Random) -> Problem:
    a = rng.randint(1, 900)
    b = a + rng.randint(25, 40)
    prompt = f"Count from {a} to {b}. Write every number, separated by commas."
    return seq(prompt, list(range(a, b + 1)))


def countdown(rng: random.Random) -> Problem:
    step = rng.randint(3, 9)
    top = rng.randint(300, 900)
    items = list(range(top, top - step * rng.randint(20, 30), -step))  # all positive
    prompt = (
        f"Count down from {top} in steps of {step}: write {top}, then {top - step}, and so on, "
        f"until you reach {items[-1]}. Write every number."
    )
    return seq(prompt, items)


def words(n: int) -> str:
    """0 <= n < 1000 in English words, hyphenated the usual way ("three hundred forty-two")."""
    head = f"{ONES[n // 100]} hundred" if n >= 100 else ""
    n %= 100
    tail = ONES[n] if n < 20 else TENS[n // 10] + (f"-{ONES[n % 10]}" if n % 10 else "")
    return " ".join(x for x in (head, tail if n or not head else "") if x)


def spell(rng: random.Random) -> Problem:
    a = rng.randint(21, 480)
    b = a + rng.randint(12, 18)
    prompt = f"Write every number from {a} to {b} in English words, one per line."
    return seq(prompt, [words(n) for n in range(a, b + 1)], of="word")


def alphabet(rng: random.Random) -> Problem:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    hi = rng.randint(17, 25)
    lo = rng.randint(0, hi - 14)
    if rng.random() < 0.5:
        items = list(reversed(letters[lo : hi + 1]))
        prompt = (
            f"Write the letters of the alphabet backwards from {letters[hi]} to {letters[lo]}, "
            "separated by spaces."
        )
        return seq(prompt, items, of="letter")
    items = list(range(hi + 1, lo, -1))  # positions, Z = 26 down
    prompt = (
        f"Going backwards from {letters[hi]} to {letters[lo]}, write each letter with its "
        f"position in the alphabet, like '{letters[hi]} = {hi + 1}', one per line."
    )
    return seq(prompt, items)


def primes(rng: random.Random) -> Problem:
    lo = rng.choice(range(100, 900, 10))  # hi and lo end in 0: neither is prime
    hi = lo + rng.choice([60, 80, 100])
    found = [n for n in range(lo + 1, hi) if all(n % d for d in range(2, int(n**0.5) + 1))]
    prompt = f"List all the prime numbers between {lo} and {hi}."
    shown = seq("", found).answer
    return Problem(prompt, shown, {"kind": "set", "lo": lo, "hi": hi, "items": found})


def binary(rng: random.Random) -> Problem:
    a = rng.randint(3, 200)
    b = a + rng.randint(8, 12)
    prompt = f"Write every number from {a} to {b} in binary, one per line, like '5 = 101'."
    return seq(prompt, [f"{n:b}" for n in range(a, b + 1)], of="binary")


# --- repetition-prone formats and step-by-step sequences ---------------------------------------


def table(rng: random.Random) -> Problem:
    a = rng.randint(2, 40)
    b = a + rng.randint(7, 11)
    if rng.random() < 0.5:
        k = rng.randint(3, 19)
        prompt = (
            f"Write the {k} times table from {k} x {a} to {k} x {b} as a Markdown table "
            "with the columns n and product."
        )
        return seq(prompt, [k * n for n in range(a, b + 1)])
    prompt = (
        f"Make a Markdown table with the columns n, n squared and n cubed, for every n from {a} "
        f"to {b}."
    )
    return seq(prompt, [x for n in range(a, b + 1) for x in (n, n * n, n**3)])


def template(rng: random.Random) -> Problem:
    coins, n = rng.randint(3, 29), rng.randint(12, 18)
    start = rng.randint(0, 200)
    prompt = (
        f"I have {start} coins and save {coins} more every day. Write a numbered list for days 1 "
        f"to {n}, each line in the form 'Day 1: {start + coins} coins'."
    )
    return seq(prompt, [start + coins * d for d in range(1, n + 1)])


def fib(rng: random.Random) -> Problem:
    a, b, n = rng.randint(1, 30), rng.randint(1, 30), rng.randint(12, 16)
    items = [a, b]
    while len(items) < n:
        items.append(items[-1] + items[-2])
    prompt = (
        f"A sequence starts with {a} and {b}; each next number is the sum of the two before it. "
        f"Write the first {n} numbers of the sequence, one per line."
    )
    return seq(prompt, items)


def powers(rng: random.Random) -> Problem:
    k = rng.choice([2, 3, 4, 5, 6, 7, 9, 11, 12, 13])
    n = rng.randint(8, max(i for i in range(8, 16) if k**i < 10**9))
    prompt = f"List the powers of {k} from {k}^1 to {k}^{n}, one per line, like '{k}^2 = {k * k}'."
    return seq(prompt, [k**i for i in range(1, n + 1)])


# --- one python call, then an answer ------------------------------------------------------------


def tool(rng: random.Random) -> Problem:
    """Easy in Python, hard by hand: the right move is one call, then the number."""
    kind = rng.randrange(6)
    if kind == 0:
        n = rng.randint(200, 2000)
        task, value = (
            f"the sum of the squares of the integers from 1 to {n}",
            sum(i * i for i in range(1, n + 1)),
        )
    elif kind == 1:
        n = rng.randint(30, 80)
        x, y = 0, 1
        for _ in range(n):
            x, y = y, x + y
        task, value = f"the {n}th Fibonacci number (F(1) = F(2) = 1)", x
    elif kind == 2:
        n = rng.randint(1000, 9000)
        sieve = [all(k % d for d in range(2, int(k**0.5) + 1)) for k in range(2, n)]
        task, value = f"how many prime numbers are below {n}", sum(sieve)
    elif kind == 3:
        k = rng.randint(60, 300)
        task, value = f"the sum of the digits of 2**{k}", sum(int(c) for c in str(2**k))
    elif kind == 4:
        a, b, m = rng.randint(3, 99), rng.randint(50, 500), rng.randint(1000, 99999)
        task, value = f"{a}**{b} modulo {m}", pow(a, b, m)
    else:
        n, p, q = rng.randint(500, 5000), rng.choice([3, 4, 6]), rng.choice([5, 7, 11])
        value = sum(i for i in range(n) if i % p == 0 or i % q == 0)
        task = f"the sum of all positive integers below {n} that are multiples of {p} or {q}"
    prompt = f"Use the python tool to compute {task}, then tell me the number."
    return number(value)._replace(prompt=prompt)


FAMILIES: dict[str, Callable[[random.Random], Problem]] = {
    "arith": arith,
    "chain": chain,
    "order": order,
    "collatz": collatz,
    "weekday": weekday,
    "count": count,
    "countdown": countdown,
    "spell": spell,
    "alphabet": alphabet,
    "primes": primes,
    "binary": binary,
    "table": table,
    "template": template,
    "fib": fib,
    "powers": powers,
    "tool": tool,
}
AGENT_FAMILIES = ("tool",)  # run as agent episodes with the python tool, not single completions


def problem(family: str, index: int) -> Problem:
    """The `index`th problem of `family`: the same on every machine and every run, and never
    an earlier index's prompt again (a repeat draws again from the same seeded generator)."""
    made = _made.setdefault(family, [])
    while len(made) <= index:
        rng = random.Random(f"doomloop:{family}:{len(made)}")
        seen = {p.prompt for p in made}
        drawn = FAMILIES[family](rng)
        while drawn.prompt in seen:
            drawn = FAMILIES[family](rng)
        made.append(drawn)
    return made[index]


_made: dict[str, list[Problem]] = {}  # each family's problems so far, in index order


# --- checking a reply ---------------------------------------------------------------------------


def answer_ok(output: str, expected: str, check: dict[str, Any]) -> bool:
    """Whether `output` gives the answer, by the problem's `check` rule (module docstring)."""
    kind = check["kind"]
    if kind == "number":
        said = [m.group().replace(",", "") for m in NUMBER.finditer(output)]
        return bool(said) and float(said[-1]) == float(expected)
    if kind == "choice":
        names = check["choices"]
        spots = [(m.start(), c) for c in names for m in re.finditer(rf"\b{c}\b", output, re.I)]
        return bool(spots) and max(spots)[1].lower() == expected.lower()
    if kind == "set":
        said = {int(x) for x in INTEGER.findall(output.replace(",", " "))}
        return {n for n in said if check["lo"] < n < check["hi"]} == set(check["items"])
    items = [str(x).lower() for x in check["items"]]
    if check["of"] == "word":
        items = [w for item in items for w in re.findall(r"[a-z]+", item)]
    if check["of"] == "int":  # "1,024, 2,048" or "101,102,103": either reading may be meant
        return any(in_order(items, tokens_of(output, of)) for of in ("int", "int,"))
    return in_order(items, tokens_of(output, check["of"]))


def tokens_of(output: str, of: str) -> list[str]:
    """The reply's integers, single letters, 0/1 words or words, in order, lowercased."""
    if of == "int":
        return INTEGER.findall(output)
    if of == "int,":  # the same with thousands separators read as such ("1,048,576")
        return INTEGER.findall(THOUSANDS.sub("", output))
    if of == "letter":
        return [t.lower() for t in re.findall(r"(?<![A-Za-z])[A-Za-z](?![A-Za-z])", output)]
    if of == "binary":
        return re.findall(r"(?<![\w.])[01]+(?![\w.])", output)
    return re.findall(r"[a-z]+", output.lower())


def in_order(items: list[str], tokens: list[str]) -> bool:
    """Every item, in order, among `tokens` (others may come between)."""
    found = iter(tokens)
    return all(any(t == item for t in found) for item in items)
