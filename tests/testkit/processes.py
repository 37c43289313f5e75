"""Real server processes for integration tests: started, health-waited, stopped for real."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests

from bot.settings import ROOT

# Below the kernel's ephemeral range (32768-60999 on Debian): a port from that range can be
# taken by any outgoing connection before the server it was picked for binds it, and a Rasa
# binds only once its model is loaded, a minute later (it happened in `make bench`).
PORTS = range(20000, 32000)
_ports = random.Random(os.urandom(8))  # not the seeded global: runs side by side differ
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, not handed out before by this process."""
    for _ in range(1000):
        port = _ports.choice(PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class Process:
    """One child in its own process group, its output kept in a log file for failures."""

    def __init__(self, name: str, command: str | list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.popen = subprocess.Popen(  # noqa: S602 - Procfile lines are shell commands
            self.command,
            shell=isinstance(self.command, str),
            env=self.env,
            cwd=str(ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running and self.popen is not None:
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole group, as a crash would."""
        if self.popen is None:
            return
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


Service = TypeVar("Service", bound="HttpProcess")


class HttpProcess:
    """A child serving HTTP on a free loopback port (`port`, `url`), up once `ready_path`
    answers. Subclasses build the command and environment with the port, then `_child`."""

    label = "service"
    ready_path = "/health"
    ready_within_s = 30.0

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _child(self, command: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.process = Process(f"{self.label.replace(' ', '-')}-{self.port}", command, env,
                               log_dir)

    def healthy(self) -> bool:
        if self.process.popen is not None and not self.process.running:
            raise RuntimeError(f"{self.label} exited:\n{self.process.log_tail()}")
        try:
            return requests.get(self.url + self.ready_path, timeout=1).ok
        except requests.RequestException:
            return False

    def start(self: Service) -> Service:
        self.process.start()
        try:
            wait_for(self.healthy, self.ready_within_s, self.label, interval=0.1)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.process.log_tail()}") from error
        return self

    def stop(self) -> None:
        self.process.stop()
