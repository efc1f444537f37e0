"""Units and quantities as a driver says them: "30 km", "100 km/h", "6.5 L/100 km", "1 h 15 min".

A table of units (name patterns, dimension, conversion to and from the dimension's base) and
the readers the in-car pre-processor (`agent.incar`) needs: every "number unit" in a sentence
(`quantities`), unit names said without a number ("... in miles?", `bare_units`), durations
("an hour and a half") folded into one quantity, and the number formatting of its answers.
Fuel economy is one dimension in km per litre, so L/100 km and mpg convert both ways.

Not here: deciding what a request asks or answering it (`agent.incar`), or any guessing: a
name that could be two units ("gallon" unsaid, "degrees" with no scale) is reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

GAL_US, GAL_IMP, MILE = 3.785411784, 4.54609, 1.609344  # litres, litres, km


class Unit(NamedTuple):
    key: str
    dim: str  # length, speed, volume, temp, pressure, mass, economy, time
    pattern: str  # its names, lowercased text; ends are added by `unit_re`
    to_base: Callable[[float], float]
    from_base: Callable[[float], float]
    label: str  # how an answer writes it, after the number


def _scale(factor: float) -> tuple[Callable[[float], float], Callable[[float], float]]:
    return (lambda v: v * factor), (lambda v: v / factor)


def _unit(key: str, dim: str, pattern: str, factor: float, label: str) -> Unit:
    return Unit(key, dim, pattern, *_scale(factor), label)


# Order matters: the longer name wins where two start at the same place ("km/h" before "km").
# fmt: off
UNITS: list[Unit] = [
    _unit("kmh", "speed", r"km/h|km/hr|kmh|kph|kmph|km\s*per\s*hour|kilomet(?:re|er)s?\s*(?:per|an|a)\s*hour", 1.0, "km/h"),  # noqa: E501
    _unit("mph", "speed", r"mph|mi/h|miles?\s*(?:per|an|a)\s*hour", MILE, "mph"),
    _unit("l100", "economy", r"(?:l|lit(?:re|er)s?)\s*(?:/|per|every|for each)\s*(?:100|a hundred|one hundred)\s*(?:km|kilomet(?:re|er)s?)", 1.0, "L/100 km"),  # noqa: E501
    _unit("mpg_imp", "economy", r"(?:imperial|uk|british)\s*(?:mpg|miles?\s*per\s*gallon)|mpg\s*\((?:imperial|uk)\)", MILE / GAL_IMP, "mpg (imperial)"),  # noqa: E501
    _unit("mpg", "economy", r"(?:us\s*|u\.s\.\s*)?(?:mpg|miles?\s*per\s*gallon)", MILE / GAL_US, "mpg"),  # noqa: E501
    _unit("kml", "economy", r"km/l|kilomet(?:re|er)s?\s*per\s*lit(?:re|er)", 1.0, "km per litre"),
    _unit("km", "length", r"kilomet(?:re|er)s?|kms?|klicks?", 1000.0, "km"),
    _unit("mi", "length", r"miles?|mi", MILE * 1000, "miles"),
    _unit("m", "length", r"met(?:re|er)s?|m", 1.0, "m"),
    _unit("cm", "length", r"centimet(?:re|er)s?|cm", 0.01, "cm"),
    _unit("ft", "length", r"feet|foot|ft", 0.3048, "feet"),
    _unit("in", "length", r"inch(?:es)?", 0.0254, "inches"),
    _unit("yd", "length", r"yards?|yds?", 0.9144, "yards"),
    _unit("usgal", "volume", r"(?:us|u\.s\.|american)\s*(?:gallons?|gal)", GAL_US, "US gallons"),
    _unit("impgal", "volume", r"(?:imperial|uk|british)\s*(?:gallons?|gal)", GAL_IMP, "imperial gallons"),  # noqa: E501
    _unit("gal", "volume", r"gallons?|gal", GAL_US, "gallons"),  # unsaid: US or imperial
    _unit("l", "volume", r"lit(?:re|er)s?|ltrs?|l", 1.0, "litres"),
    _unit("ml", "volume", r"millilit(?:re|er)s?|ml", 0.001, "ml"),
    Unit("c", "temp", r"(?:°\s*|degrees?\s*|deg\s*)?(?:celsius|centigrade|c)", lambda v: v, lambda v: v, "°C"),  # noqa: E501
    Unit("f", "temp", r"(?:°\s*|degrees?\s*|deg\s*)?(?:fahrenheit|f)", lambda v: (v - 32) * 5 / 9, lambda v: v * 9 / 5 + 32, "°F"),  # noqa: E501
    Unit("deg", "temp", r"°|degrees?", lambda v: v, lambda v: v, "degrees"),  # no scale said
    _unit("kpa", "pressure", r"kpa|kilopascals?", 1000.0, "kPa"),
    _unit("psi", "pressure", r"psi|pounds?\s*per\s*square\s*inch", 6894.757293, "psi"),
    _unit("bar", "pressure", r"bars?", 100000.0, "bar"),
    _unit("kg", "mass", r"kilograms?|kilos?|kgs?", 1.0, "kg"),
    _unit("lb", "mass", r"pounds?|lbs?", 0.45359237, "lb"),
    _unit("t", "mass", r"tonnes?|metric tons?", 1000.0, "tonnes"),
    _unit("h", "time", r"hours?|hrs?|h", 3600.0, "hours"),
    _unit("min", "time", r"minutes?|mins?", 60.0, "minutes"),
    _unit("s", "time", r"seconds?|secs?", 1.0, "seconds"),
]
# fmt: on
BY_KEY = {u.key: u for u in UNITS}
# Economy is km per litre in the base; L/100 km is its reciprocal, not a scale.
BY_KEY["l100"] = BY_KEY["l100"]._replace(to_base=lambda v: 100 / v, from_base=lambda v: 100 / v)

WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "a hundred": 100, "one hundred": 100,
}  # fmt: skip
NUMBER = (r"(?:minus\s+|-|−)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
          r"|(?<![\w-])(?:" + "|".join(sorted(WORDS, key=len, reverse=True)) + r")")  # fmt: skip
END = r"(?![\w/°])"
PER_HUNDRED = re.compile(r"\b(?:l|lit(?:re|er)s?)\s*(?:/|per|every|for each)\s*$")


class Quantity(NamedTuple):
    value: float
    unit: str  # a key of BY_KEY
    start: int
    end: int


def unit_re(unit: Unit) -> str:
    return rf"(?:{unit.pattern}){END}"


ANY_UNIT = re.compile("|".join(f"(?P<{u.key}>{unit_re(u)})" for u in UNITS))


def normalize(text: str) -> str:
    """Lowercase, straight quotes, durations said in words as minutes ("half an hour")."""
    text = text.lower().replace("’", "'").replace("−", "-").replace("\u00a0", " ")
    spoken = [
        (r"\b(?:an?|one) hour and a half\b", "90 minutes"),
        (r"\b(?:an?|one) and a half hours?\b", "90 minutes"),
        (r"\b(?:an?|one) hour and a quarter\b", "75 minutes"),
        (r"\bthree quarters of an hour\b", "45 minutes"),
        (r"\bhalf an hour\b", "30 minutes"),
        (r"\b(?:a )?quarter of an hour\b", "15 minutes"),
    ]
    for pattern, minutes in spoken:
        text = re.sub(pattern, minutes, text)
    return re.sub(r"\b(\d+) and a half (hours?|miles?|km|litres?|liters?|gallons?)\b",
                  lambda m: f"{m[1]}.5 {m[2]}", text)  # fmt: skip


def to_number(token: str) -> float:
    token = token.strip().replace(",", "")
    negative = token.startswith(("minus", "-"))
    token = re.sub(r"^(?:minus\s+|-)", "", token)
    value = float(WORDS[token]) if token in WORDS else float(token)
    return -value if negative else value


def quantities(text: str) -> list[Quantity]:
    """Every number directly followed by a unit name in normalized `text`, in order; "1 h 15
    min" is one quantity of 75 minutes. A number with no unit is not a quantity."""
    found: list[Quantity] = []
    for m in re.finditer(rf"(?<![\w.,])({NUMBER})(?![\d.])", text):
        if (found and m.start() < found[-1].end) or PER_HUNDRED.search(text[: m.start()]):
            continue  # the "100" of "6.5 L/100 km" or of "in litres per 100 km"
        after = re.match(r"[\s-]*", text[m.end() :])
        unit = ANY_UNIT.match(text, m.end() + (after.end() if after else 0))
        if unit is None:
            continue
        if m[1].strip() in WORDS and unit.lastgroup in ("m", "l", "c", "f", "h"):
            continue  # "a m..." or "one l" is not a quantity anyone says
        key = str(unit.lastgroup)
        value = to_number(m[1])
        last = found[-1] if found else None
        if last and BY_KEY[last.unit].dim == "time" == BY_KEY[key].dim and key != last.unit and \
                re.fullmatch(r"[\s,]*(?:and\s+)?", text[last.end : m.start()]):  # fmt: skip
            seconds = BY_KEY[last.unit].to_base(last.value) + BY_KEY[key].to_base(value)
            found[-1] = Quantity(seconds / 60, "min", last.start, unit.end())
            continue
        found.append(Quantity(value, key, m.start(), unit.end()))
    return found


