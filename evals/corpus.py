"""A search-QA corpus generated from a seed: invented entities, their documents, and questions.

`write_corpus(out_dir, seed, n_entities)` writes `docs/<kind>/<slug>.{html,md,txt}` (one
document per entity, about 1,600 to 2,800 characters: the facts scattered among filler
sentences and distractor dates) and `questions.jsonl` (one `Question` a line, documented in
evals/README.md). Entities are people, towns, structures (bridges, towers, dams...), products
and organisations, with names built from syllables so that no model can know them. Facts link
them: a structure has a designer and a town, a product an inventor and a maker, an organisation
a founder and a headquarters, a person a birthplace. Single-hop questions ask one fact of one
document; two-hop questions follow a link ("In which town was the designer of the Zorvath
Bridge born?") and need two documents, the answer being absent from the first.
The same seed gives the same bytes on every machine.

Not here: the invented entities and their facts (evals.world); serving, indexing, running or
scoring (evals.searchqa, evals.scoring).
"""

from __future__ import annotations

import html
import random
from pathlib import Path

from pydantic import BaseModel, Field

from evals.scoring import contains_answer
from evals.world import FOLDERS, Entity, Fact, cap, make_entities

GENERATOR_VERSION = 1  # bump when the output changes: the cached default corpus is keyed on it


class Question(BaseModel):
    """One line of questions.jsonl."""

    id: str
    question: str
    answer: str
    aliases: list[str] = Field(default_factory=list)
    hops: int = Field(1, ge=1)
    category: str = ""  # "single" or "two-hop"; derived from hops when empty
    docs: list[str] = Field(default_factory=list)  # evidence, relative to the file's folder
    via: str | None = None  # the entity in the middle of a two-hop chain
    relation: str = ""  # e.g. "structure.designer>person.born_in"


def read_questions(path: Path) -> list[Question]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [Question.model_validate_json(line) for line in lines if line.strip()]


# --- questions' wording ------------------------------------------------------------------

# How a question asks for each fact; two-hop questions put a phrase from LINKS in {ref}.
ASK = {
    "person.born_in": "In which town was {ref} born?",
    "person.birth_year": "In what year was {ref} born?",
    "town.river": "On which river does {ref} lie?",
    "town.founded": "In what year was {ref} founded?",
    "town.population": "What is the population of {ref}?",
    "structure.town": "In which town is {ref}?",
    "structure.designer": "Who designed {ref}?",
    "structure.opened": "In what year did {ref} open?",
    "structure.span": "How long is the main span of {ref}?",
    "structure.length": "How long is {ref}?",
    "structure.height": "How tall is {ref}?",
    "product.maker": "Which company makes {ref}?",
    "product.inventor": "Who invented {ref}?",
    "product.launched": "In what year was {ref} launched?",
    "product.weight": "How much does {ref} weigh?",
    "org.hq": "In which town is {ref} based?",
    "org.founder": "Who founded {ref}?",
    "org.founded": "In what year was {ref} founded?",
    "org.staff": "How many people does {ref} employ?",
}
LINKS = {
    "person.born_in": "the birthplace of {ref}",
    "structure.designer": "the designer of {ref}",
    "structure.town": "the town where {ref} stands",
    "product.inventor": "the inventor of {ref}",
    "product.maker": "the company that makes {ref}",
    "org.founder": "the founder of {ref}",
    "org.hq": "the town where {ref} is based",
}


# --- documents --------------------------------------------------------------------------------

