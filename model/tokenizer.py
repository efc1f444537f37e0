"""A tokenizer without transformers: the part of its fast tokenizer that a client of a server uses.

`LightTokenizer` answers what the agent asks of `lm.tokenizer`: the chat template rendered as
transformers renders it (`model.template`), the special and added tokens (`agent.frame` defuses
them in tool output), and, through the `tokenizers` library itself, encoding and decoding. The
`tokenizers` model is loaded only when something encodes or decodes here: for a large
vocabulary that costs about half a second of CPU, and a client of a server has the server
encode its prompts (`model.remote`), so an `ask` never pays it.

`from_folder` builds one from a saved tokenizer (tokenizer.json, tokenizer_config.json) as
transformers' fast tokenizer reads it, for a model loaded without transformers (`model.lean`).

Not here: where a server's tokenizer and template come from (`model.served`), rendering rules
(`model.template`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
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

    @property
    def eos_token_id(self) -> int | None:
        return self._id_of("eos_token")

    @property
    def pad_token_id(self) -> int | None:
        return self._id_of("pad_token")

    def _id_of(self, name: str) -> int | None:
        token = self.special_tokens_map.get(name)
        return None if token is None else self.backend_tokenizer.token_to_id(token)

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


# transformers' named special tokens, in the order its `all_special_tokens` lists them
NAMED = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def from_folder(folder: Path) -> LightTokenizer | None:
    """The fast tokenizer saved in `folder`, or None when it holds no tokenizer.json (a
    sentencepiece-only one: transformers then converts it, so the caller uses transformers)."""
    data, config_path = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not data.is_file() or not config_path.is_file():
        return None
    from tokenizers import Tokenizer

    config = json.loads(config_path.read_text())
    template = config.get("chat_template")
    if template is None and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    if isinstance(template, list):  # [{"name": ..., "template": ...}], as transformers saves
        template = {t["name"]: t["template"] for t in template}
    named = {k: _content(config[k]) for k in NAMED if config.get(k) is not None}
    extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
    everything = [*named.values(), *(_content(t) for t in extra)]
    backend = Tokenizer.from_file(str(data))  # wanted at the first prompt anyway
    added = backend.get_added_tokens_decoder()
    tokenizer = LightTokenizer(
        lambda: backend,
        template,
        named,
        list(dict.fromkeys(everything)),
        {i: t.content for i, t in added.items()},
        backend.get_vocab_size(with_added_tokens=True),
    )
    tokenizer.added_tokens_decoder = {
        i: AddedToken(t.content, t.special) for i, t in sorted(added.items())
    }
    return tokenizer


def _content(token: str | dict[str, Any]) -> str:
    return token if isinstance(token, str) else token["content"]