def bare_units(text: str, taken: list[Quantity]) -> list[tuple[str, int, int]]:
    """Unit names said without a number ("in miles", "how many litres"), with their place; a
    name of one or two letters only right after in / to / into / as / many / much."""
    spans = [(q.start, q.end) for q in taken]
    found: list[tuple[str, int, int]] = []
    for m in re.finditer(rf"(?<![\w/])(?:{ANY_UNIT.pattern})", text):
        if any(s <= m.start() < e for s, e in spans):
            continue
        key = str(m.lastgroup)
        if len(m.group()) <= 2 and not re.search(
            r"\b(?:in|to|into|as|many|much)\s*$", text[: m.start()]
        ):
            continue  # "m", "l", "mi", "km" alone are words or letters more often than units
        found.append((key, m.start(), m.end()))
    return found


def fmt(value: float, decimals: int | None = None) -> str:
    """A figure as an answer gives it: two decimals under 10, one under 1,000, else whole."""
    if decimals is None:
        decimals = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def say(value: float, unit: str) -> str:
    """ "18.6 miles", "68 °F", "1 hour 30 minutes"."""
    if unit == "min":
        return duration(value)
    label = BY_KEY[unit].label
    if unit in ("c", "f", "deg"):
        return f"{fmt(value, 1)} {label}"
    shown = fmt(value)
    if shown == "1" and label.endswith("s"):
        label = "foot" if label == "feet" else label.removesuffix("es" if unit == "in" else "s")
    return f"{shown} {label}"


def duration(minutes: float) -> str:
    whole = round(minutes)
    if whole < 60:
        return f"{fmt(minutes, 1) if minutes < 10 else whole} minutes"
    hours, rest = divmod(whole, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    return text + (f" {rest} minute{'s' if rest != 1 else ''}" if rest else "")
