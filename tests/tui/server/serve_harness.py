"""A real `edgeagent serve` app on uvicorn, on a free loopback port, in a thread of the test:
the harness of tests/server (imported by its test files; pytest puts this folder on the path)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from model.generate import Generator
from model.loader import LoadedModel
from model.serving import Scheduler
from tui.server.app import ServeOptions, create_app


class Running:
    """A server on 127.0.0.1 and an ephemeral port; `url` is its API root."""

    def __init__(
        self, generator: Generator, options: ServeOptions, slots: int, queue: int, **scheduling
    ):
        """`scheduling`: more of the scheduler's settings (`prefix_tokens`)."""
        self.generator, self.options = generator, options
        self.scheduler = Scheduler(generator, slots=slots, max_queue=queue, **scheduling)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        app = create_app(generator.lm, self.scheduler, options)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.scheduler.close()


def servers() -> Iterator[Callable[..., Running]]:
    """For a fixture: start(generator, slots=4, queue=8, prefix_tokens=None, **options) ->
    Running; every server started is stopped when the fixture ends."""
    started: list[Running] = []

    def start(
        generator: Generator,
        slots: int = 4,
        queue: int = 8,
        prefix_tokens: int | None = None,
        **options,
    ) -> Running:
        scheduling = {} if prefix_tokens is None else {"prefix_tokens": prefix_tokens}
        running = Running(generator, ServeOptions(**options), slots, queue, **scheduling)
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def endless(lm: LoadedModel) -> Generator:
    """A generator whose replies end only at their token limit (no end token)."""
    return Generator(dataclasses.replace(lm, stop_token_ids=set()))


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


class Spawned:
    """The server in a process of its own (its own interpreter lock, as in real use), on an
    endless tiny qwen2 model; for measuring throughput against clients in the test process."""

    def __init__(self, slots: int, queue: int) -> None:
        root = str(Path(__file__).resolve().parents[3])  # the repository: tests/tui/server/..
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root}
        cmd = [sys.executable, __file__, str(slots), str(queue)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        self.root = self.proc.stdout.readline().strip()  # printed once it is listening
        assert self.root.startswith("http://"), "the server process did not start"
        self.url = f"{self.root}/v1"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _serve_here(slots: int, queue: int) -> None:
    import torch

    from model.tiny import tiny_model

    torch.set_num_threads(1)
    running = Running(endless(tiny_model("qwen2")), ServeOptions(guard={"enabled": False}),
                      slots, queue)  # fmt: skip
    print(running.root, flush=True)
    threading.Event().wait()  # until terminated


if __name__ == "__main__":
    _serve_here(int(sys.argv[1]), int(sys.argv[2]))
