"""Reference episodes for search-QA: what a right search, split or read looks like, on the
training worlds (`evals.searchqa.training_cases`), through the real loop, search index and
page server, with only the model's turns scripted.

- `searchqa`: the first turn of a real search-QA episode (the prompt `ask` builds, with all
  its tools) answered with a web search for the question; kept where the search lists an
  evidence document. The cases are the default world's train split and a second world
  generated for training only, a question on every fact, so "How long is the main span of
  X?" is seen as a search and not as the python tool's "how many characters". Only that turn
  is trained: the reading and answering after it are the model's own.
- `split`: the split `agent.research` asks for before a search (`agent.hops`: the split
  system prompt, its worked examples, the question, as a real sub-call), answered with the
  question's lookups: a two-hop question's two, numbered, the second naming the first answer
  as #1; a single-hop question written back unchanged, so the model sees both sides. Kept
  where the loop's own check (`parse_plan`) reads the reply as meant. The lookups are the
  corpus's question forms, the test world's too: a measured two-hop gain says how it splits
  questions worded like these, not any wording.
- `read`: a whole episode with the loop's steers off (search-QA's tools-free-choice arm), every
  model turn scripted and trained: a web search for the question, a fetch of the evidence page
  it listed, for a two-hop question a search for the second lookup with the first answer in
  it and a fetch of that page, then the answer alone. Kept where each search lists the page
  fetched next and each page holds what its hop asks (the bridge, then the answer). This is
  the move the steers make for the model (read a page, answer from it), taught to the model.

Not here: the other suites' references and the registry (`evals.references`), the corpus and
its questions (`evals.corpus`, `evals.searchqa`).
"""

from __future__ import annotations

from pathlib import Path

from agent.hops import SPLIT_SYSTEM, example_turns, parse_plan
from agent.loop import run, sub_episode
from agent.settings import TOOL_NAMES, Settings
from agent.toolbox import toolbox
from agent.trajectory import Trajectory
from evals import searchqa
from evals.common import EvalCase
from evals.scoring import contains_answer
from evals.turns import call_text, end_id
from model.loader import LoadedModel
from model.messages import ToolCall
from model.scripted import ScriptedGenerator
from model.train.data import TrainExample, examples_from_steps

FREE = "tools-free-choice"


def search_examples(lm: LoadedModel, case: EvalCase, settings: Settings) -> list[TrainExample]:
    """A search-QA episode's first turn, scripted as a web search for the question."""
    call = ToolCall(name=TOOL_NAMES["search"], arguments={"query": case.prompt})
    folder = Path(case.data["folder"])
    episode = searchqa.case_settings(settings, folder, case.data["variant"])
    episode = episode.model_copy(update={"agent": episode.agent.model_copy(
        update={"max_steps": 1, "read_after_search": False})})  # fmt: skip
    script: list[str | None] = [call_text(lm, call), "I do not know."]  # the answer is not kept
    generator = ScriptedGenerator(lm, script, end_id=end_id(lm))
    with toolbox(episode, question=case.prompt) as tools:
        traj = run(generator, case.prompt, tools, episode)
    evidence = [searchqa.doc_url(folder, d) for d in case.data["docs"]]
    if not traj.steps or not searchqa.tool_usage(traj, evidence)["evidence_found"]:
        return []
    meta = {"source": "reference", "suite": case.suite, "case": case.id, "category": case.category}
    return examples_from_steps(traj.steps[:1], meta)


def split_examples(lm: LoadedModel, case: EvalCase, settings: Settings) -> list[TrainExample]:
    """The question split into its lookups, as the research policy asks for it."""
    plan: list[str] = case.data["lookups"]
    reply = "\n".join(f"{n}. {step}" for n, step in enumerate(plan, 1))
    if parse_plan(case.prompt, reply, settings.agent.max_hops) != plan:
        return []
    generator = ScriptedGenerator(lm, [reply], end_id=end_id(lm))
    traj = sub_episode(generator, case.prompt, settings, SPLIT_SYSTEM, example_turns())
    meta = {"source": "reference", "suite": case.suite, "case": case.id,
            "category": f"split/{case.category}"}  # fmt: skip
    return examples_from_steps(traj.steps, meta)


def read_examples(lm: LoadedModel, case: EvalCase, settings: Settings) -> list[TrainExample]:
    """A free-choice episode from search to answer, every model turn the reference's."""
    folder, data = Path(case.data["folder"]), case.data
    hops = read_plan(case)
    if hops is None:
        return []
    calls = [
        ToolCall(name=TOOL_NAMES[tool], arguments={key: value})
        for query, doc in hops
        for tool, key, value in (
            ("search", "query", query),
            ("fetch", "url", searchqa.doc_url(folder, doc)),
        )
    ]
    answer = str(case.expected).rstrip(".") + "."
    episode = searchqa.case_settings(settings, folder, FREE)
    steps = max(episode.agent.max_steps, len(calls) + 1)
    episode = episode.model_copy(
        update={"agent": episode.agent.model_copy(update={"max_steps": steps})}
    )
    script: list[str | None] = [call_text(lm, c) for c in calls] + [answer]
    generator = ScriptedGenerator(lm, script, end_id=end_id(lm))
    with toolbox(episode, question=case.prompt) as tools:
        traj = run(generator, case.prompt, tools, episode)
    wanted = [data["via"]] * (len(hops) - 1) + [case.expected, *data["aliases"]]
    if not _read_as_planned(traj, calls, wanted, answer):
        return []
    meta = {"source": "reference", "suite": case.suite, "case": case.id,
            "category": f"read/{case.category}"}  # fmt: skip
    return examples_from_steps(traj.steps, meta)


def read_plan(case: EvalCase) -> list[tuple[str, str]] | None:
    """(query, evidence document) per hop: the question and its first document, then the
    second lookup with the bridge named; None where the case does not say enough."""
    docs, lookups, via = case.data["docs"], case.data.get("lookups") or [], case.data.get("via")
    if len(docs) == 1:
        return [(case.prompt, docs[0])]
    if len(docs) != 2 or len(lookups) != 2 or not via:
        return None
    return [(case.prompt, docs[0]), (lookups[1].replace("#1", via), docs[1])]


def _read_as_planned(traj: Trajectory, calls: list[ToolCall], wanted: list, answer: str) -> bool:
    """Every scripted call ran without error, each search listed the page fetched after it,
    each page holds its hop's target (a page per entry of `wanted` up to the last, which may
    be any of the answer's forms), and the episode ended on the answer."""
    runs = [r for s in traj.steps for r in s.tool_runs]
    ran = [(r.call.name, r.call.arguments) for r in runs]
    if ran != [(c.name, c.arguments) for c in calls] or any(r.error for r in runs):
        return False
    pages = [r.text for r in runs if r.call.name == TOOL_NAMES["fetch"]]
    for search, fetch in zip(runs[::2], runs[1::2], strict=True):
        if str(fetch.call.arguments["url"]) not in search.text:
            return False
    targets = [[w] for w in wanted[: len(pages) - 1]] + [wanted[len(pages) - 1 :]]
    found = all(contains_answer(p, t) for p, t in zip(pages, targets, strict=True))
    return found and traj.final_answer == answer
