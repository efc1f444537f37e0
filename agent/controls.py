"""Requests to operate the car, a phone or the radio, recognised and answered honestly offline.

The assistant controls nothing: it has no access to the car, the phone or the media system. A
0.5B model nonetheless answers "Turn on the wipers." with a made-up confirmation or, with the
shipped adapter, with its safety sentence ("Pull over safely and stop."; 5 of 18 in-car test
controls, evals/RESULTS.md). So offline mode asks `reply` first: a request it recognises gets
one sentence saying what the assistant cannot do and what the driver can use instead, with no
model turn.

Recognised: a clause (the message split at , ; . ! ? and "and") that opens, after greetings
and politeness ("hey", "please", "can you", "could you please", "I want you to"), on
- a verb that is itself an operation of the car, phone or radio ("call", "text", "play",
  "skip", "navigate", "defrost", "lock", "honk", "take me ..."), or
- an operating verb ("turn", "switch", "open", "set", "make", "find", ...) whose clause names
  something of the car, phone, radio or route ("the heating", "the volume", "a coffee stop"),
- or is a bare media or climate command ("next track", "louder", "warmer").

Left to the model on purpose: questions about how to do a thing ("How do I turn on the fog
lights?", "Can I open the window at speed?": any clause opening on a question word or on
"can I" / "should I"), statements ("It's cold in here."), and "stop" ("Stop the car!" may be an
emergency, which wants the safety answer, not a refusal). A request phrased in none of these
ways passes to the model, whose system prompt asks for the same honesty.

Not here: conversions and trip sums (`agent.incar`), the offline hook (`agent.loop`,
`agent.conversation`), judging replies (`evals.incar_check`).
"""

from __future__ import annotations

import re

