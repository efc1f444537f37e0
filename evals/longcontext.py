"""Long-context cases, generated deterministically: six kinds of question about a long text.

Each case is a long text of plausible filler (log-like lines about invented places and
machines), a question, and its exact answer. Three kinds that one search for the question's
rarest term answers:
- needle: one planted fact somewhere in the text;
- multikey: hundreds of lines of the same shape ("locker K-1043 opens with code 58213"),
  the question asks for one key's value;
- count: lines carrying a marker spread over the whole text; the question asks how many.
Three that it does not (the fixed decomposition of `agent.rlm` shows 3 matches of 1 term):
- aggregate: 6 to 12 records of one tank among hundreds of other tanks' records; the sum of
  its values, or their maximum (never among the tank's first 3 records);
- twostep: a courier carries a parcel, and a line elsewhere says which shelf that parcel is on;
  the question names the courier and asks for the shelf;
- paraphrase: 16 look-alike memos (4 subjects, 4 directions); the question asks for one in
  other words: no word of 4 letters or more in the question occurs in the text.
The same seed gives the same case on every machine. This module makes data; scoring and
running belong to the eval suite.
"""

from __future__ import annotations

import random
import re
from typing import Literal, get_args

from pydantic import BaseModel

Kind = Literal["needle", "multikey", "count", "aggregate", "twostep", "paraphrase"]
KINDS: tuple[Kind, ...] = get_args(Kind)

PLACES = [
    "Marrowdale",
    "Tessingford",
    "Upper Sallow",
    "Quillon Reach",
    "Halvern",
    "Ombrin",
    "Kellworth",
    "Dunmarrow",
    "Ashgrove",
    "Pellicot",
    "Varn Hollow",
    "Greyhithe",
]
THINGS = [
    "pump",
    "gauge",
    "valve",
    "turbine",
    "sluice",
    "relay",
    "beacon",
    "culvert",
    "boiler",
    "filter",
    "meter",
    "compressor",
]
STATES = [
    "was inspected",
    "ran normally",
    "showed a small drift",
    "was cleaned",
    "reported nominal pressure",
    "was recalibrated",
    "idled overnight",
    "was logged",
    "needed no action",
    "passed its weekly check",
]
COLOURS = ["amber", "violet", "copper", "slate", "jade", "crimson"]


class Case(BaseModel):
    id: str
    kind: Kind
    chars: int
    question: str
    answer: str
    text: str


def filler_line(rng: random.Random) -> str:
    return (
        f"Day {rng.randint(1, 365)}: the {rng.choice(COLOURS)} {rng.choice(THINGS)} at "
        f"{rng.choice(PLACES)} {rng.choice(STATES)}."
    )


