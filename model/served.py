"""What a client needs of a served model, and the tokenizer it keeps on disk per server.

`ServedModel` is what `/v1/edgeagent/model` answers: the server's start id, the model's names,
tool format and end tokens, and what rendering and framing need of its tokenizer (the chat
template, the special and added tokens). A few kilobytes, fetched at every connect.
The tokenizer itself (`/v1/edgeagent/tokenizer`, megabytes, and half a second of CPU to load)
is fetched only when the client encodes or decodes on its side, and then kept in the cache
under the server's start id (`servers/ID/tokenizer.json`), so later clients of the same server
read it from disk; a restarted server has a new id, so a new model can never be read with an
old tokenizer. The newest few servers' files are kept, older ones removed.

Not here: HTTP (`model.wire`), the generator (`model.remote`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from model.chat import ToolFormat
from model.embedded import cache_root
from model.loaded import LoadedModel
from model.template import ChatTemplate
from model.tokenizer import LightTokenizer

if TYPE_CHECKING:
    from tokenizers import Tokenizer

KEEP_SERVERS = 4


class ServedModel(BaseModel):
    id: str  # the server's start id: new at every start
    name: str
    spec: str
    adapter: str | None = None
    tool_format: ToolFormat
    stop_token_ids: list[int]
    special_tokens: dict[str, str]  # the named ones, as transformers' special_tokens_map
    all_special_tokens: list[str]
    added_tokens: dict[int, str]  # id -> text, as transformers' added_tokens_decoder
    vocab_size: int
    chat_template: ChatTemplate
    # What an eval run records of the weights that answered (`evals.runner.run_meta`): the
    # adapter as `model.adapter.label` names it, the dtype, the quantization; and the context
    # length, which the long-context suite's direct arm fills.
    adapter_label: str | None = None
    dtype: str = "unknown"
    quant: str = "none"
    context_window: int | None = None


def describe(lm: LoadedModel, server_id: str, adapter_label: str | None = None) -> ServedModel:
    """What the server at `server_id` tells its clients of `lm` (a transformers tokenizer).
    `adapter_label`: the caller's `model.adapter.label` (it imports torch; this module does
    not, for the thin client's sake)."""
    tok = lm.tokenizer
    return ServedModel(
        id=server_id,
        name=lm.name,
        spec=lm.spec,
        adapter=lm.adapter,
        tool_format=lm.tool_format,
        stop_token_ids=sorted(lm.stop_token_ids),
        special_tokens=tok.special_tokens_map,
        all_special_tokens=list(tok.all_special_tokens),
        added_tokens={i: t.content for i, t in tok.added_tokens_decoder.items()},
        vocab_size=len(tok),
        chat_template=tok.chat_template,
        adapter_label=adapter_label,
        dtype=str(lm.model.dtype).removeprefix("torch.") if lm.model is not None else "unknown",
        quant=lm.quant,
        context_window=lm.window,
    )


def loaded(info: ServedModel, fetch: Callable[[], str]) -> LoadedModel:
    """A LoadedModel without weights; `fetch` gives the tokenizer's JSON when it is not on
    disk yet and something needs it."""
    tokenizer = LightTokenizer(
        lambda: load_tokenizer(info.id, fetch),
        info.chat_template,
        info.special_tokens,
        info.all_special_tokens,
        info.added_tokens,
        info.vocab_size,
    )
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        spec=info.spec,
        source=None,
        tool_format=info.tool_format,
        adapter=info.adapter,
        stop_token_ids=set(info.stop_token_ids),
        context_window=info.context_window,
    )


def folder() -> Path:
    return cache_root() / "servers"


def load_tokenizer(server_id: str, fetch: Callable[[], str]) -> Tokenizer:
    """The server's tokenizer from the cache, else fetched and saved there (best effort: a
    read-only cache only costs the next client a fetch). `tokenizers` is imported here, not
    at the top: most clients never decode on their side, and its import is ~15 ms of a start."""
    from tokenizers import Tokenizer

    path = folder() / _safe(server_id) / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path))
        except Exception:  # damaged (tokenizers raises a plain Exception): fetched anew below
            pass
    text = fetch()
    tokenizer = Tokenizer.from_str(text)
    with contextlib.suppress(OSError):
        _save(path, text)
        _prune(keep=path.parent)
    return tokenizer


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)  # readers see the whole file or none


def _prune(keep: Path) -> None:
    """Remove all but the newest KEEP_SERVERS servers' files."""
    dirs = sorted(
        (d for d in folder().iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True
    )
    for old in dirs[KEEP_SERVERS:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _safe(server_id: str) -> str:
    """The id as a file name: a server's answer must not name a path outside the cache."""
    name = "".join(c for c in server_id if c.isalnum() or c in "-_")
    if not name:
        raise ValueError(f"unusable server id {server_id!r}")
    return name