# Filler clauses: true-sounding, never stating an asked fact; {year} makes distractor dates.
FILLER = {
    "any": """some accounts from the time are contradictory, and historians still argue about them
much of what is known comes from a diary kept by a schoolteacher in the area
the regional archive holds letters, drawings and account books from the period
a local newspaper ran a long series of articles about {ref} in {year}
critics were divided at first, but opinion has softened since
the story has been retold in at least {n} books, most of them now out of print
much changed in the {decade}s as new roads and railways were built across the region
a travelling lecturer gave a talk about {ref} in {year}
several letters from the period were sold at auction in {year}
schoolchildren in the region learn about {ref} in their local history lessons
there are plans for a small exhibition, though no date has been set
an amateur historian compiled a detailed chronology in {year}
older residents still tell stories about the great flood of {year}
{ref} is sometimes mentioned in the same breath as {other}
the details given here follow the latest edition of the regional encyclopaedia
a society of enthusiasts meets on the first Thursday of every month to discuss {ref}
photographs from {year} are kept in {n} albums at the county record office
visitors from abroad have grown more common since the {decade}s""",
    "person": """{short} kept detailed notebooks, many of which survive
colleagues remembered {short} as patient but exacting
in {year} {short} travelled abroad for several months to study the work of others
{short} corresponded with dozens of engineers and craftsmen
a portrait of {short} hangs in the reading room of the regional library
{short} was elected to a learned society in {year}
late in life {short} gave evening lectures to apprentices
a biography of {short}, published in {year}, remains the standard account
{short} disliked publicity and rarely gave interviews
letters from {short} to a younger sister were published in {year}
{short} is said to have met {other} once, though no record of the meeting survives
a street in the regional capital was named after {short} in {year}""",
    "town": """the market square of {ref} is lined with narrow houses painted in pale colours
a weekly market has been held on Saturdays for as long as anyone remembers
the local football club has spent most of its history in the lower divisions
a fire destroyed much of the old quarter of {ref} in {year}
the railway reached {ref} in {year}, and the station still keeps its original clock
the town hall was rebuilt in {year} after years of argument
{ref} is twinned with {other}
many families have lived in the same streets for generations
a small museum near the church shows tools, costumes and old photographs
the local dialect has a few words found nowhere else
the main street was paved for the first time in {year}
a lantern procession takes place on the last Friday of October""",
    "structure": """{short} was repainted in {year} in a colour chosen by public vote
engineers inspect {short} every {n} years
{short} was closed for several weeks after a storm in {year}
the foundations rest on a bed of clay and gravel
the stone came from a quarry some {n} kilometres away
photographs from {year} show scaffolding along one side of {short}
a model of {ref} can be seen in the regional museum
several minor films have used {ref} as a backdrop
{ref} is occasionally confused with {other}, although the two have little in common
{short} appears on the regional coat of arms
kestrels nest in the upper parts of {short} each spring
guided tours of {short} run twice a day in the summer months""",
    "product": """early units of {ref} were assembled by hand in a small workshop
a revised model appeared in {year} with a stronger casing
collectors pay high prices for examples in their original boxes
advertisements of the period promised that {short} would last a lifetime
spare parts were still being made as late as {year}
reviewers praised its simple controls but criticised its noise
the instruction booklet ran to {n} pages and was printed in three languages
{ref} was shown at a trade fair in {year}, where it won a minor prize
{ref} was often compared with {other}, a rival design
about {n} thousand units were sold in the first decade
a museum of design holds an early example in its permanent collection
the casing was available in green, grey and a deep red""",
    "org": """the company's first premises were a rented room above a bakery
the firm opened a second workshop across the river in {year}
apprentices at {ref} are trained in a programme lasting {n} years
the company was hit hard by the recession of {year} but recovered
a company magazine has been published since {year}
{ref} competes mainly with {other}
its catalogue lists several hundred products, most of them small parts
staff are known locally for the annual summer picnic
a new office block was completed in {year}
{ref} sponsors a brass band and a youth football team
the firm briefly considered moving abroad in {year}, then decided against it
its logo has changed only twice since the early days""",
}
ERA_FROM = {"person": "birth_year", "structure": "opened", "product": "launched", "org": "founded"}


