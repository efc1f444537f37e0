"""The in-car pre-processor: conversions and trip arithmetic answered exactly, before the model.

A 0.5B model converts units and divides badly ("30 km is 52.8 miles"), so offline mode first
tries `answer`: it reads the question's quantities (`agent.units`) and, when they make one
request it understands, computes the figure and says it in one short sentence:
- a conversion: one quantity and one unit asked for, of the same dimension ("30 km in
  miles", "how many litres is 10 gallons": a gallon not said to be US or imperial gets both);
- trip arithmetic from a pair of quantities: distance and speed give the time, speed and time
  the distance, distance and time the average speed, fuel and consumption the range, distance
  and consumption the fuel, a price per litre (or gallon) and an amount the cost (with a
  distance and a consumption, the trip's fuel cost), fuel used and distance the consumption
  (when asked for);
- a bare sum: "what is 12 times 7", "15% of 80".
Anything else, or anything left over (a number with no unit it can place, a unit asked for
that the figure cannot be given in, two quantities it cannot pair), returns None and the model
answers as before. `agent.incar.units` (settings) turns it off.

`offline_answer`, the hook offline mode calls, also asks `agent.controls` (requests to operate
the car, phone or radio), `agent.dashboard` (warning lights) and `agent.distraction` (screen use
while driving) when the figure is not for it.

Not here: the unit table and reading quantities (`agent.units`), running the episode (the
offline hook in `agent.loop`), facts or safety (the model and its system prompt).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable

from agent import controls, dashboard, distraction
from agent.settings import Settings
from agent.units import (
    BY_KEY,
    NUMBER,
    Quantity,
    bare_units,
    duration,
    fmt,
    normalize,
    quantities,
    say,
    to_number,
)

ASKING = re.compile(r"\?|^(?:convert|calculate|compute|work out|tell me|translate)\b"
                    r"|\b(?:how|what|what's|whats|which)\b")  # fmt: skip
MAX_WORDS = 45  # a longer message is a story, not a request to convert
CURRENCY = {"€": "euros", "$": "dollars", "£": "pounds", "eur": "euros", "euro": "euros",
            "euros": "euros", "usd": "dollars", "dollar": "dollars", "dollars": "dollars",
            "gbp": "pounds", "pound": "pounds", "pounds": "pounds", "quid": "pounds"}  # fmt: skip
PRICE = re.compile(
    r"(?P<sym>[€$£])?\s*(?P<num>" + NUMBER + r")\s*(?P<cur>euros?|dollars?|pounds?|quid|eur|usd|"
    r"gbp)?\s*(?:per|a|an|/|for (?:a|one|each|every)|each)\s*(?P<unit>lit(?:re|er)s?|l|"
    r"(?:us |imperial |uk )?gallons?|gal)(?![\w/])"
)
# The unit an answer is given in when the question names none, by the unit it came from.
LENGTH_FOR = {"kmh": "km", "mph": "mi", "l100": "km", "kml": "km", "mpg": "mi", "mpg_imp": "mi"}
SPEED_FOR = {"km": "kmh", "m": "kmh", "mi": "mph", "ft": "mph", "yd": "mph", "cm": "kmh"}
VOLUME_FOR = {"l100": "l", "kml": "l", "mpg": "usgal", "mpg_imp": "impgal"}
ECONOMY_FOR = {"km": "l100", "mi": "mpg", "l": "l100", "usgal": "mpg", "impgal": "mpg_imp",
               "gal": "mpg"}  # fmt: skip


def offline_answer(question: str, settings: Settings) -> str | None:
    """What offline mode says without the model: an exact figure (`incar.units`), else the
    honest reply to a request to operate the car (`incar.controls`, `agent.controls`), else
    what a warning light means (`incar.lights`, `agent.dashboard`), else "no" to screen use
    while driving (`incar.distraction`, `agent.distraction`)."""
    parts = [
        (settings.incar.units, answer),
        (settings.incar.controls, controls.reply),
        (settings.incar.lights, dashboard.reply),
        (settings.incar.distraction, distraction.reply),
    ]
    return next((said for on, part in parts if on and (said := part(question))), None)


def answer(question: str) -> str | None:
    """One sentence with the exact figure, or None where the request is not understood."""
    text = normalize(question).strip()
    if len(text.split()) > MAX_WORDS or not ASKING.search(text):
        return None
    return _sum(text) or _request(text)


# --- a bare sum -------------------------------------------------------------------------------

OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}  # fmt: skip
SUM_WORDS = [(r"\bplus\b", "+"), (r"\bminus\b|\btake away\b|\bless\b", "-"),
             (r"\btimes\b|\bmultiplied by\b|×|\bx\b", "*"), (r"\bdivided by\b|÷|\bover\b", "/"),
             (r"\s*(?:%|\bpercent\b|\bper cent\b)\s+of\b", "/100*")]  # fmt: skip


def _sum(text: str) -> str | None:
    m = re.fullmatch(r"(?:what(?:'s| is)|how much is|calculate|compute|work out)\s+(.+?)[?.!]*",
                     text)  # fmt: skip
    if m is None:
        return None
    expr = m[1].replace(",", "")
    for pattern, symbol in SUM_WORDS:
        expr = re.sub(pattern, f" {symbol} ", expr)
    if not re.fullmatch(r"[\d\s.+\-*/()]+", expr) or not re.search(r"\d\s*[-+*/]\s*[\d(]", expr):
        return None
    try:
        value = _evaluate(ast.parse(expr.strip(), mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None
    shown = re.sub(r"\s+", " ", m[1].strip())
    return f"{shown} = {fmt(value, 4) if value != int(value) else f'{int(value):,}'}."


def _evaluate(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        return OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not a sum")


# --- quantities -------------------------------------------------------------------------------


def _request(text: str) -> str | None:
    price, text = _price(text)
    found = quantities(text)
    named = bare_units(text, found)
    spans = [(q.start, q.end) for q in found] + [(s, e) for _, s, e in named]
    loose = [m for m in re.finditer(r"\d", text) if not any(s <= m.start() < e for s, e in spans)]
    if loose:
        return None  # a number it cannot place: the model may know what it means
    asked = _asked(text, [k for k, _, _ in named])
    if asked == "?":
        return None
    if price is not None:
        return _cost(price, found, asked)
    if len(found) == 1:
        return _convert(found[0], asked) if asked else None
    if len(found) == 2:
        return _pair(found, asked, text)
    return None


def _asked(text: str, named: list[str]) -> str | None:
    """The one unit the question asks for; None when it names none, "?" when it names several
    of different dimensions."""
    keys = list(dict.fromkeys(named))
    if re.search(r"\bhow long\b|\bwhat time\b|\bhow much time\b", text):
        keys = keys or ["min"]
    if len(keys) > 1 and len({BY_KEY[k].dim for k in keys}) > 1:
        return "?"
    return keys[0] if keys else None


def _price(text: str) -> tuple[tuple[float, str, str] | None, str]:
    """A price per litre or gallon: (amount, currency words, volume unit key), and the text
    with it blanked out so its number is not read as a quantity."""
    m = PRICE.search(text)
    if m is None or not (m["sym"] or m["cur"] or re.search(r"\b(?:cost|price|pay|costs)\b", text)):
        return None, text
    volume = [q.unit for q in quantities(m["unit"] if m["unit"] != "l" else "1 l")]
    unit = "l" if m["unit"] in ("l",) or m["unit"].startswith("lit") else (volume or ["gal"])[0]
    if unit not in BY_KEY:
        unit = "gal"
    currency = CURRENCY.get(m["sym"] or m["cur"] or "", "")
    blank = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    return (to_number(m["num"]), currency, unit), blank


def _cost(price: tuple[float, str, str], found: list[Quantity], asked: str | None) -> str | None:
    amount, currency, per = price

    def money(value: float) -> str:
        return f"{value:,.2f} {currency}".strip()

    per_litre = amount / BY_KEY[per].to_base(1.0)
    dims = {BY_KEY[q.unit].dim: q for q in found}
    if asked is not None or len(found) != len(dims):
        return None
    if set(dims) == {"volume"}:
        q = dims["volume"]
        cost = per_litre * BY_KEY[q.unit].to_base(q.value)
        return f"{say(q.value, q.unit)} at {money(amount)} per {_one(per)} cost {money(cost)}."
    if set(dims) == {"length", "economy"}:
        litres = _litres_for(dims["length"], dims["economy"])
        cost = per_litre * litres
        return (f"{say(dims['length'].value, dims['length'].unit)} at "
                f"{say(dims['economy'].value, dims['economy'].unit)} takes {fmt(litres)} litres, "
                f"which at {money(amount)} per {_one(per)} costs {money(cost)}.")  # fmt: skip
    return None


def _one(unit: str) -> str:
    return {"l": "litre", "usgal": "US gallon", "impgal": "imperial gallon"}.get(unit, "gallon")


def _convert(q: Quantity, asked: str) -> str | None:
    source, target = BY_KEY[q.unit], BY_KEY[asked]
    if source.dim == "temp":
        q, asked = _scales(q, asked)
    if source.dim != target.dim or q.unit == asked or not asked:
        return None
    if q.unit == "gal" or asked == "gal":  # which gallon was not said: both
        us = _convert(q._replace(unit="usgal") if q.unit == "gal" else q, asked
                      if asked != "gal" else "usgal")  # fmt: skip
        imp = _convert(q._replace(unit="impgal") if q.unit == "gal" else q, asked
                       if asked != "gal" else "impgal")  # fmt: skip
        return f"{(us or '').rstrip('.')} ({(imp or '').rstrip('.')})."
    if asked in ("mpg",) and q.unit in ("l100", "kml"):
        imp = target_value(q, "mpg_imp")
        return f"{say(q.value, q.unit)} is {_about(q, asked)} ({say(imp, 'mpg_imp')})."
    return f"{say(q.value, q.unit)} is {_about(q, asked)}."


def target_value(q: Quantity, asked: str) -> float:
    return BY_KEY[asked].from_base(BY_KEY[q.unit].to_base(q.value))


def _about(q: Quantity, asked: str) -> str:
    value = target_value(q, asked)
    shown = f"{fmt(value)} minutes" if asked == "min" else say(value, asked)
    exact = f"{value:.10g}"
    return shown if shown.split()[0].replace(",", "") == exact else f"about {shown}"


def _scales(q: Quantity, asked: str) -> tuple[Quantity, str]:
    """ "20 degrees" asked in Fahrenheit meant Celsius, and the other way round; "" when
    neither scale was said."""
    other = {"f": "c", "c": "f"}
    if q.unit == "deg":
        q = q._replace(unit=other.get(asked, "deg"))
    if asked == "deg":
        asked = other.get(q.unit, "")
    return q, asked if q.unit != "deg" else ""


# --- trip arithmetic: two quantities ----------------------------------------------------------


def _pair(found: list[Quantity], asked: str | None, text: str) -> str | None:
    dims = {BY_KEY[q.unit].dim: q for q in found}
    if len(dims) != 2:
        return None
    want = BY_KEY[asked].dim if asked else None
    pairs: dict[frozenset[str], tuple[str, Callable[..., str | None]]] = {
        frozenset({"length", "speed"}): ("time", _travel_time),
        frozenset({"speed", "time"}): ("length", _distance),
        frozenset({"length", "time"}): ("speed", _speed),
        frozenset({"volume", "economy"}): ("length", _range),
        frozenset({"length", "economy"}): ("volume", _fuel),
        frozenset({"length", "volume"}): ("economy", _economy),
    }
    dim, solve = pairs.get(frozenset(dims), ("", None))
    if solve is None or (want is not None and want != dim):
        return None
    if (
        dim == "economy"
        and want is None
        and not re.search(r"\b(?:consumption|economy|efficiency|mileage|use|using|used)\b", text)
    ):
        return None
    return solve(dims, asked)


def _km(q: Quantity) -> float:
    return BY_KEY[q.unit].to_base(q.value) / 1000


def _travel_time(d: dict[str, Quantity], asked: str | None) -> str:
    length, speed = d["length"], d["speed"]
    minutes = _km(length) / BY_KEY[speed.unit].to_base(speed.value) * 60
    if asked in ("min", "h", "s"):
        took = say(minutes * 60 / BY_KEY[asked].to_base(1.0), asked)
    else:
        took = duration(minutes)
    lead = f"{say(length.value, length.unit)} at {say(speed.value, speed.unit)}"
    return f"{lead} takes {took}."


def _distance(d: dict[str, Quantity], asked: str | None) -> str:
    speed, time = d["speed"], d["time"]
    unit = asked or LENGTH_FOR[speed.unit]
    hours = BY_KEY[time.unit].to_base(time.value) / 3600
    metres = BY_KEY[speed.unit].to_base(speed.value) * hours * 1000
    value = BY_KEY[unit].from_base(metres)
    lead = f"{say(time.value, time.unit)} at {say(speed.value, speed.unit)}"
    return f"{lead} covers {say(value, unit)}."


def _speed(d: dict[str, Quantity], asked: str | None) -> str:
    length, time = d["length"], d["time"]
    unit = asked or SPEED_FOR.get(length.unit, "kmh")
    hours = BY_KEY[time.unit].to_base(time.value) / 3600
    value = BY_KEY[unit].from_base(_km(length) / hours)
    lead = f"{say(length.value, length.unit)} in {say(time.value, time.unit)}"
    return f"{lead} is an average of {say(value, unit)}."


def _litres_for(length: Quantity, economy: Quantity) -> float:
    return _km(length) / BY_KEY[economy.unit].to_base(economy.value)


def _range(d: dict[str, Quantity], asked: str | None) -> str | None:
    volume, economy = d["volume"], d["economy"]
    if volume.unit == "gal" and economy.unit not in ("mpg", "mpg_imp"):
        return None  # which gallon matters here and was not said
    unit = asked or LENGTH_FOR[economy.unit]
    fuel = volume._replace(unit=VOLUME_FOR[economy.unit]) if volume.unit == "gal" else volume
    km = BY_KEY[fuel.unit].to_base(fuel.value) * BY_KEY[economy.unit].to_base(economy.value)
    value = BY_KEY[unit].from_base(km * 1000)
    lead = f"{say(volume.value, volume.unit)} at {say(economy.value, economy.unit)}"
    return f"{lead} lasts about {say(value, unit)}."


def _fuel(d: dict[str, Quantity], asked: str | None) -> str:
    length, economy = d["length"], d["economy"]
    unit = VOLUME_FOR[economy.unit] if asked in (None, "gal") else asked
    value = BY_KEY[unit].from_base(_litres_for(length, economy))
    lead = f"{say(length.value, length.unit)} at {say(economy.value, economy.unit)}"
    return f"{lead} takes {say(value, unit)} of fuel."


def _economy(d: dict[str, Quantity], asked: str | None) -> str | None:
    length, volume = d["length"], d["volume"]
    unit = asked or ECONOMY_FOR.get(volume.unit, "l100")
    if volume.unit == "gal" and unit == "l100":
        return None
    fuel = volume._replace(unit="usgal" if unit != "mpg_imp" else "impgal") \
        if volume.unit == "gal" else volume  # fmt: skip
    kml = _km(length) / BY_KEY[fuel.unit].to_base(fuel.value)
    value = BY_KEY[unit].from_base(kml)
    lead = f"{say(volume.value, volume.unit)} for {say(length.value, length.unit)}"
    return f"{lead} is {say(value, unit)}."
