"""Running commands: the one seam between fsm-init and the kernel's userland tools.

Appliers take an Executor so unit tests can record the calls (and script the answers) while the
netns tests run the real binaries.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Executor", "RecordingExecutor", "Result", "SubprocessExecutor"]


@dataclass(frozen=True)
class Result:
    """What a command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Executor:
    """Runs argv with optional stdin; never raises for a non-zero exit (callers decide)."""

    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result:
        raise NotImplementedError

    def which(self, name: str) -> str | None:
        raise NotImplementedError


class SubprocessExecutor(Executor):
    """The real thing: subprocess with a timeout, a missing binary reported as exit 127."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result:
        try:
            proc = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            return Result(tuple(argv), 127, "", f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            return Result(tuple(argv), 124, "", f"{argv[0]}: timed out after {self.timeout:.0f}s")
        return Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def which(self, name: str) -> str | None:
        return shutil.which(name)


Responder = Callable[[tuple[str, ...], str | None], Result | None]


@dataclass
class RecordingExecutor(Executor):
    """Records every call; answers from `responder` (None → success with empty output)."""

    responder: Responder | None = None
    available: frozenset[str] | None = None  # binaries that "exist"; None = all
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)

    def run(self, argv: Sequence[str], stdin: str | None = None) -> Result:
        key = tuple(argv)
        self.calls.append((key, stdin))
        if self.available is not None and key[0] not in self.available:
            return Result(key, 127, "", f"{key[0]}: command not found")
        answer = self.responder(key, stdin) if self.responder else None
        return answer if answer is not None else Result(key, 0)

    def which(self, name: str) -> str | None:
        if self.available is None or name in self.available:
            return f"/usr/sbin/{name}"
        return None