def era(e: Entity) -> tuple[int, int]:
    """The years filler may mention: after the entity's key date (and 1860), before 2021, so a
    distractor date is never the date asked for."""
    key = ERA_FROM.get(e.kind)
    start = max(1860, e.year(key) + (15 if e.kind == "person" else 1) if key else 0)
    return start, max(start + 5, min(start + 100, 2020))


def filler(e: Entity, rng: random.Random, others: list[Entity], target: int) -> list[str]:
    clauses = FILLER["any"].splitlines() + FILLER[e.kind].splitlines()
    rng.shuffle(clauses)
    low, high = era(e)
    out: list[str] = []
    size = sum(len(f.sentence) for f in e.facts.values())
    for clause in clauses:
        if size >= target:
            break
        text = clause.format(
            ref=e.ref,
            short=e.short,
            other=rng.choice(others).ref,
            year=rng.randint(low, high),
            n=rng.randint(2, 40),
            decade=rng.randint(low, high) // 10 * 10,
        )
        out.append(cap(text) + ".")
        size += len(out[-1]) + 1
    return out


def paragraphs(e: Entity, rng: random.Random, others: list[Entity]) -> list[list[str]]:
    """The intro first, then filler in paragraphs of 3-5 sentences, facts anywhere among it."""
    sentences = filler(e, rng, others, rng.randint(1500, 3300))
    for fact in dict.fromkeys(f.sentence for f in e.facts.values() if f.sentence != e.intro):
        sentences.insert(rng.randint(0, len(sentences)), fact)
    chunks: list[list[str]] = []
    while sentences:
        size = rng.randint(3, 5)
        chunks.append(sentences[:size])
        sentences = sentences[size:]
    first = chunks.pop(0) if chunks else []
    return [[e.intro, *first], *chunks]


def render(e: Entity, paras: list[list[str]]) -> str:
    """The document in the format its file name says: HTML, markdown or plain text."""
    texts = [" ".join(p) for p in paras]
    if e.path.endswith(".txt"):
        return "\n\n".join([e.name, *texts]) + "\n"
    if e.path.endswith(".md"):
        if len(texts) > 2:
            texts.insert(1, "## History")
        return "\n\n".join([f"# {e.name}", *texts]) + "\n"
    title = html.escape(e.name)
    body = "\n".join(f"<p>{html.escape(t)}</p>" for t in texts)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title>'
        f'</head>\n<body>\n<nav><a href="/">Home</a> | <a href="/{FOLDERS[e.kind]}/">'
        f"{FOLDERS[e.kind].capitalize()}</a></nav>\n<article>\n<h1>{title}</h1>\n{body}\n"
        "</article>\n<footer><p>Regional gazetteer. Text may be reused with attribution.</p>"
        "</footer>\n</body>\n</html>\n"
    )


# --- questions --------------------------------------------------------------------------------


def slug_of(e: Entity) -> str:
    return Path(e.path).stem


def answers(fact: Fact) -> list[str]:
    return [fact.value, *fact.aliases]


def make_question(
    fact: Fact, qid: str, text: str, docs: list[str], relation: str, via: str | None = None
) -> Question:
    kind = "single" if len(docs) == 1 else "two-hop"
    data = {"id": qid, "question": text, "answer": fact.value, "aliases": fact.aliases}
    data |= {"hops": len(docs), "category": kind, "docs": docs, "via": via, "relation": relation}
    return Question(**data)


def single(e: Entity, rng: random.Random) -> Question:
    key = rng.choice([k for k in e.facts if f"{e.kind}.{k}" in ASK])
    question = ASK[f"{e.kind}.{key}"].format(ref=e.ref)
    return make_question(e.facts[key], f"{slug_of(e)}.{key}", question, [e.path], f"{e.kind}.{key}")


