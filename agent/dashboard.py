"""Dashboard warning lights, recognised from a driver's description and explained offline.

What a light means is fixed by convention (the ISO 2575 symbols every maker uses) and is what a
driver most needs to know with no network, yet a 0.5B model guesses: "a red battery symbol ...
the battery is not fully charged", "the engine light ... Pull over safely and stop" (in-car
suite, evals/RESULTS.md). So offline mode asks `reply` before the model: a message that asks
about a light ("light", "symbol", "warning", "lamp", "icon" ...) and describes one symbol of
`LIGHTS` ("an oil can", "a horseshoe with an exclamation mark", "the ABS light") gets its
meaning and what to do, in one or two sentences. A light that calls for stopping (red oil,
temperature or brake; an engine light said to be red or flashing) gets "Pull over safely and
stop." first, as the safety rule of the offline prompt asks.

A table like a car handbook's, not a model: each entry's `shapes` name the symbol's shape or
its usual name, and the longest match wins. A description that fits no entry, or two entries
equally well ("all the warning lights came on"), is left to the model, and so is a question
whether a light is on ("Is the engine light on?": only the car can see that). Colours a maker
may use differently, or symbols only one maker has, are not here.

Not here: conversions (`agent.incar`), requests to operate the car (`agent.controls`), the
offline hook (`agent.loop`, `agent.conversation`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

STOP = "Pull over safely and stop."
ABOUT_A_LIGHT = re.compile(
    r"\b(?:lights?|lamps?|symbols?|icons?|signs?|warnings?|indicators?|telltales?|dashboard|"
    r"dash|display|picture|shape\w*|red|amber|orange|yellow|green|blue)\b|"
    r"\b(?:lit|came on|come on|comes on|is on|flash\w*|blink\w*|showing|glowing|appeared|"
    r"popped up|came up|showed up|show up|turned on|exclamation|telling me|warning me|mean|"
    r"instrument|cluster)\b"
)
FLASHING_OR_RED = re.compile(r"\b(?:red|flash\w*|blink\w*)\b")
# "Is the engine light on?" asks what only the car can see, not what the light means.
STATE = re.compile(
    r"^(?:is|are) (?:the |my |a |any )?[\w ]{0,30}\b(?:lights?|lamps?|symbols?|warnings?) "
    r"(?:on|lit|flashing|showing)\W*$"
)


class Light(NamedTuple):
    shapes: tuple[str, ...]  # the symbol's shapes and names, regular expressions
    meaning: str  # a sentence that starts with what the light means
    stop: bool = False  # always stop at once (a red light of this kind)
    stop_if_red: bool = False  # stop at once when said to be red or flashing


LIGHTS: dict[str, Light] = {
    "oil": Light(
        ("oil (?:can|lamp|pressure|warning|light|level|symbol)", "genie lamp", "dripping can"),
        "It means low engine oil pressure: switch off the engine and check the oil level "
        "before going on.",
        stop=True,
    ),
    "temperature": Light(
        (
            "thermometer",
            "(?:engine |coolant )?temperature (?:warning|light|symbol)",
            "coolant (?:warning|light)",
            "engine temperature",
        ),
        "It means the engine is overheating: switch off the engine and let it cool before "
        "checking the coolant.",
        stop=True,
    ),
    "brake": Light(
        (
            "exclamation (?:mark |point )?(?:in|inside|within) (?:a |the )?(?:circle|brackets)",
            "circle with (?:an? )?exclamation",
            "exclamation[^.?!]{0,30}brackets",
            "brackets[^.?!]{0,30}exclamation",
            r"\(!\)",
            "brake (?:warning|system|fluid)",
            "brake (?:light|lamp|symbol) on the dash",
            r"\bp in a circle",
            "handbrake (?:light|warning)",
        ),
        "It means the parking brake is on, or the brake fluid is low or the brakes have a "
        "fault: have the brakes checked before going further.",
        stop=True,
    ),
    "battery": Light(
        (
            "(?:like|shaped like|of|with) a (?:car )?battery",
            "plus and (?:a )?minus",
            r"battery\b[^.?!]{0,20}\b(?:light|symbol|warning|icon|sign|lamp|lit|red)\b",
            "red battery",
            "alternator",
            "charging (?:light|warning|symbol)",
        ),
        "It means the battery is not charging (an alternator or drive belt fault): switch off "
        "what you do not need and get to a garage, or stop before the battery runs flat.",
        stop_if_red=True,
    ),
    "abs": Light(
        (r"\babs\b", "anti-?lock"),
        "It means the anti-lock braking system has a fault: your normal brakes still work, but "
        "brake gently and have it checked soon.",
    ),
    "engine": Light(
        (
            "(?:check |orange |amber |yellow |red )?engine (?:light|symbol|warning|management|"
            "shape|outline|icon|thing|picture|sign)",
            "check engine",
            "engine-shaped",
            r"\bmil\b",
            "(?:outline|shape|picture|symbol|icon) of (?:an? |the )?(?:engine|motor)",
            "motor (?:light|symbol|outline|shape)",
        ),
        "It means the engine management system has found a fault (often emissions or a "
        "sensor): have it checked soon, and stop if it flashes.",
        stop_if_red=True,
    ),
    "tyre": Light(
        (
            "horseshoe",
            r"\btpms\b",
            "(?:tyre|tire) (?:pressure )?(?:light|warning|symbol|icon|sensor)",
            "flat (?:tyre|tire) symbol",
        ),
        "It means low tyre pressure in one or more tyres: check and inflate them at the next "
        "safe stop.",
    ),
    "traction": Light(
        (
            r"(?:car|vehicle)\b[^.?!]{0,30}\b(?:wavy|squiggly|curvy|wiggly|zigzag|skid\w*|"
            r"swerv\w*)",
            "skid marks",
            r"\besp\b",
            r"\besc\b",
            "traction control",
            "stability control",
        ),
        "It means traction or stability control is working to stop wheelspin on a slippery road "
        "(flashing), or is off or faulty (steady): ease off and drive gently.",
    ),
    "glow": Light(
        ("coil", "spring", "pigtail", "curly", "glow ?plug"),
        "It means the diesel glow plugs are preheating: wait for it to go out before starting; "
        "if it stays on or flashes, have it checked.",
    ),
    "frost": Light(
        ("snowflake", "frost", "ice (?:warning|symbol|light)"),
        "It means the outside temperature is near freezing, so the road may be icy: slow down "
        "and keep your distance.",
    ),
    "fuel": Light(
        (
            "(?:petrol|fuel|gas) (?:pump|bowser|nozzle)",
            "bowser",
            "(?:fuel|petrol) (?:light|warning|symbol|gauge light)",
        ),
        "It means fuel is low and you are on the reserve: refuel at the next station.",
    ),
    "airbag": Light(
        (
            "airbag",
            "air bag",
            r"\bsrs\b",
            "(?:seated )?person with (?:a )?(?:big )?(?:circle|ball)",
            "circle in front of (?:them|a person|him|her)",
        ),
        "It means the airbag (SRS) system has a fault and the airbags may not work in a crash: "
        "have it checked soon.",
    ),
    "seatbelt": Light(
        (
            "seat ?belt",
            "(?:person|figure|man|someone|body) with a (?:belt|strap)",
            "(?:strap|belt) across",
        ),
        "It means a seatbelt is not fastened: everyone should buckle up.",
    ),
    "steering": Light(
        (
            "steering wheel (?:with|and) (?:an )?exclamation",
            "steering wheel (?:light|symbol|warning|icon)",
            "power steering",
            r"\beps\b",
        ),
        "It means the power steering has a fault, so the steering may be heavy: slow down and "
        "have it checked.",
        stop_if_red=True,
    ),
    "dpf": Light(
        ("particulate", r"\bdpf\b", r"box with (?:\w+ ){0,3}dots"),
        "It means the diesel particulate filter is clogging: a steady 20-minute drive at "
        "motorway speed usually clears it.",
    ),
    "adblue": Light(
        ("adblue", r"\bdef\b"),
        "It means the AdBlue (diesel exhaust fluid) is low: top it up soon, or the engine may "
        "not restart.",
    ),
    "pads": Light(
        ("brake pad", "circle with dashes", "dashed circle"),
        "It means the brake pads are worn: have them replaced soon.",
    ),
    "door": Light(
        (
            "door (?:open|ajar)",
            "car with (?:a |the )?doors? open",
            "bonnet open",
            "boot open",
            "car[^.?!]{0,30}(?:door|panel)s?[^.?!]{0,20}(?:open|sticking out)",
        ),
        "It means a door, the bonnet or the boot is not fully shut.",
    ),
    "bulb": Light(
        ("light ?bulb", "bulb (?:with|failure|symbol|light|shape)"),
        "It means a bulb has failed: check the lights and replace it.",
    ),
    "washer": Light(
        ("washer", "screen ?wash", r"windscreen with (?:a )?(?:\w+ )?(?:fountain|spray\w*|jet)"),
        "It means the screen wash is low: top it up.",
    ),
    "key": Light(
        (r"\bkey\b", "immobili[sz]er", "padlock"),
        "It means the car does not recognise the key (a flat key battery or an immobiliser fault).",
    ),
    "epc": Light(
        (r"\bepc\b", "electronic power control"),
        "It means an electronic power control fault (throttle or engine management): have it "
        "checked soon.",
    ),
    "service": Light(
        ("spanner", "wrench", "service (?:light|due|symbol)"),
        "It means a service is due: book one soon.",
    ),
    "master": Light(
        ("triangle with (?:an )?exclamation", "exclamation (?:mark |point )?in a triangle"),
        "It is a general warning: read the message on the dashboard display.",
    ),
    "highbeam": Light(
        (
            "blue (?:headlight|headlamp|symbol|light shaped)",
            r"\bd with (?:\w+ )?lines",
            r"\bd-shaped",
            "high beam",
            "main beam",
            "full beam",
        ),
        "It means the high beam (main beam) headlights are on: dip them for oncoming traffic.",
    ),
}


def reply(message: str) -> str | None:
    """The light's meaning and what to do, safe action first; None where no one light fits."""
    text = message.lower().replace("’", "'")
    if len(text.split()) > 40 or not ABOUT_A_LIGHT.search(text) or STATE.match(text.strip()):
        return None
    key = which(text)
    if key is None:
        return None
    light = LIGHTS[key]
    stop = light.stop or (light.stop_if_red and FLASHING_OR_RED.search(text) is not None)
    return f"{STOP} {light.meaning}" if stop else light.meaning


def which(text: str) -> str | None:
    """The entry whose longest match in `text` is longest; None on none or on a tie."""
    lengths: dict[str, int] = {}
    for key, light in LIGHTS.items():
        found = [len(m.group()) for m in re.finditer("|".join(light.shapes), text)]
        if found:
            lengths[key] = max(found)
    if not lengths:
        return None
    ranked = sorted(lengths.items(), key=lambda kv: -kv[1])
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]
