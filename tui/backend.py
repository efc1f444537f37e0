"""Which generator a front end runs on: a running `edgeagent serve`, or the model in-process.

`--server URL` uses that server (an error if it cannot be reached); `--server none` always
loads the model here; `--server auto` (the default, or `$EDGEAGENT_SERVER`) uses the local
server that `serve` announced in the cache when it serves the model these settings ask for,
and otherwise says in one line why not and loads the model here. Only generation crosses the
wire: the agent loop, the tools and the log stay in this process (`model.remote`).

Not here: serving (`tui.serve`), the client itself (`model.remote`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from agent.settings import Settings

Say = Callable[[str], None]


def add_server_flags(p: Any, default: str | None = None) -> None:
    """`default`: the command's own (eval: none, so a run names the server it used); else
    $EDGEAGENT_SERVER, else auto."""
    g = p.add_argument_group("server")
    g.add_argument("--server", default=default or os.environ.get("EDGEAGENT_SERVER", "auto"),
                   metavar="URL|auto|none", help="generate on an `edgeagent serve` server: its "
                   "URL, auto (a local one if running) or none "
                   f"({default or '$EDGEAGENT_SERVER, else auto'})")  # fmt: skip
    g.add_argument("--server-key", default=os.environ.get("EDGEAGENT_API_KEY"),
                   metavar="KEY", help="the server's API key ($EDGEAGENT_API_KEY)")  # fmt: skip


def generator_for(
    settings: Settings,
    server: str,
    key: str | None,
    say: Say,
    load_here: Callable[[Settings], Any],
) -> Any:
    """A RemoteGenerator on the chosen server, or `load_here(settings)`."""
    from model.remote import ServerError, connect

    if server == "none":
        return load_here(settings)
    if server != "auto":
        generator = connect(api_root(server), key)
        say(f"edgeagent: generating on {api_root(server)} ({generator.lm.spec})")
        return generator
    url, why = local_server(settings, key)
    if url is not None:
        try:
            generator = connect(url, key)
        except ServerError as e:
            why = str(e)
        else:
            say(f"edgeagent: generating on the {why}")
            return generator
    say(f"edgeagent: {why}; loading the model in this process")
    return load_here(settings)


def local_server(settings: Settings, key: str | None) -> tuple[str | None, str]:
    """The announced local server's URL if it fits these settings, and one line saying so."""
    from model.discovery import find

    note, why = find()
    if note is None:
        return None, why
    served = note.model.split("+")[0]
    if served != settings.model.spec:
        return None, f"the local server runs {note.model}, not {settings.model.spec}"
    if note.needs_key and not key:
        return None, f"the local server at {note.url} needs a key (--server-key)"
    return note.url, why


def api_root(url: str) -> str:
    """http://host:port or http://host:port/v1, as the API root (…/v1)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"
