"""The invented world a search-QA corpus describes: names, entities and the facts linking them.

`make_entities(seed, n_entities)` gives people, towns, structures, products and organisations
with names built from syllables (no model can know them), each with the sentences its document
will state its facts in and its document's path. The same seed gives the same entities on every
machine.

Not here: the documents, the questions, writing the corpus (evals.corpus).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

FOLDERS = {
    "person": "people",
    "town": "towns",
    "structure": "structures",
    "product": "products",
    "org": "organisations",
}
Rng = random.Random
SHARES = {"person": 0.3, "town": 0.2, "structure": 0.2, "product": 0.15, "org": 0.15}

# --- names ------------------------------------------------------------------------------------

SYLLABLES = {  # onsets, vowels, codas; then the endings of each style of name
    "onset": "br dr gr kr pr tr v z h k m n l s t th r f g b d qu w y c sh",
    "vowel": "a e i o u a e o ai ei ou",
    "coda": "rn ll n r th ck st nd rv lm sk m rd l v sh nt",
    "first": "a ia en is el ine wyn o ard ric",
    "last": "ock ley mont rick well ton ard ess vane holt",
    "town": "ford holm by wick mere stead dale haven bury crest",
    "word": "ath or en ix el an ar is um",
}


class Names:
    """Invented names that never share their first syllables, so every name is unambiguous."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.used = rng, set[str]()

    def make(self, style: str) -> str:
        while True:
            stem = "".join(self.pick(part) for part in ("onset", "vowel", "coda"))
            word = (stem + self.pick(style)).capitalize()
            if stem not in self.used:
                self.used.add(stem)
                return word

    def pick(self, part: str) -> str:
        return self.rng.choice(SYLLABLES[part].split())


# --- entities and facts -----------------------------------------------------------------------

# How a document states each fact (one of the |-separated forms); {v} is the value.
SAY = {
    "person.born_in": "{short} was born in {v}.|{ref} was born in the town of {v}.",
    "person.birth_year": "{short} was born in {v}.|Records give {v} as {short}'s birth year.",
    "town.founded": "{Ref} was founded in {v}.|The settlement of {ref} was founded in {v}.",
    "town.population": "{Ref} has a population of {v}.|In the last census {ref} had {v} people.",
    "structure.designer": "{Ref} was designed by {v}.|The design of {ref} was the work of {v}.",
    "structure.opened": "{Ref} opened in {v}.|{Ref} was opened to the public in {v}.",
    "structure.span": "The main span of {ref} is {v} long.",
    "structure.length": "{Ref} is {v} long from end to end.",
    "structure.height": "{Ref} is {v} tall.|{Ref} rises {v} above the ground.",
    "product.inventor": "{Ref} was invented by {v}.|The inventor of {ref} was {v}.",
    "product.launched": "{Ref} was launched in {v}.|{Ref} first went on sale in {v}.",
    "product.weight": "{Ref} weighs {v}.|Without its cable, {ref} weighs {v}.",
    "org.founder": "{Ref} was founded by {v}.|{v} founded {ref}.",
    "org.founded": "The company was established in {v}.|{Ref} was established in {v}.",
    "org.staff": "Today {ref} employs {v} people.|{Ref} has a staff of {v} people.",
}
STRUCTURES = [
    ("Bridge", "span", 60, 1200),
    ("Viaduct", "length", 150, 2400),
    ("Tower", "height", 20, 320),
    ("Dam", "height", 30, 240),
    ("Lighthouse", "height", 15, 70),
]
JOBS = "architect;civil engineer;inventor;industrialist;surveyor;chemist;instrument maker"
PRODUCTS = "camera;kettle;radio;typewriter;lamp;sewing machine"


@dataclass
class Fact:
    value: str
    aliases: list[str]
    sentence: str  # how the document states it
    link: Entity | None = None


@dataclass
class Entity:
    kind: str
    name: str
    ref: str  # how a sentence names it: "the Zorvath Bridge"
    short: str  # a shorter mention: a surname, "the bridge"
    intro: str = ""
    path: str = ""  # relative to the corpus folder: docs/<kind>/<slug>.<ext>
    facts: dict[str, Fact] = field(default_factory=dict)

    def say(
        self, rng: random.Random, key: str, value: str, aliases: list[str] | None = None
    ) -> None:
        """Record a fact with a sentence chosen from SAY."""
        template = rng.choice(SAY[f"{self.kind}.{key}"].split("|"))
        text = template.format(ref=self.ref, Ref=cap(self.ref), short=self.short, v=value)
        self.facts[key] = Fact(value, aliases or [], cap(text))

    def link(self, key: str, target: Entity, sentence: str) -> None:
        """A fact whose value is another entity; the sentence may be the intro."""
        aliases = [target.short] if target.kind in ("person", "org") else []
        self.facts[key] = Fact(target.name, aliases, sentence, target)

    def year(self, key: str) -> int:
        return int(self.facts[key].value)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def measure(value: int, unit: str) -> tuple[str, list[str]]:
    """'1,240 metres' and the aliases a reader would accept: '1,240 m', '1,240 meters', '1,240'."""
    short = {"metres": "m", "grams": "g"}[unit]
    extra = [f"{value:,} meters"] if unit == "metres" else []
    return f"{value:,} {unit}", [f"{value:,} {short}", *extra, f"{value:,}"]


