"""The Python-tool tasks, generated: arithmetic, string and list questions where the right move
is one `python` call and then the answer, each with its checkable answer and reference code.

Eighteen families in three kinds (`KINDS`): arithmetic (products, sums of powers, factorials,
powers and remainders, gcd/lcm, digit sums, range sums, averages), string (vowels, letter
counts, lengths, upper/title case, reversed strings, reversed word order) and list (sorting,
largest/smallest, distinct items, sums). Each family draws its values and one of several
phrasings (most ask for python by name, some do not) from a `random.Random` seeded with the
task's own key, so the set is the same on every machine and run.

A task's id is `pytools-<family>-<index>`; its split is `evals.common.split_of(id)`, the hash
every suite and the trainer's guard use. A family takes the first `PER_FAMILY[split]` indexes
that hash into each split (an index whose split is full is skipped, not drawn), so the sizes
are exact and a larger quota only appends. No task repeats an earlier one's computation (its
reference code) or question, so no question is in both splits; and no question is, read as an
answer, right (`evals.pytasks_check.judge`): a redraw until so (no list already sorted, no
palindrome, no answer that is a number of the question).

Not here: scoring (`evals.pytasks_check`), running the agent (`evals.pytasks`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from functools import cache

from evals.common import Split, split_of
from evals.pytasks_check import Check, Kind, Task, judge

KINDS: tuple[Kind, ...] = ("arithmetic", "string", "list")
PER_FAMILY = {"train": 20, "test": 7}  # 18 families: 360 train, 126 test


Draw = tuple[str, str, str]  # question, code, answer (as printed)

# fmt: off
WORDS = [
    "quarantine", "elephant", "umbrella", "strawberry", "mountain", "calendar", "keyboard",
    "volcano", "adventure", "butterfly", "chocolate", "dinosaur", "education", "festival",
    "horizon", "journey", "kangaroo", "lighthouse", "marathon", "notebook", "orchestra",
    "pineapple", "question", "rainbow", "satellite", "telescope", "universe", "vacation",
    "waterfall", "xylophone", "yesterday", "avocado", "blueberry", "carnival", "dolphin",
    "envelope", "fireplace", "gardener", "hamburger", "invisible", "jellyfish", "kitchen",
    "library", "magnet", "necklace", "octopus", "parachute", "restaurant", "sandwich",
    "tomorrow", "violin", "windmill", "alphabet", "bicycle", "cinnamon", "engineer",
    "flamingo", "grapefruit", "hurricane", "labyrinth", "meadow", "nightingale", "operation",
    "penguin", "radiator", "spaghetti", "tornado", "unicorn", "vegetable", "wilderness",
    "accordion", "broccoli", "cucumber", "dragonfly", "evergreen", "frequency", "geography",
    "harmonica", "mississippi", "banana", "committee", "assessment", "bookkeeper", "coffee",
]
SHORT = [
    "cat", "dog", "sun", "moon", "tree", "river", "stone", "cloud", "green", "blue", "small",
    "happy", "bright", "cold", "warm", "light", "dark", "fast", "slow", "old", "new", "big",
    "red", "quiet", "brown", "lazy", "quick", "house", "bread", "rain", "snow", "wind", "fire",
    "ocean", "paper", "glass", "music", "garden", "window", "summer", "winter", "silver",
]
ITEMS = [
    "apple", "pear", "plum", "fig", "kiwi", "lime", "mango", "peach", "grape", "melon",
    "cherry", "lemon", "olive", "date", "guava", "papaya", "red", "blue", "green", "amber",
]
# What a user would type, per kind of draw: `{name}`s are filled by the draw's values.
PHRASINGS: dict[str, list[str]] = {
    "mul_add": ["Compute {a} * {b} + {c} with python and tell me the result.",
                "Use python to work out {a} times {b} plus {c}.", "What is {a} * {b} + {c}?"],
    "mul": ["Compute {a} * {b} with python and tell me the result.",
            "Use python to multiply {a} by {b}.", "What is {a} times {b}? Use the python tool.",
            "What is {a} * {b}?"],
    "sum_powers": ["What is the sum of the {name} of 1..{n}? Use python.",
                   "Use python to add up k**{p} for k from 1 to {n}.",
                   "Compute 1^{p} + 2^{p} + ... + {n}^{p} with python and give me the number.",
                   "What is the sum of the {name} of the integers from 1 to {n}?"],
    "factorial": ["What is {n} factorial? Use python.", "Use python to compute {n}!.",
                  "Compute the factorial of {n} with the python tool."],
    "fact_digits": ["How many digits does {n}! have? Use python.",
                    "Use python to count the digits of {n} factorial."],
    "fact_zeros": ["How many trailing zeros does {n}! have? Use python.",
                   "Use python to count the zeros at the end of {n} factorial."],
    "power": ["What is {a}**{b} exactly? Use python.",
              "Use python to compute {a} to the power {b}."],
    "power_mod": ["What is {a}**{b} mod {m}? Use python.",
                  "Use python to compute pow({a}, {b}, {m}).",
                  "Compute the remainder of {a} to the power {b} divided by {m} with python.",
                  "What is {a}^{b} modulo {m}?"],
    "gcd": ["What is the greatest common divisor of {a} and {b}? Use python.",
            "Use python to find gcd({a}, {b}).",
            "Compute the GCD of {a} and {b} with the python tool."],
    "lcm": ["What is the least common multiple of {a} and {b}? Use python.",
            "Use python to find lcm({a}, {b}).", "What is the LCM of {a} and {b}?"],
    "digits_pow": ["What is the sum of the digits of 2**{k}? Use python.",
                   "Use python to add up the digits of 2 to the power {k}."],
    "digits": ["Use python to compute the digit sum of {n}.",
               "What is the sum of the digits of {n}? Use python.", "Add up the digits of {n}."],
    "range": ["Use python to sum the integers from {a} to {b} inclusive.",
              "What is {a} + {next} + ... + {b}? Use python.",
              "What is the sum of all whole numbers from {a} through {b}?"],
    "multiples": ["Use python to sum all the multiples of {p} below {n}.",
                  "What is the sum of the positive multiples of {p} less than {n}? Use python."],
    "divisible": ["How many numbers from 1 to {n} are divisible by {p}? Use python.",
                  "Use python to count the integers between 1 and {n} that {p} divides."],
    "average": ["What is the average of {xs}? Use python and round to 2 decimals.",
                "Use python to compute the mean of {xs}, rounded to two decimal places.",
                "Find the arithmetic mean of the numbers {xs} (2 decimals)."],
    "vowels": ["Use python to count the vowels in '{s}'.",
               "How many vowels (a, e, i, o, u) are in '{s}'? Use python.",
               "Count the vowels in the phrase '{s}' with the python tool.",
               "How many vowels does '{s}' have?"],
    "letter": ["How many times does the letter '{c}' appear in '{s}'? Use python.",
               "Use python to count the '{c}' characters in '{s}'.",
               "Count how often '{c}' occurs in '{s}'."],
    "length": ["Use python to find the length of the string '{s}'.",
               "How many characters (spaces included) are in '{s}'? Use python.",
               "What is len('{s}')?"],
    "upper": ["Convert '{s}' to uppercase using python.",
              "Use python to make '{s}' all caps and tell me the result.",
              "What is '{s}' in upper case?"],
    "title": ["Use python to capitalize every word of '{s}'.",
              "Convert '{s}' to title case with python."],
    "reverse": ["Use python to reverse the string '{s}'.",
                "What is '{s}' spelled backwards? Use python.",
                "Reverse the characters of '{s}' with the python tool.", "Write '{s}' backwards."],
    "reverse_words": ["Reverse the order of the words in '{s}' using python.",
                      "Use python to put the words of '{s}' in reverse order.",
                      "Say the words of '{s}' from last to first."],
    "sort_words": ["Use python to sort these words alphabetically: {w}.",
                   "Sort {w} in alphabetical order with python."],
    "sort": ["Sort {xs} in {o} order using python.", "Use python to sort the list {xs} ({o}).",
             "Put these numbers in {o} order: {xs}."],
    "extreme": ["What is the {w} number in {xs}? Use python.",
                "Use python to find the {w} value of {xs}.", "Which is the {w} of {xs}?"],
    "distinct": ["How many distinct items are in {xs}? Use python.",
                 "Use python to count the unique values in {xs}.",
                 "How many different words does this list have: {xs}?"],
    "list_sum": ["What is the sum of {xs}? Use python.", "Use python to add up the numbers {xs}.",
                 "Add these numbers together: {xs}."],
}
# fmt: on


def _phrase(rng: random.Random, low: int = 2, high: int = 4) -> str:
    return " ".join(rng.sample(SHORT + WORDS, rng.randint(low, high)))


def _ints(rng: random.Random, low: int, high: int, n_low: int = 5, n_high: int = 9) -> list[int]:
    return [rng.randint(low, high) for _ in range(rng.randint(n_low, n_high))]


def _say(rng: random.Random, phrasing: str, **values: object) -> str:
    return rng.choice(PHRASINGS[phrasing]).format(**values)


# --- arithmetic -------------------------------------------------------------------------------


def multiply(rng: random.Random) -> Draw:
    a, b = rng.randint(12, 999), rng.randint(12, 9999)
    if rng.random() < 0.3:
        c = rng.randint(2, 999)
        return _say(rng, "mul_add", a=a, b=b, c=c), f"print({a} * {b} + {c})", str(a * b + c)
    return _say(rng, "mul", a=a, b=b), f"print({a} * {b})", str(a * b)


def sum_powers(rng: random.Random) -> Draw:
    n, p = rng.randint(10, 150), rng.choice([2, 2, 3])
    q = _say(rng, "sum_powers", n=n, p=p, name={2: "squares", 3: "cubes"}[p])
    return (
        q,
        f"print(sum(k ** {p} for k in range(1, {n} + 1)))",
        str(sum(k**p for k in range(n + 1))),
    )


def factorial(rng: random.Random) -> Draw:
    form = rng.randrange(3)
    if form == 0:
        n = rng.randint(8, 20)
        code = f"import math\nprint(math.factorial({n}))"
        return _say(rng, "factorial", n=n), code, str(math.factorial(n))
    if form == 1:
        n = rng.randint(25, 300)
        code = f"import math\nprint(len(str(math.factorial({n}))))"
        return _say(rng, "fact_digits", n=n), code, str(len(str(math.factorial(n))))
    n = rng.randint(25, 1000)
    text = str(math.factorial(n))
    code = f"import math\ns = str(math.factorial({n}))\nprint(len(s) - len(s.rstrip('0')))"
    return _say(rng, "fact_zeros", n=n), code, str(len(text) - len(text.rstrip("0")))


def power_mod(rng: random.Random) -> Draw:
    if rng.random() < 0.3:
        a, b = rng.randint(2, 9), rng.randint(12, 40)
        return _say(rng, "power", a=a, b=b), f"print({a} ** {b})", str(a**b)
    a, b, m = rng.randint(2, 99), rng.randint(10, 999), rng.randint(97, 99999)
    return _say(rng, "power_mod", a=a, b=b, m=m), f"print(pow({a}, {b}, {m}))", str(pow(a, b, m))


def gcd_lcm(rng: random.Random) -> Draw:
    g = rng.randint(2, 60)
    a, b = g * rng.randint(3, 300), g * rng.randint(3, 300)
    name = "gcd" if rng.random() < 0.5 else "lcm"
    value = math.gcd(a, b) if name == "gcd" else math.lcm(a, b)
    return _say(rng, name, a=a, b=b), f"import math\nprint(math.{name}({a}, {b}))", str(value)


def digit_sum(rng: random.Random) -> Draw:
    if rng.random() < 0.5:
        k = rng.randint(50, 400)
        code = f"print(sum(int(d) for d in str(2 ** {k})))"
        return _say(rng, "digits_pow", k=k), code, str(sum(map(int, str(2**k))))
    n = rng.randint(10**9, 10**14)
    code = f"print(sum(int(d) for d in str({n})))"
    return _say(rng, "digits", n=n), code, str(sum(map(int, str(n))))


def range_sum(rng: random.Random) -> Draw:
    form = rng.randrange(3)
    if form == 0:
        a = rng.randint(1, 500)
        b = a + rng.randint(50, 5000)
        q = _say(rng, "range", a=a, b=b, next=a + 1)
        return q, f"print(sum(range({a}, {b} + 1)))", str(sum(range(a, b + 1)))
    p, n = rng.randint(3, 13), rng.randint(100, 5000)
    if form == 1:
        q = _say(rng, "multiples", p=p, n=n)
        return q, f"print(sum(range({p}, {n}, {p})))", str(sum(range(p, n, p)))
    q = _say(rng, "divisible", p=p, n=n)
    return q, f"print(sum(1 for k in range(1, {n} + 1) if k % {p} == 0))", str(n // p)


def average(rng: random.Random) -> Draw:
    xs = _ints(rng, 10, 999)
    mean = round(sum(xs) / len(xs), 2)
    return _say(rng, "average", xs=xs), f"xs = {xs}\nprint(round(sum(xs) / len(xs), 2))", str(mean)


# --- strings -----------------------------------------------------------------------------------


def vowels(rng: random.Random) -> Draw:
    s = rng.choice(WORDS) if rng.random() < 0.5 else _phrase(rng)
    count = sum(ch in "aeiou" for ch in s)
    return _say(rng, "vowels", s=s), f"print(sum(ch in 'aeiou' for ch in '{s}'))", str(count)


def letter_count(rng: random.Random) -> Draw:
    s = _phrase(rng, 2, 5)
    c = rng.choice(sorted(set(s.replace(" ", ""))))
    return _say(rng, "letter", c=c, s=s), f"print('{s}'.count('{c}'))", str(s.count(c))


def length(rng: random.Random) -> Draw:
    s = _phrase(rng, 2, 6)
    return _say(rng, "length", s=s), f"print(len('{s}'))", str(len(s))


def case(rng: random.Random) -> Draw:
    s = _phrase(rng)
    if rng.random() < 0.6:
        return _say(rng, "upper", s=s), f"print('{s}'.upper())", s.upper()
    return _say(rng, "title", s=s), f"print('{s}'.title())", s.title()


def reverse_string(rng: random.Random) -> Draw:
    s = rng.choice(WORDS) if rng.random() < 0.6 else _phrase(rng, 2, 2)
    return _say(rng, "reverse", s=s), f"print('{s}'[::-1])", s[::-1]


def reverse_words(rng: random.Random) -> Draw:
    s = _phrase(rng, 3, 6)
    code = f"print(' '.join(reversed('{s}'.split())))"
    return _say(rng, "reverse_words", s=s), code, " ".join(reversed(s.split()))


# --- lists -------------------------------------------------------------------------------------


def sort(rng: random.Random) -> Draw:
    if rng.random() < 0.35:
        words = rng.sample(ITEMS, rng.randint(4, 7))
        q = _say(rng, "sort_words", w=", ".join(words))
        return q, f"print(', '.join(sorted({words})))", ", ".join(sorted(words))
    xs = _ints(rng, -50, 999, 5, 8)
    down = rng.random() < 0.4
    q = _say(rng, "sort", xs=xs, o="descending" if down else "ascending")
    code = f"print(', '.join(map(str, sorted({xs}{', reverse=True' if down else ''}))))"
    return q, code, ", ".join(map(str, sorted(xs, reverse=down)))


def extreme(rng: random.Random) -> Draw:
    xs = _ints(rng, -999, 9999, 6, 12)
    big = rng.random() < 0.5
    q = _say(rng, "extreme", w="largest" if big else "smallest", xs=xs)
    return q, f"print({'max' if big else 'min'}({xs}))", str(max(xs) if big else min(xs))


def distinct(rng: random.Random) -> Draw:
    pool = rng.sample(ITEMS, rng.randint(3, 8))
    xs = [rng.choice(pool) for _ in range(rng.randint(8, 14))]
    return _say(rng, "distinct", xs=xs), f"print(len(set({xs})))", str(len(set(xs)))


def list_sum(rng: random.Random) -> Draw:
    xs = _ints(rng, -500, 5000, 6, 12)
    return _say(rng, "list_sum", xs=xs), f"print(sum({xs}))", str(sum(xs))


# --- the set -----------------------------------------------------------------------------------

Family = tuple[Kind, Check, Callable[[random.Random], Draw]]
# In this order, so that interleaving families also interleaves kinds.
FAMILIES: dict[str, Family] = {
    "multiply": ("arithmetic", "int", multiply),
    "vowels": ("string", "int", vowels),
    "sort": ("list", "list", sort),
    "sum_powers": ("arithmetic", "int", sum_powers),
    "case": ("string", "text", case),
    "extreme": ("list", "int", extreme),
    "factorial": ("arithmetic", "int", factorial),
    "letter_count": ("string", "int", letter_count),
    "distinct": ("list", "int", distinct),
    "power_mod": ("arithmetic", "int", power_mod),
    "reverse_string": ("string", "text", reverse_string),
    "list_sum": ("list", "int", list_sum),
    "gcd_lcm": ("arithmetic", "int", gcd_lcm),
    "length": ("string", "int", length),
    "digit_sum": ("arithmetic", "int", digit_sum),
    "reverse_words": ("string", "text", reverse_words),
    "range_sum": ("arithmetic", "int", range_sum),
    "average": ("arithmetic", "float", average),
}
FLOAT_TOL = 0.01  # averages are asked to 2 decimals: the unrounded mean is within this too


def make_task(family: str, index: int, draw: Draw) -> Task:
    kind, check, _ = FAMILIES[family]
    question, code, answer = draw
    # A list in the question is quoted by right answers ("the largest in [..] is 9"): the
    # checker reads past it, so picking from it is not given away by quoting it.
    echo = [question[question.index("[") : question.index("]") + 1]] if "[" in question else []
    return Task(
        id=f"pytools-{family}-{index}",
        family=family,
        kind=kind,
        question=question,
        answer=answer,
        check=check,
        tol=FLOAT_TOL if check == "float" else 0.0,
        case_sensitive=family == "case",
        echo=echo,
        code=code,
    )


def family_tasks(family: str) -> Iterator[Task]:
    """Every task of one family, index by index, each split up to its quota. A draw that
    repeats an earlier computation or question, or that its own question answers, is drawn
    again from the same seeded generator."""
    left = dict(PER_FAMILY)
    seen: set[str] = set()
    for index in range(10_000):
        if not any(left.values()):
            return
        split = split_of(f"pytools-{family}-{index}")
        if not left[split]:
            continue
        rng = random.Random(f"pytools:{family}:{index}")
        while True:
            task = make_task(family, index, FAMILIES[family][2](rng))
            if not {task.code, task.question} & seen and not judge(task, task.question)[0]:
                break
        seen |= {task.code, task.question}
        left[split] -= 1
        yield task
    raise RuntimeError(f"family {family} cannot fill its quota {PER_FAMILY}")


@cache
def _all() -> tuple[Task, ...]:
    return tuple(t for family in FAMILIES for t in family_tasks(family))


def tasks(split: Split) -> list[Task]:
    """The tasks of `split`, family by family in index order."""
    return [t for t in _all() if split == "all" or split_of(t.id) == split]
