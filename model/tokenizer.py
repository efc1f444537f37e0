"""A tokenizer without transformers: the part of its fast tokenizer that a client of a server uses.

`LightTokenizer` answers what the agent asks of `lm.tokenizer`: the chat template rendered as
transformers renders it (`model.template`), the special and added tokens (`agent.frame` defuses
them in tool output), and, through the `tokenizers` library itself, encoding and decoding. The
`tokenizers` model is loaded only when something encodes or decodes here: for a large
vocabulary that costs about half a second of CPU, and a client of a server has the server
encode its prompts (`model.remote`), so an `ask` never pays it.

Not here: where the tokenizer and template come from (`model.served`), rendering rules
(`model.template`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model.template import ChatTemplate, render_chat

if TYPE_CHECKING:
    from tokenizers import Tokenizer  # loaded by the caller, on first need


@dataclass(frozen=True)
class AddedToken:
    """An added token as `added_tokens_decoder` lists it (what `agent.frame` reads)."""

    content: str
    special: bool = True


class LightTokenizer:
    def __init__(
        self,
        load: Callable[[], Tokenizer],
        chat_template: ChatTemplate,
        special_tokens: Mapping[str, str],
        all_special_tokens: list[str],
        added_tokens: Mapping[int, str],
        vocab_size: int,
    ) -> None:
        """`load` gives the `tokenizers` model when it is first needed; `special_tokens` are
        the named ones (bos_token, eos_token, ...), as transformers' `special_tokens_map`."""
        self._load, self._backend, self._lock = load, None, threading.Lock()
        self.chat_template = chat_template
        self.special_tokens_map = dict(special_tokens)
        self.all_special_tokens = list(all_special_tokens)
        specials = set(self.all_special_tokens)
        self.added_tokens_decoder = {
            int(i): AddedToken(text, text in specials) for i, text in added_tokens.items()
        }
        self.vocab_size = vocab_size

    @property
    def backend_tokenizer(self) -> Tokenizer:
        with self._lock:  # the app may encode from two threads: load once
            if self._backend is None:
                self._backend = self._load()
            return self._backend

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        """{"input_ids": [...]}, as a transformers tokenizer called on one text."""
        ids = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return {"input_ids": ids}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def apply_chat_template(
        self,
        conversation: list[Any],
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        **variables: Any,
    ) -> str | list[int]:
        """The chat as text (`tokenize=False`) or token ids, like transformers' method of the
        same name; extra keyword arguments reach the template, over the special tokens."""
        text = render_chat(
            self.chat_template,
            conversation,
            tools,
            add_generation_prompt,
            {**self.special_tokens_map, **variables},
        )
        return self(text)["input_ids"] if tokenize else text
