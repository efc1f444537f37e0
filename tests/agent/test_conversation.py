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
