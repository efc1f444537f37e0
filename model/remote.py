"""A Generator whose model runs in `edgeagent serve`: only generation crosses the wire.

The agent loop, its tools, its log and its prompts stay in the client. `connect(url)` fetches
what the client needs of the served model (`/v1/edgeagent/model`: the chat template, special
tokens, tool format and end tokens; `model.served`), so the client renders and parses exactly
as the served model would, whichever model the server was started with. The server encodes
the rendered prompts (`/v1/edgeagent/tokenize`) with the very tokenizer it decodes with, so
the client never loads one to answer; `RemoteGenerator.stream` sends prompt token ids with the
sampling settings, the guard and any `choices` (`/v1/edgeagent/generate`) and yields the
server's `Delta`s and `Completion`, token ids included, as the in-process generator does. Token
ids come from the server rather than from re-tokenizing text, so trajectories hold what the
model read and sampled. Cancelling closes the connection, which frees the server's slot.

Nothing here imports torch or transformers (`tests/tui/server/test_thin_client.py` checks it in a
real `edgeagent ask`): a client starts in a fraction of a second.
Not kept between calls: the server has no per-client cache, so every call sends its whole
prompt (prefill is repeated where the in-process generator would reuse its cache).
Not here: finding a local server (`model.discovery`), serving (`tui/server/`), HTTP
(`model.wire`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

from pydantic import ValidationError

from model.guard import GuardSettings
from model.loaded import LoadedModel
from model.sampling import SamplingSettings
from model.served import ServedModel, loaded
from model.stream import Completion, Delta, complete
from model.wire import Endpoint, ServerError

__all__ = ["RemoteGenerator", "ServerError", "connect"]


def connect(url: str, api_key: str | None = None) -> RemoteGenerator:
    """A generator on the server at `url` (its API root, e.g. http://127.0.0.1:8741/v1)."""
    endpoint = Endpoint(url.rstrip("/"), api_key)
    try:
        info = ServedModel.model_validate(endpoint.get("/edgeagent/model"))
    except ValidationError:  # another program on that port, or another version of ours
        msg = f"the server at {endpoint.root} does not answer as this edgeagent's server does"
        raise ServerError(msg) from None
    lm = loaded(info, lambda: _tokenizer_json(endpoint, info.id))
    return RemoteGenerator(endpoint, lm, info)


class RemoteGenerator:
    """`model.stream.Generator` on a server."""

    batchable = False  # the server batches, not this process
    concurrent = True  # requests in flight together are decoded together there (model.batch)

    def __init__(self, endpoint: Endpoint, lm: LoadedModel, info: ServedModel) -> None:
        self.endpoint, self.lm, self.info = endpoint, lm, info

    @property
    def url(self) -> str:
        return self.endpoint.root

    def fork(self) -> RemoteGenerator:
        return RemoteGenerator(self.endpoint, self.lm, self.info)

    def reset(self) -> None:
        pass  # no cache on this side

    def encode(self, prompt: str) -> list[int]:
        """The prompt's ids from the server's own tokenizer (no special tokens added)."""
        return list(self.endpoint.post("/edgeagent/tokenize", {"text": prompt})["ids"])

    def complete(
        self,
        prompt: str | list[int],
        sampling: SamplingSettings | None = None,
        guard: GuardSettings | None = None,
    ) -> Completion:
        return complete(self, prompt, sampling, guard)

    def stream(
        self,
        prompt: str | list[int],
        sampling: SamplingSettings | None = None,
        guard: GuardSettings | None = None,
        cancel: threading.Event | None = None,
        choices: list[str] | None = None,
    ) -> Iterator[Delta | Completion]:
        sampling = sampling or SamplingSettings()
        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ValueError("empty prompt")
        body = {
            "prompt_ids": ids,
            "sampling": sampling.model_dump(),
            "guard": guard.model_dump() if guard is not None else None,
            "choices": choices or [],
        }
        start, text, tokens = time.perf_counter(), "", []
        with self.endpoint.lines("/edgeagent/generate", body) as lines:
            for line in lines:
                if cancel is not None and cancel.is_set():
                    break  # leaving the block drops the connection: the slot is freed
                event = _event(line, self.url)
                if isinstance(event, Completion):
                    yield event
                    return
                if event is not None:
                    text, tokens = text + event.text, tokens + event.token_ids
                    yield event
        yield Completion(
            text=text,
            token_ids=tokens,
            finish_reason="cancelled" if cancel is not None and cancel.is_set() else "length",
            prompt_tokens=len(ids),
            reused_tokens=0,
            ttft_s=0.0,
            decode_s=time.perf_counter() - start,
        )


def _event(line: str, url: str) -> Delta | Completion | None:
    if not line.strip():
        return None
    data = json.loads(line)
    if "delta" in data:
        return Delta.model_validate(data["delta"])
    if "completion" in data:
        return Completion.model_validate(data["completion"])
    message = data.get("error", {}).get("message", line[:200])
    raise ServerError(f"the server at {url} failed: {message}")


def _tokenizer_json(endpoint: Endpoint, server_id: str) -> str:
    """The served tokenizer (`tokenizers` JSON), checked to be the one of the server that
    `connect` met: a restarted server may serve another model."""
    answer = endpoint.get("/edgeagent/tokenizer")
    if answer.get("id") != server_id:
        raise ServerError(f"the server at {endpoint.root} restarted; connect to it again")
    return answer["tokenizer"]
