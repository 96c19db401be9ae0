"""The emulator in a process of its own (`python -m tests.emulator`), for a caller whose own process
must not share its CPU and GIL with the emulator: a benchmark's raw client, or a test that times the
plugin while the emulator floods it (in the test's process the emulator's threads would be greenlets
of the test's gevent hub, and a flood would starve the test's own reading).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["emulator_process"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def emulator_process(*options: str) -> Iterator[str]:
    """Start the emulator with the command-line `options`; yields its base URL; stops it at the end."""
    command = [sys.executable, "-m", "tests.emulator", "--port", "0", *options]
    proc = subprocess.Popen(
        command, cwd=_REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the emulator did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the emulator stops at stdin EOF
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
