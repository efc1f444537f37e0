"""Saved conversations, so `edgeagent chat --resume` picks up where the user left off.

One JSON file per conversation under `<cache>/chats/`, rewritten whole (to a temporary file,
then renamed) after every turn, so a crash never leaves half a file. A conversation keeps only
what the user saw: their questions and the final answers. The steps and tool output of each
turn are in the trajectory log, by episode id; feeding them back would only crowd a small
model's context.

Not here: the trajectory log (`agent.log`), rendering (`tui.app`).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from model.embedded import cache_root
from model.messages import Message


class Turn(BaseModel):
    question: str
    answer: str = ""
    outcome: str | None = None
    episode_id: str | None = None  # the trajectory in the log
    attachment: str | None = None


class Chat(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    turns: list[Turn] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return self.turns[0].question[:60] if self.turns else "(empty)"

    def history(self, system: str) -> list[Message]:
        """The conversation as the model reads it next turn: questions and final answers."""
        return [Message(role="system", content=system), *self.exchanges()]

    def exchanges(self) -> list[Message]:
        """Each answered turn as a user and an assistant message."""
        messages = []
        for turn in self.turns:
            if turn.answer:
                messages.append(Message(role="user", content=turn.question))
                messages.append(Message(role="assistant", content=turn.answer))
        return messages


class StoreError(Exception):
    """A saved conversation cannot be found or read; the message says which and why."""


def chats_dir() -> Path:
    return cache_root() / "chats"


def save(chat: Chat, folder: Path | None = None) -> Path:
    folder = folder or chats_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chat.id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(chat.model_dump_json(indent=1))
    os.replace(tmp, path)
    return path


def load(ref: str | None, folder: Path | None = None) -> Chat:
    """The conversation whose id starts with `ref`, or the latest one when `ref` is None."""
    folder = folder or chats_dir()
    files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if ref:
        files = [p for p in files if p.stem.startswith(ref)]
    if not files:
        what = f"no saved conversation {ref!r}" if ref else "no saved conversation yet"
        raise StoreError(f"{what} in {folder}; start one with `edgeagent chat`")
    try:
        return Chat.model_validate_json(files[-1].read_text())
    except (OSError, ValidationError) as e:
        raise StoreError(f"cannot read {files[-1]}: {str(e).splitlines()[0]}") from None


def transcript(chat: Chat) -> str:
    """The conversation as Markdown, for /save."""
    parts = [f"# {chat.title}\n"]
    for turn in chat.turns:
        attached = f" (attached: {turn.attachment})" if turn.attachment else ""
        parts.append(f"**You:** {turn.question}{attached}\n\n**edgeagent:** {turn.answer}\n")
    return "\n".join(parts)