def make_case(kind: Kind, chars: int, seed: int = 0) -> Case:
    rng = random.Random(f"{kind}:{chars}:{seed}")
    lines: list[str] = []
    size = 0
    while size < chars:
        line = filler_line(rng)
        lines.append(line)
        size += len(line) + 1
    if kind == "needle":
        code = f"{rng.randint(1000, 9999)}-{rng.choice(['ZETA', 'OMRA', 'KILN', 'VESPER'])}"
        vault = f"{rng.choice(['north', 'south', 'east', 'west'])} cistern vault"
        lines.insert(rng.randrange(len(lines)), f"Note: the combination for the {vault} is {code}.")
        question, answer = f"What is the combination for the {vault}?", code
    elif kind == "multikey":
        keys = rng.sample(range(1000, 10000), min(500, max(10, len(lines) // 20)))
        values = {k: str(rng.randint(10000, 99999)) for k in keys}
        for k in keys:
            lines.insert(rng.randrange(len(lines)), f"Locker K-{k} opens with code {values[k]}.")
        target = rng.choice(keys)
        question, answer = f"Which code opens locker K-{target}?", values[target]
    elif kind == "count":
        marker = f"[ALERT {rng.choice(COLOURS)}]"
        count = rng.randint(20, 80) if chars >= 50_000 else rng.randint(3, 9)
        for at in sorted(rng.sample(range(len(lines)), count)):
            lines[at] = f"{marker} {lines[at]}"
        question, answer = f"How many lines are marked {marker}?", str(count)
    else:
        lines, question, answer = MAKERS[kind](rng, lines)
    text = "\n".join(lines)
    return Case(
        id=f"{kind}-{chars}-{seed}",
        kind=kind,
        chars=len(text),
        question=question,
        answer=answer,
        text=text,
    )


# --- the kinds one term search does not answer ---------------------------------------------

ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei"]
CODAS = ["n", "r", "l", "s", "th", "rk", "nd", "x", "m", "sk"]
FIRST_NAMES = ["Brenna", "Osric", "Talia", "Joren", "Mirel", "Cadoc", "Ilse", "Rowan", "Petra"]
SHELF_WORDS = ["ORCA", "LARK", "FERN", "BRAM", "CLOVE", "DUNE", "EMBER", "FLINT", "GROVE", "HAZEL"]


def names(rng: random.Random, n: int, text: str) -> list[str]:
    """`n` invented names, none inside another or inside `text`, so each is found only where
    it was planted."""
    lowered, out = text.lower(), []
    while len(out) < n:
        parts = [rng.choice(ONSETS), rng.choice(VOWELS), rng.choice(ONSETS), rng.choice(VOWELS)]
        name = "".join([*parts, rng.choice(CODAS)]).capitalize()
        low = name.lower()
        if low not in lowered and not any(low in o.lower() or o.lower() in low for o in out):
            out.append(name)
    return out


def scatter(rng: random.Random, lines: list[str], planted: list[str]) -> list[str]:
    """`planted` inserted among `lines` at random places, keeping their order."""
    gaps = sorted(rng.randrange(len(lines) + 1) for _ in planted)
    out, start = [], 0
    for gap, line in zip(gaps, planted, strict=True):
        out += lines[start:gap] + [line]
        start = gap
    return out + lines[start:]


def aggregate(rng: random.Random, lines: list[str]) -> tuple[list[str], str, str]:
    """One tank's 6-12 records among other tanks' (about as many each): a sum or a max."""
    others = min(600, max(24, len(lines) // 15))
    tanks = names(rng, 1 + max(3, others // 8), "\n".join(lines))
    owners = [tanks[0]] * rng.randint(6, 12) + [rng.choice(tanks[1:]) for _ in range(others)]
    rng.shuffle(owners)
    mine = rng.sample(range(100, 1000), owners.count(tanks[0]))
    top = mine.index(max(mine))
    if top < 3:  # the maximum is never among the first 3 matches a search shows
        other = rng.randrange(3, len(mine))
        mine[top], mine[other] = mine[other], mine[top]
    values = iter(mine)
    records = [
        f"Tally: tank {o} logged {next(values) if o == tanks[0] else rng.randint(100, 999)} litres."
        for o in owners
    ]
    if rng.random() < 0.5:
        question = f"What is the total of all litres logged for tank {tanks[0]}?"
        answer = sum(mine)
    else:
        question = f"What is the largest number of litres logged in one entry for tank {tanks[0]}?"
        answer = max(mine)
    return scatter(rng, lines, records), question, str(answer)


def twostep(rng: random.Random, lines: list[str]) -> tuple[list[str], str, str]:
    """Couriers carry parcels, parcels wait on shelves: courier -> parcel -> shelf."""
    n = min(400, max(8, len(lines) // 20))
    surnames = names(rng, n, "\n".join(lines))
    parcels = rng.sample(range(1000, 10000), n)
    shelves = rng.sample([f"{d}-{w}" for d in range(10, 100) for w in SHELF_WORDS], n)
    couriers = [f"{rng.choice(FIRST_NAMES)} {s}" for s in surnames]
    planted = [f"Courier {c} carries parcel P-{p}." for c, p in zip(couriers, parcels, strict=True)]
    planted += [f"Parcel P-{p} waits on shelf {s}." for p, s in zip(parcels, shelves, strict=True)]
    target = rng.randrange(n)
    while True:  # the two lines apart, so no search window shows both
        rng.shuffle(planted)
        out = scatter(rng, lines, planted)
        hops = [i for i, ln in enumerate(out) if f"P-{parcels[target]}" in ln]
        if abs(hops[0] - hops[1]) > 6:
            break
    question = f"On which shelf is the parcel that courier {couriers[target]} carries?"
    return out, question, shelves[target]


DIRECTIONS = {"north": "northern", "south": "southern", "east": "eastern", "west": "western"}
# (memo in the text, the same question in other words): no shared word of 4+ letters.
MEMOS = [
    (
        "Memo: the {d} cistern vault opens with combination {a}.",
        "What secret sequence unlocks the strongroom under the {q} reservoir?",
    ),
    (
        "Memo: the {d} gate guard answers only to the password {a}.",
        "Which watchword must be given to the sentry at the {q} entrance?",
    ),
    (
        "Memo: the {d} depot stores {a} spare tyres.",
        "How many backup wheels does the {q} storehouse keep?",
    ),
    (
        "Memo: the {d} lighthouse is kept by {a}.",
        "Who tends the {q} coastal signal tower?",
    ),
]
ASKED_WORDS = re.compile(r"[a-z]{4,}")
COMMON = {"what", "which", "does", "many", "must", "given", "under", "only", "with", "that"}


def shared_words(question: str, text: str) -> set[str]:
    """The question's words of 4+ letters (common ones aside) that occur in the text."""
    asked = set(ASKED_WORDS.findall(question.lower())) - COMMON
    return asked & set(ASKED_WORDS.findall(text.lower()))


def paraphrase(rng: random.Random, lines: list[str]) -> tuple[list[str], str, str]:
    """16 memos (4 subjects x 4 directions); one asked for in words the text never uses."""
    people = names(rng, 8, "\n".join(lines))
    answers = [
        [f"{rng.randint(1000, 9999)}-{rng.choice(['ZETA', 'OMRA', 'KILN'])}" for _ in DIRECTIONS],
        [f"{w}-{rng.randint(10, 99)}" for w in rng.sample(["KESTREL", "MARLIN", "OSPREY"], 3)]
        + [f"HERON-{rng.randint(10, 99)}"],
        [str(n) for n in rng.sample(range(400, 1000), len(DIRECTIONS))],  # > any day
        [f"{people[i]} {people[i + 4]}" for i in range(len(DIRECTIONS))],
    ]
    rng.shuffle(answers[1])
    memos = [(m, d, answers[i][j]) for i, m in enumerate(MEMOS) for j, d in enumerate(DIRECTIONS)]
    planted = [memo[0].format(d=d, a=a) for memo, d, a in memos]
    rng.shuffle(planted)
    memo, direction, answer = rng.choice(memos)
    question = memo[1].format(q=DIRECTIONS[direction])
    out = scatter(rng, lines, planted)
    if shared := shared_words(question, "\n".join(out)):
        raise AssertionError(f"paraphrase question shares {sorted(shared)} with its text")
    return out, question, answer


MAKERS = {"aggregate": aggregate, "twostep": twostep, "paraphrase": paraphrase}