# What the driver can use instead, by kind of request. Every hint holds for any car.
HINTS: dict[str, str] = {
    "phone": "I can't make calls or send messages; use your phone's hands-free system when it "
    "is safe.",
    "media": "I can't control the radio or music; use the car's media controls.",
    "navigation": "I can't navigate or search for places offline; use the car's sat nav or "
    "your phone's maps.",
    "climate": "I can't control the car's heating or air conditioning; use the climate "
    "controls on the dashboard.",
    "car": "I can't control the car; use its own switches.",
}
# Verbs that are an operation whatever follows them.
OWN_VERBS: dict[str, str] = {
    r"call|ring|phone|dial|facetime|text|message|whatsapp|e-?mail": "phone",
    r"play|skip|pause|resume|unpause|mute|unmute|shuffle|rewind|replay|tune": "media",
    r"navigate|reroute|re-route|route|guide me|take me|drive me|direct me": "navigation",
    r"defrost|demist|de-mist|defog|de-ice|deice|air ?condition": "climate",
    r"lock|unlock|honk|hoot|beep|indicate|fold|unfold|recline|dip|dim|brighten|wind": "car",
}
# Verbs that operate something only when the clause names it.
VERBS = (
    r"turn|switch|put|open|close|shut|start|set|raise|lower|increase|decrease|reduce|boost|"
    r"adjust|activate|deactivate|enable|disable|engage|disengage|roll|pop|crank|make|find|"
    r"show|get|book|change|move|bring|go|head|drive|connect|disconnect|pair|flash|sound|"
    r"crack|lift|drop|clear|keep|leave|give|send|reply|answer|heat|warm|cool|chill|bump|"
    r"blast|stick|slide|whack|pump|cut|kill|knock|flick|hit|chuck"
)
# Things of the car, phone, radio or route, by kind.
THINGS: dict[str, str] = {
    "climate": r"heating|heater|heat|air ?con|a/?c|aircon|air conditioning|climate|fans?|"
    r"blowers?|temperature|degrees|warmer|cooler|colder|hotter|demister|defroster|"
    r"seat heat\w*|heated seats?|vents?",
    "media": r"radio|music|songs?|tracks?|playlists?|podcasts?|audiobooks?|volume|sound|"
    r"stations?|audio|album|tunes|bluetooth|spotify|cd|speakers?|bass|news",
    "phone": r"calls?|messages?|texts?|phone|contacts?|voicemail|emails?",
    "navigation": r"sat ?nav|navigation|gps|route|directions|home|petrol station|gas station|"
    r"fuel station|garage|charger|charging (?:point|station)|parking|car park|hotel|"
    r"restaurant|cafe|coffee|services|destination|address|postcode|airport|hospital|park",
    "car": r"windows?|windscreen|windshield|sunroof|roof|doors?|locks?|boot|trunk|bonnet|"
    r"hood|tailgate|mirrors?|seats?|engine|horn|wipers?|lights?|headlights?|headlamps?|"
    r"beams?|hazards?|indicators?|cruise(?: control)?|handbrake|parking brake|gear|"
    r"suspension|steering wheel|cabin|interior|dashboard|screen|display|hand ?brake|car",
}
# Commands with no verb and no thing, by kind: "next track", "warmer please".
BARE: dict[str, re.Pattern[str]] = {
    "media": re.compile(
        r"(?:(?:next|previous|last) (?:track|song|station|episode)|louder|quieter|softer)"
        r"(?: please)?"
    ),
    "climate": re.compile(r"(?:warmer|cooler|colder|hotter)(?: please)?"),
}
GAMES = re.compile(r"\bgames?\b|\bi spy\b|\bquestions\b|\bquiz\b")  # "play" as in a game
PRONOUN = re.compile(r"\b(?:it|them|that|this|those|these)\b")
ALL_THINGS = "|".join(THINGS.values())
# A thing and its new state with no verb: "fog lights on please", "volume down".
SWITCHED = re.compile(
    rf"(?:the |my |all the )?(?:\w+ )?(?:{ALL_THINGS}) (?:on|off|up|down)"
    r"(?: (?:please|now|full|fully|a bit|a little|then|thanks|max|maximum|high|low|fast|slow|"
    r"auto))*"
)
LEAD = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|oh|so|now|and|then|just|right|quickly|quick|please|kindly|"
    r"assistant|car|computer)\b[\s,]*)*"
    r"(?:(?:can|could|would|will|won't|wouldn't) you\s+(?:please\s+|just\s+|quickly\s+)*|"
    r"(?:i want|i'd like|i would like|i need) you to\s+|go ahead and\s+|(?:please|kindly)\s+|"
    r"i want to\s+|i'd like to\s+|(?:i need|i want|i'd like|give me)\s+(?=(?:the|my|some)\b))?"
)
ASKING = re.compile(
    r"^(?:how|what|what's|why|where|when|which|who|whose|is|are|was|were|do|does|did|should|"
    r"shall|may|might|must|am|has|have)\b|^(?:can|could) (?:i|we)\b"
)
CLAUSES = re.compile(r"[,;.!?]+|\band\b|\bthen\b")


def reply(message: str) -> str | None:
    """One honest sentence for a request to operate the car, phone or radio; None otherwise."""
    kind = request(message)
    return HINTS[kind] if kind else None


def request(message: str) -> str | None:
    """The kind of operation `message` asks for ("climate", "media", ...), or None."""
    text = message.lower().replace("’", "'").strip()
    if not text or len(text.split()) > 30:
        return None
    for clause in CLAUSES.split(text):
        if kind := _clause(clause.strip(), text):
            return kind
    return None


def _clause(clause: str, text: str) -> str | None:
    """The kind of request `clause` makes; `text`, the whole message, says what "it" is."""
    if ASKING.match(clause):
        return None
    lead = LEAD.match(clause)
    rest = clause[lead.end() :] if lead else clause
    if kind := next((k for k, bare in BARE.items() if bare.fullmatch(rest)), None):
        return kind
    if SWITCHED.fullmatch(rest):
        return _named(rest)
    for verbs, kind in OWN_VERBS.items():
        if re.match(rf"(?:{verbs})\b\s+\S", rest) and not GAMES.search(rest):
            return kind
    if re.match(rf"(?:{VERBS})\b", rest):
        return _named(rest) or (_named(text) if PRONOUN.search(rest) else None)
    return None


def _named(rest: str) -> str | None:
    """The kind of the first thing of the car, phone, radio or route the clause names."""
    best: tuple[int, str] | None = None
    for kind, things in THINGS.items():
        m = re.search(rf"\b(?:{things})\b", rest)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), kind)
    return best[1] if best else None
