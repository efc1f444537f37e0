"""A Generator whose model runs in `edgeagent serve`: only generation crosses the wire.

The agent loop, its tools, its log and its prompts stay in the client. `connect(url)` fetches
the server's tokenizer, chat template, tool format and end tokens (`/v1/edgeagent/model`), so
the client renders, counts and parses exactly as the served model would, whichever model the
server was started with; `RemoteGenerator.stream` sends prompt token ids with the sampling
settings, the guard and any `choices` (`/v1/edgeagent/generate`) and yields the server's
`Delta`s and `Completion`, token ids included, as `Generator.stream` does in-process. Token
ids come from the server rather than from re-tokenizing text, so trajectories hold what the
model sampled. Cancelling closes the connection, which frees the server's slot.

Not kept between calls: the server has no per-client cache, so every call sends its whole
prompt (prefill is repeated where the in-process generator would reuse its cache).
Not here: finding a local server (`model.discovery`), serving (`server/`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from model.chat import ToolFormat
from model.generate import Completion, Delta, Generator
from model.guard import GuardSettings
from model.loader import LoadedModel, ModelLoadError
from model.sampling import SamplingSettings

CONNECT_S = 5.0
READ_S = 600.0  # a long prompt's prefill on a busy server, before its first line


class ServerError(ModelLoadError):
    """The server could not be reached, or refused a request: one line for the user."""


def connect(url: str, api_key: str | None = None) -> RemoteGenerator:
    """A generator on the server at `url` (its API root, e.g. http://127.0.0.1:8741/v1)."""
    root = url.rstrip("/")
    info = _get(root, "/edgeagent/model", api_key)
    return RemoteGenerator(root, _remote_model(info), api_key)


class RemoteGenerator(Generator):
    batchable = False  # type: ignore[assignment]  # the server batches, not this process

    def __init__(self, url: str, lm: LoadedModel, api_key: str | None = None) -> None:
        # Not Generator.__init__: there are no weights and no cache on this side.
        self.url, self.lm, self.api_key = url, lm, api_key
        self.lean, self._fast, self._cache, self._cached = False, None, None, []
        self.forward_s = 0.0

    def fork(self) -> RemoteGenerator:
        return RemoteGenerator(self.url, self.lm, self.api_key)

    def reset(self) -> None:
        pass

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
        with _client(self.api_key) as http:
            try:
                with http.stream("POST", self.url + "/edgeagent/generate", json=body) as r:
                    _raise_for(r, self.url)
                    for line in r.iter_lines():
                        if cancel is not None and cancel.is_set():
                            break  # leaving the block drops the connection: the slot is freed
                        event = _event(line, self.url)
                        if isinstance(event, Completion):
                            yield event
                            return
                        if event is not None:
                            text, tokens = text + event.text, tokens + event.token_ids
                            yield event
            except httpx.HTTPError as e:
                raise ServerError(f"the server at {self.url} failed mid-answer: {e}") from None
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


def _remote_model(info: dict[str, Any]) -> LoadedModel:
    """A LoadedModel without weights: the served model's tokenizer, tool format and ends."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    specials = {k: v for k, v in info["special_tokens"].items() if isinstance(v, str)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(info["tokenizer"]), **specials
    )
    tokenizer.chat_template = info["chat_template"]
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        spec=info["spec"],
        source=None,
        tool_format=ToolFormat(info["tool_format"]),
        adapter=info.get("adapter"),
        stop_token_ids=set(info["stop_token_ids"]),
    )


def _client(api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    # trust_env off: a proxy from the environment must not carry a loopback model's traffic.
    timeout = httpx.Timeout(CONNECT_S, read=READ_S)
    return httpx.Client(headers=headers, timeout=timeout, trust_env=False)


def _get(root: str, path: str, api_key: str | None) -> dict[str, Any]:
    try:
        with _client(api_key) as http:
            r = http.get(root + path)
            _raise_for(r, root)
            return r.json()
    except httpx.HTTPError as e:
        raise ServerError(f"cannot reach the server at {root}: {e}") from None


def _raise_for(r: httpx.Response, root: str) -> None:
    if r.status_code < 400:
        return
    try:
        message = json.loads(r.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {r.status_code}"
    raise ServerError(f"the server at {root} refused: {message}")
