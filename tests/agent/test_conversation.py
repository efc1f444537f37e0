"""The plain conversation: a resumed one shows the model its earlier turns."""

from __future__ import annotations

from agent.conversation import Conversation
from agent.settings import load_settings
from model.messages import Message
from model.scripted import ScriptedGenerator


def test_a_resumed_conversation_is_in_the_prompt_of_the_new_turn(tiny) -> None:
    settings = load_settings(None, {"offline": True})
    earlier = [
        Message(role="user", content="Which river?"),
        Message(role="assistant", content="The Quillon."),
    ]
    generator = ScriptedGenerator(tiny("qwen2"), ["About 212 km."])
    conversation = Conversation(generator, settings, earlier)
    list(conversation.turn("How long is it?"))
    prompt = generator.lm.tokenizer.decode(generator.prompts[0])
    assert prompt.index("Which river?") < prompt.index("The Quillon.") < prompt.index("How long")
    assert [m.role for m in conversation.messages] == ["system", *["user", "assistant"] * 2]
    assert conversation.messages[-1].content == "About 212 km."


def test_offline_a_conversion_is_answered_by_the_pre_processor(tiny) -> None:
    generator = ScriptedGenerator(tiny("qwen2"), ["Hello!"])
    conversation = Conversation(generator, load_settings(None, {"offline": True}))
    said = "".join(e.text for e in conversation.turn("What is 100 km/h in mph?"))
    assert said.startswith("100 km/h is about 62.1 mph.") and generator.prompts == []
    list(conversation.turn("Hi"))  # the model still answers the rest, the exchange in its prompt
    assert "62.1 mph" in generator.lm.tokenizer.decode(generator.prompts[0])
