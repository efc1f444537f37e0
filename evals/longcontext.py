"""Long-context cases, generated deterministically: a needle, one key among look-alikes, a count.

Each case is a long text of plausible filler (log-like lines about invented places and
machines), a question, and its exact answer. Three kinds:
- needle: one planted fact somewhere in the text;
- multikey: hundreds of lines of the same shape ("locker K-1043 opens with code 58213"),
  the question asks for one key's value;
- count: lines carrying a marker spread over the whole text; the question asks how many.
The same seed gives the same case on every machine. This module makes data; scoring and
running belong to the eval suite.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel

Kind = Literal["needle", "multikey", "count"]

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
    else:
        marker = f"[ALERT {rng.choice(COLOURS)}]"
        count = rng.randint(20, 80) if chars >= 50_000 else rng.randint(3, 9)
        for at in sorted(rng.sample(range(len(lines)), count)):
            lines[at] = f"{marker} {lines[at]}"
        question, answer = f"How many lines are marked {marker}?", str(count)
    text = "\n".join(lines)
    return Case(
        id=f"{kind}-{chars}-{seed}",
        kind=kind,
        chars=len(text),
        question=question,
        answer=answer,
        text=text,
    )
