"""The split of a question into lookups: which splits are trusted, references, bridges."""

from __future__ import annotations

from agent.hops import EXAMPLES, bridge, example_turns, is_bridge, parse_plan, resolve

Q = "In which town was the designer of the Zorvath Bridge born?"


def test_a_two_lookup_split_is_trusted_and_resolved() -> None:
    reply = "1. Who designed the Zorvath Bridge?\n2. In which town was #1 born?"
    plan = parse_plan(Q, reply, max_hops=2)
    assert plan == ["Who designed the Zorvath Bridge?", "In which town was #1 born?"]
    assert resolve(plan[1], ["Elspeth Varnock"]) == "In which town was Elspeth Varnock born?"
    assert resolve(plan[1], []) == plan[1]  # no answer yet: the reference stays


def test_numbering_forms_and_chatter_around_the_lines() -> None:
    reply = "Here are the lookups:\nStep 1: Who designed the Zorvath Bridge?\n2) Where was #1 born"
    assert parse_plan(Q, reply, 3) == ["Who designed the Zorvath Bridge?", "Where was #1 born"]


def test_one_line_or_no_lines_is_one_lookup() -> None:
    assert parse_plan(Q, f"1. {Q}", 2) == [Q]
    assert parse_plan(Q, "The designer was born in Halvern.", 2) == [Q]
    assert parse_plan(Q, "", 2) == [Q]


def test_splits_of_the_wrong_shape_are_not_trusted() -> None:
    first = "1. Who designed the Zorvath Bridge?\n"
    untrusted = [
        first + "2. In which town was Elspeth Varnock born?",  # no reference: a guessed bridge
        "1. Who designed #2?\n2. In which town was #1 born?",  # the first line refers
        first + "2. In which town was #2 born?",  # a line refers to itself
        first + "3. In which town was #1 born?",  # numbers skip
        f"1. {Q}\n2. Where is #1?",  # the first line is the question again
        first + "2. Who taught #1?\n3. In which town was #2 born?",  # longer than max_hops
    ]
    for reply in untrusted:
        assert parse_plan(Q, reply, 2) == [Q], reply
    three = first + "2. Who taught #1?\n3. In which town was #2 born?"
    assert len(parse_plan(Q, three, 3)) == 3  # allowed when max_hops allows it


def test_a_split_around_a_bare_name_is_one_lookup() -> None:
    """A single-hop question split as "who is X, then ask about #1" has nothing to look up
    first; a real split replaces a description ("the designer of ...") by the reference."""
    single = "In which town was Elspeth Varnock born?"
    assert parse_plan(single, "1. Who is Elspeth Varnock?\n2. In which town was #1 born?", 2) == [
        single
    ]
    # the first lookup is a bare name, even when the second is reworded
    assert parse_plan(single, "1. Who is Elspeth Varnock?\n2. Where was #1 born?", 2) == [single]
    # the reference stands for a bare name in the question (the first lookup asks a fact)
    reply = "1. What is Elspeth Varnock known for?\n2. In which town was #1 born?"
    assert parse_plan(single, reply, 2) == [single]
    # lower case throughout, as people type: the description is still seen
    typed = "where was the founder of zormont optics born"
    split = "1. who founded zormont optics\n2. where was #1 born"
    assert parse_plan(typed, split, 2) == ["who founded zormont optics", "where was #1 born"]


def test_a_bridge_is_the_name_even_when_the_reader_writes_a_sentence() -> None:
    lookup = "Who designed the Zorvath Bridge?"
    assert bridge("Elspeth Varnock", lookup) == "Elspeth Varnock"
    assert bridge('"Elspeth Varnock."\nMore text', lookup) == "Elspeth Varnock"
    assert bridge("It was designed by Elspeth Varnock.", lookup) == "Elspeth Varnock"
    assert bridge("The Zorvath Bridge is in Halvern", "Where is the Zorvath Bridge?") == "Halvern"
    # a name that happens to hold a linking word is kept whole when nothing before it restates
    assert bridge("Marsh by the Sea", "Where was Ada born?") == "Marsh by the Sea"


def test_a_bridge_is_the_name_that_opens_an_active_restatement() -> None:
    lookup = "Who founded Bardess Mills?"
    assert bridge("Tamine Draskvane founded Bardess Mills.", lookup) == "Tamine Draskvane"
    made = "Thordwell Instruments makes the Darnel T8"
    assert bridge(made, "Which company makes the Darnel T8?") == "Thordwell Instruments"
    # a paragraph read out whole: the sentence that says most of the lookup is the one kept
    read = "A new office block was completed in 2000. The company's first premises were small. "
    assert bridge(read + "Tamine Draskvane founded Bardess Mills", lookup) == "Tamine Draskvane"
    # what opens the sentence must be a name, and the verb the lookup's own
    assert bridge("In 1834 Draskvane founded Bardess Mills", lookup) != "In 1834 Draskvane"
    assert bridge("Tamine Draskvane, a baker", lookup) == "Tamine Draskvane, a baker"
    assert bridge("Born in St. Ives", "Where was Ada born?") == "Born in St. Ives"


def test_a_value_or_a_name_the_question_gave_is_no_bridge() -> None:
    assert is_bridge("Elspeth Varnock", Q) and is_bridge("Darnel T8", Q)
    assert is_bridge("Zorvath Halvern", Q)  # one new word is something new
    assert not is_bridge("the Zorvath Bridge", Q) and not is_bridge("Zorvath Bridge.", Q)
    assert not is_bridge("612 metres", Q) and not is_bridge(" 1931", Q)  # values
    assert not is_bridge("", Q) and not is_bridge("the", Q)


def test_the_worked_examples_are_trusted_as_written() -> None:
    """Every worked example, parsed as the model's reply to its own question, gives the split
    it shows: the examples teach only splits that the checks accept."""
    turns = example_turns()
    assert [t.role for t in turns] == ["user", "assistant"] * len(EXAMPLES)
    for asked, split in EXAMPLES:
        lines = [line.split(". ", 1)[1] for line in split.splitlines()]
        assert parse_plan(asked, split, 2) == (lines if len(lines) > 1 else [asked]), asked
