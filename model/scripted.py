"""A scripted model: a Generator that replays queued outputs, for tests of the loop and the app.

Only the token source is replaced: each queued text is tokenized with a real (tiny, byte-level)
tokenizer and fed through Generator.stream's own detokenizer, stop strings, guard and
cancellation, so everything above the model runs for real. A queued None makes that call loop
forever (until the guard or max_new_tokens stops it), to script a doom loop. A queued text that
starts with CHOICE takes the first of the choices its turn allows (a steered URL or query, as a
real model held to them would write one), then goes on with the rest of the text.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from model.generate import Generator, SamplingSettings
from model.loader import LoadedModel

LOOP_TEXT = "I will check again. "
CHOICE = "<first choice>"


class ScriptedGenerator(Generator):
    batchable = False  # type: ignore[assignment]  # the script, not the weights, answers

    def __init__(
        self,
        lm: LoadedModel,
        outputs: list[str | None],
        delay_s: float = 0.0,
        end_id: int | None = None,
    ) -> None:
        super().__init__(lm)
        # The token that ends each output; a reference episode passes the one the chat
        # template ends a turn with, so what it records is what the model should sample.
        self.end_id = end_id if end_id is not None else sorted(lm.stop_token_ids)[0]
        self.outputs = list(outputs)
        self.prompts: list[list[int]] = []  # every prompt it was given, for assertions
        self.options: list[list[list[int]]] = []  # the choices each call allowed (not enforced)
        self.delay_s = delay_s  # per token, so a UI test can press a key mid-stream

    def fork(self) -> ScriptedGenerator:
        """Sub-calls read from the same script, in order, and share the prompt record."""
        twin = ScriptedGenerator(self.lm, [], self.delay_s, self.end_id)
        twin.outputs, twin.prompts, twin.options = self.outputs, self.prompts, self.options
        return twin

    def _token_source(
        self, ids: list[int], sampling: SamplingSettings, options: list[list[int]]
    ) -> tuple[int, Iterator[int]]:
        # The script is the model: `options` (constrained choices) are not enforced on it.
        self.prompts.append(ids)
        self.options.append(options)
        if not self.outputs:
            raise RuntimeError("the scripted model ran out of outputs")  # a test's own bug
        script = self.outputs.pop(0)
        text = script if script is not None else LOOP_TEXT * 1000
        head: list[int] = []
        if text.startswith(CHOICE):
            if not options:
                raise RuntimeError("a scripted choice where the turn allowed none")
            head, text = options[0], text.removeprefix(CHOICE)
        tokens = head + self.encode(text) + [self.end_id]

        def paced() -> Iterator[int]:
            for token in tokens:
                if self.delay_s:
                    time.sleep(self.delay_s)
                yield token

        return 0, paced()
