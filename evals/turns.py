"""A reply as the model writes it: the token ids of an assistant turn after a prompt, tool
calls in the form the model emits unprompted, and the token that ends a turn.

The reference builders (`evals.references`, `evals.search_references`) write their replies
with these, so a trained reply is token for token what the model would decode.

Not here: what a reference reply says (the builders), the chat template itself
(`model.chat`).
"""

from __future__ import annotations

import json
from typing import Any

from model.chat import ToolFormat, render
from model.loader import LoadedModel
from model.messages import Message, ToolCall


def reply_ids(lm: LoadedModel, prompt: str, messages: list[Message], reply: Message,
              tools: list[dict[str, Any]] | None) -> list[int] | None:  # fmt: skip
    """The reply's tokens as the template renders it after `messages`, end token included;
    None where the template re-renders the prompt differently once a reply follows."""
    full = render(lm.tokenizer, [*messages, reply], tools, lm.tool_format, False)
    if not full.startswith(prompt):
        return None
    text = full[len(prompt) :].rstrip("\n")  # the newline after the end token is not sampled
    return list(encode(lm, text))


def encode(lm: LoadedModel, text: str) -> list[int]:
    return list(lm.tokenizer(text, add_special_tokens=False)["input_ids"])  # as Generator does


def natural_calls(lm: LoadedModel, calls: list[ToolCall]) -> str | None:
    """Calls as the model writes them unprompted, where that differs from its template and our
    parser reads it; None: the template's rendering. Qwen2.5-Coder writes bare JSON, one call
    a line: at the start of a reply its `<tool_call>` token has log-probability about -23,
    and that token's embedding is nearly `<|im_start|>`'s (cosine 0.92), so an epoch of LoRA
    on tagged replies taught it to open replies with `<|im_start|>` (measured; see
    evals/TRAINING.md). The agent's parser (`model.chat.parse`) reads bare JSON lines."""
    if not calls or lm.tool_format is not ToolFormat.HERMES:
        return None
    return "\n".join(
        json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) for c in calls
    )


def call_text(lm: LoadedModel, call: ToolCall) -> str:
    return natural_calls(lm, [call]) or turn_text(lm, Message(role="assistant", tool_calls=[call]))


def turn_text(lm: LoadedModel, reply: Message) -> str:
    """An assistant turn as the template writes it, without its end token."""
    return lm.tokenizer.decode(bare_reply(lm, reply)[:-1])


def end_id(lm: LoadedModel) -> int:
    """The token that ends an assistant turn: the template's end marker where it is one of the
    model's stop tokens (Qwen's `<|im_end|>`), else the model's first stop token (a template
    that writes its markers as plain text, as the tiny test models' does)."""
    after = bare_reply(lm, Message(role="assistant", content="X"))
    return next((t for t in after if t in lm.stop_token_ids), sorted(lm.stop_token_ids)[0])


def bare_reply(lm: LoadedModel, reply: Message) -> list[int]:
    """`reply`'s tokens after a minimal chat (a template may insist on a system and a user)."""
    chat = [Message(role="system", content="S"), Message(role="user", content="U")]
    prompt = render(lm.tokenizer, chat, None, lm.tool_format)
    ids = reply_ids(lm, prompt, chat, reply, None)
    if not ids:
        raise ValueError("the chat template re-renders the prompt once a reply follows")
    return ids