def every_single(seed: int = 0, n_entities: int = 60) -> list[Question]:
    """A single-hop question on every fact ASK can ask of every entity of `generate(seed,
    n_entities)`'s world, in a seeded shuffled order: many more phrasings per world than its one
    question per entity, for training on a world that no eval reads."""
    out = [
        make_question(
            f,
            f"{slug_of(e)}.{key}",
            ASK[f"{e.kind}.{key}"].format(ref=e.ref),
            [e.path],
            f"{e.kind}.{key}",
        )
        for e in make_entities(seed, n_entities)
        for key, f in e.facts.items()
        if f"{e.kind}.{key}" in ASK
    ]
    random.Random(f"searchqa-every:{seed}").shuffle(out)
    return out


def entities_by_path(seed: int = 0, n_entities: int = 60) -> dict[str, Entity]:
    """The entities of `generate(seed, n_entities)`'s world by document path."""
    return {e.path: e for e in make_entities(seed, n_entities)}


def lookups(q: Question, entities: dict[str, Entity]) -> list[str]:
    """The lookups a question splits into, as `agent.hops` asks a model for them: a two-hop
    question's link asked of its first entity, then its fact asked of "#1" (the first answer);
    a single-hop question is one lookup, itself. `entities`: the world's, by document path."""
    if q.hops == 1 or ">" not in q.relation:
        return [q.question]
    link, fact = q.relation.split(">")
    first = entities[q.docs[0]]
    return [cap(ASK[link].format(ref=first.ref)), cap(ASK[fact].format(ref="#1"))]


def two_hop(e: Entity, rng: random.Random, texts: dict[str, str]) -> Question | None:
    """A question through one of e's links whose answer is not already in e's document."""
    links = [(key, f.link) for key, f in e.facts.items() if f.link and f"{e.kind}.{key}" in LINKS]
    chains = [(key, mid, last) for key, mid in links for last in mid.facts]
    chains = [c for c in chains if f"{c[1].kind}.{c[2]}" in ASK]
    rng.shuffle(chains)
    for key, mid, last in chains:
        fact = mid.facts[last]
        phrase = LINKS[f"{e.kind}.{key}"].format(ref=e.ref)
        question = cap(ASK[f"{mid.kind}.{last}"].format(ref=phrase))
        if contains_answer(texts[e.path] + " " + question, answers(fact)):
            continue  # one document (or the question itself) would give it away
        relation = f"{e.kind}.{key}>{mid.kind}.{last}"
        qid = f"{slug_of(e)}.{key}.{last}"
        return make_question(fact, qid, question, [e.path, mid.path], relation, mid.name)
    return None


def generate(seed: int = 0, n_entities: int = 60) -> tuple[dict[str, str], list[Question]]:
    """(documents by relative path, questions): one single-hop question per entity and one
    two-hop question per structure, product and organisation, in a seeded shuffled order."""
    everything = make_entities(seed, n_entities)
    rng = random.Random(f"searchqa-docs:{seed}")
    docs, texts = {}, {}
    for e in everything:
        others = [o for o in everything if o.kind == e.kind and o is not e] or [e]
        paras = paragraphs(e, rng, others)
        docs[e.path], texts[e.path] = render(e, paras), " ".join(" ".join(p) for p in paras)
    questions = [single(e, rng) for e in everything]
    linked = [
        two_hop(e, rng, texts) for e in everything if e.kind in ERA_FROM and e.kind != "person"
    ]
    questions += [q for q in linked if q is not None]
    rng.shuffle(questions)
    return docs, questions


def write_corpus(out_dir: Path, seed: int = 0, n_entities: int = 60) -> list[Question]:
    """Write the documents and questions.jsonl to out_dir (new or empty); same seed, same bytes."""
    out_dir = Path(out_dir)
    docs, questions = generate(seed, n_entities)
    for relative, text in docs.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    lines = "".join(q.model_dump_json(exclude_none=True) + "\n" for q in questions)
    (out_dir / "questions.jsonl").write_bytes(lines.encode("utf-8"))
    return questions
