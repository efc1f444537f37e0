"""Where a local `edgeagent serve` listens: a small JSON file in the cache that the server writes
while it runs and the front ends read to find it without being told.

The file names the URL, the process id and the model; a reader checks that the process is
alive, so a server that died without cleaning up is not taken for a running one. It never holds
the API key: a client that needs one gets it from its own settings or environment.

Not here: talking to the server (`model.remote`), serving (`server/`, `tui.serve`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from model.embedded import cache_root


class Announcement(BaseModel):
    url: str  # the API root, e.g. http://127.0.0.1:8741/v1
    pid: int
    model: str
    needs_key: bool = False


def path() -> Path:
    return cache_root() / "server.json"


@contextlib.contextmanager
def announce(url: str, model: str, needs_key: bool) -> Iterator[Path]:
    """Write the file for as long as the block runs; remove it after, if it is still ours."""
    where = path()
    where.parent.mkdir(parents=True, exist_ok=True)
    note = Announcement(url=url, pid=os.getpid(), model=model, needs_key=needs_key)
    where.write_text(note.model_dump_json())
    try:
        yield where
    finally:
        current, _ = find()
        if current is not None and current.pid == os.getpid():
            where.unlink(missing_ok=True)


def find() -> tuple[Announcement | None, str]:
    """The running local server, or None and one line saying why there is none."""
    where = path()
    try:
        note = Announcement.model_validate(json.loads(where.read_text()))
    except FileNotFoundError:
        return None, f"no local server (no {where}; start one with `edgeagent serve`)"
    except (OSError, ValueError, ValidationError) as e:
        return None, f"no local server ({where} is unreadable: {type(e).__name__})"
    if not _alive(note.pid):
        return None, f"no local server (process {note.pid} in {where} is gone)"
    return note, f"local server {note.url} (pid {note.pid}, {note.model})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