def make_town(names: Names, rng: Rng) -> Entity:
    name, river = names.make("town"), names.make("word")
    e = Entity("town", name, name, name, f"{name} is a town on the {river} river.")
    e.facts["river"] = Fact(river, [f"{river} river", f"River {river}"], e.intro)
    e.say(rng, "founded", str(rng.randint(850, 1850)))
    e.say(rng, "population", f"{rng.randint(12, 2500) * 100:,}")
    return e


def make_person(names: Names, rng: Rng, towns: list[Entity]) -> Entity:
    first, last = names.make("first"), names.make("last")
    e = Entity("person", f"{first} {last}", f"{first} {last}", last)
    job = rng.choice(JOBS.split(";"))
    e.intro = f"{e.name} was {'an' if job[0] in 'aeiou' else 'a'} {job} whose work is still read."
    e.say(rng, "birth_year", str(rng.randint(1790, 1950)))
    born = rng.choice(towns)
    e.say(rng, "born_in", born.name)
    e.link("born_in", born, e.facts["born_in"].sentence)
    return e


def make_org(names: Names, rng: Rng, people: list[Entity], towns: list[Entity]) -> Entity:
    word = names.make("last")
    kind = rng.choice(["Instruments", "Works", "Foundry", "Optics", "Mills"])
    e = Entity("org", f"{word} {kind}", f"{word} {kind}", word)
    hq, founder = rng.choice(towns), rng.choice(people)
    e.intro = f"{e.name} is a manufacturer based in {hq.name}."
    e.link("hq", hq, e.intro)
    e.say(rng, "founder", founder.name)
    e.link("founder", founder, e.facts["founder"].sentence)
    e.say(rng, "founded", str(founder.year("birth_year") + rng.randint(22, 45)))
    e.say(rng, "staff", f"{rng.randint(40, 9000):,}")
    return e


def make_structure(names: Names, rng: Rng, people: list[Entity], towns: list[Entity]) -> Entity:
    noun, dimension, low, high = rng.choice(STRUCTURES)
    name = f"{names.make('word')} {noun}"
    e = Entity("structure", name, f"the {name}", f"the {noun.lower()}")
    where, designer = rng.choice(towns), rng.choice(people)
    e.intro = f"{cap(e.ref)} is a {noun.lower()} in {where.name}."
    e.link("town", where, e.intro)
    e.say(rng, "designer", designer.name)
    e.link("designer", designer, e.facts["designer"].sentence)
    e.say(rng, "opened", str(designer.year("birth_year") + rng.randint(28, 60)))
    e.say(rng, dimension, *measure(rng.randint(low, high), "metres"))
    return e


def make_product(names: Names, rng: Rng, people: list[Entity], orgs: list[Entity]) -> Entity:
    name = f"{names.make('word')} {rng.choice('KLMRTVZ')}{rng.randint(2, 9)}"
    e = Entity("product", name, f"the {name}", f"the {name.split()[1]}")
    maker, inventor = rng.choice(orgs), rng.choice(people)
    e.intro = f"{cap(e.ref)} is a {rng.choice(PRODUCTS.split(';'))} made by {maker.name}."
    e.link("maker", maker, e.intro)
    e.say(rng, "inventor", inventor.name)
    e.link("inventor", inventor, e.facts["inventor"].sentence)
    start = max(maker.year("founded"), inventor.year("birth_year") + 25)
    e.say(rng, "launched", str(start + rng.randint(1, 20)))
    e.say(rng, "weight", *measure(rng.randint(180, 5200), "grams"))
    return e


def make_entities(seed: int, n_entities: int) -> list[Entity]:
    """n_entities entities in the SHARES mix, each with its document path."""
    if not 5 <= n_entities <= 1000:  # one of each kind; names run out somewhere past 1000
        raise ValueError("a corpus needs at least 5 entities, one of each kind, and at most 1000")
    rng = random.Random(f"searchqa:{seed}")
    names = Names(rng)
    counts = {kind: max(1, int(n_entities * share)) for kind, share in SHARES.items()}
    counts["person"] += n_entities - sum(counts.values())  # exactly n_entities in all
    towns = [make_town(names, rng) for _ in range(counts["town"])]
    people = [make_person(names, rng, towns) for _ in range(counts["person"])]
    orgs = [make_org(names, rng, people, towns) for _ in range(counts["org"])]
    structures = [make_structure(names, rng, people, towns) for _ in range(counts["structure"])]
    products = [make_product(names, rng, people, orgs) for _ in range(counts["product"])]
    everything = towns + people + orgs + structures + products
    for e in everything:
        ext = rng.choices(["html", "md", "txt"], weights=[4, 4, 2])[0]
        slug = re.sub(r"[^a-z0-9]+", "-", e.name.lower()).strip("-")
        e.path = f"docs/{FOLDERS[e.kind]}/{slug}.{ext}"
    return everything
