"""The user's code in a child process: its crashes, exits and hangs are reported, never ours.

`ChildRunner(target, cell, seconds)` has the `run(problem, shapes)` of
`checks.usercode.Runner`, but the user's module is imported and called in a fresh
interpreter (`python -P -m checks.runner`: -P keeps the user's folder from shadowing our
packages) that runs a `Runner` there.  What can go wrong becomes a one-line DeriveError:
an exception or `sys.exit` in the user's code (reported by the child), the process ending
on its own (`os._exit`, a crash) or being killed, and running longer than `seconds` in
all (the import and every call; then the child is killed).  Inputs the code changed in
place are printed once each as warnings.

The protocol: length-prefixed frames.  Requests are pickles (from us to our own child).
A reply is a JSON header followed by one `numpy.save` frame per array, read back with
`allow_pickle=False`: the child runs someone else's code, so nothing it sends is unpickled.
This isolates failures, not a hostile program: the child runs with the user's rights.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from derive.errors import DeriveError

TIMEOUT = 60.0
STARTUP = 120.0   # for the child's interpreter and our imports, before the user's code
MAX_FRAME = 1 << 30
ROOT = Path(__file__).resolve().parent.parent   # the folder that holds our packages
# what the child needs to know of the cell (the cell itself stays in the parent)
CellFacts = namedtuple("CellFacts", "name recurrent state_names input_name output param_names")


def cell_facts(cell) -> CellFacts:
    return CellFacts(cell.name, cell.recurrent, tuple(cell.state_names), cell.input_names[0], cell.output,
                     tuple(name for name, _ in cell.params()))


class ChildRunner:
    """A `Runner` in a child process, with a time limit for all of the user's code."""

    def __init__(self, target: str, cell, seconds: float = TIMEOUT, layout: str | None = None):
        self.label, self.seconds, self.used, self.shown = target, seconds, 0.0, set()
        self.dtypes: set[str] = set()   # the float dtypes the user's code returned, as reported
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.process = subprocess.Popen([sys.executable, "-P", "-m", "checks.runner"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                        start_new_session=True)   # Ctrl-C is ours to handle
        self.seconds = STARTUP          # Python and our modules starting is not the user's time
        self._receive("starting")
        self.seconds, self.used = seconds, 0.0
        self.contract = None   # a checks.adapt.Contract when the code has a layout
        self._request(("load", target, cell_facts(cell), layout), "importing it")

    def run(self, problem, shapes):
        """Forward and backward on one problem, in the child; a dict of float64 arrays.

        The child checked them, but it runs the user's code, which may have changed how
        (numpy itself, say): what arrives is checked again.
        """
        plain = {k: getattr(problem, k) for k in ("T", "B", "params", "xs", "state0", "dhs", "dstateT")}
        doing = "running forward() and backward()"
        result = self._request(("run", plain, shapes), doing)
        unchecked = {row for row, _ in self.contract.unchecked} if self.contract else set()
        if set(result) != set(shapes) - unchecked or not all(np.all(np.isfinite(v)) for v in result.values()):
            raise DeriveError(f"{self.label}: the process running your code sent a reply that is "
                              f"incomplete or not finite while {doing}")
        return result

    def close(self):
        if self.process.poll() is None:
            _kill(self.process)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _request(self, message, doing):
        try:
            _write(self.process.stdin, pickle.dumps(message))
        except (BrokenPipeError, OSError):
            raise DeriveError(self._ended(doing)) from None
        return self._receive(doing)

    def _receive(self, doing):
        start = time.monotonic()
        try:
            header = json.loads(self._frame(doing))
            arrays = {name: np.load(io.BytesIO(self._frame(doing)), allow_pickle=False)
                      for name in header["arrays"]}
        except (ValueError, KeyError, TypeError):
            raise DeriveError(f"{self.label}: the process running your code sent a broken reply "
                              f"while {doing} (does your code write to file descriptor 1?)") from None
        finally:
            self.used += time.monotonic() - start
        self.dtypes.update(str(d) for d in header.get("dtypes", []) if isinstance(d, str))
        if header.get("contract"):
            from checks.adapt import Contract
            try:
                self.contract = Contract.from_json(header["contract"])
            except (KeyError, TypeError, ValueError):
                raise DeriveError(f"{self.label}: the process running your code sent a broken reply "
                                  f"while {doing}") from None
        for warning in header.get("warnings", []):
            if warning not in self.shown:
                self.shown.add(warning)
                print(f"lstm-derive: warning: {warning}", file=sys.stderr)
        if header["status"] != "ok":
            raise DeriveError(str(header["message"]).splitlines()[0])
        return {name: np.asarray(value, dtype=np.float64) for name, value in arrays.items()}

    def _frame(self, doing) -> bytes:
        size = struct.unpack(">Q", self._read(8, doing))[0]
        if size > MAX_FRAME:
            raise ValueError("frame too large")
        return self._read(size, doing)

    def _read(self, n, doing) -> bytes:
        fd, data = self.process.stdout.fileno(), b""
        while len(data) < n:
            left = self.seconds - self.used
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                _kill(self.process)
                raise DeriveError(f"{self.label}: your code did not finish within {self.seconds:g} s "
                                  f"(--timeout) while {doing}; it was stopped")
            chunk = os.read(fd, min(n - len(data), 1 << 20))
            if not chunk:
                raise DeriveError(self._ended(doing))
            data += chunk
        return data

    def _ended(self, doing) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill(self.process)
            code = self.process.wait()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            return f"{self.label}: the process running your code was killed by {name} while {doing}"
        return (f"{self.label}: the process running your code ended with exit code {code} while "
                f"{doing} (os._exit or a crash in your code?)")


def _kill(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)   # with anything it started
    except (ProcessLookupError, PermissionError):
        process.kill()


def _write(stream, data: bytes):
    stream.write(struct.pack(">Q", len(data)) + data)
    stream.flush()


# ----- the child ---------------------------------------------------------------------------

def main():
    """Serve requests on stdin until it closes; replies go to the original stdout."""
    from checks.usercode import Runner, load
    requests, replies = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)   # the user's code cannot read our requests
    os.dup2(2, 1)                                  # ... and its prints cannot corrupt replies
    _reply(replies, "ok", {}, [])                  # started: the user's time begins now
    runner = None
    while True:
        head = requests.read(8)
        if len(head) < 8:
            return
        kind, *args = pickle.loads(requests.read(struct.unpack(">Q", head)[0]))
        try:
            if kind == "load":
                target, facts, layout = args
                runner = Runner(load(target), target, facts, layout)
                contract = runner.contract.to_json() if runner.contract else None
                _reply(replies, "ok", {}, [], contract=contract)
            else:
                result = runner.run(SimpleNamespace(**args[0]), args[1])
                _reply(replies, "ok", result, runner.warnings, dtypes=sorted(runner.dtypes))
        except DeriveError as err:
            _reply(replies, "error", {}, runner.warnings if runner else [], str(err))


def _reply(stream, status, arrays, warnings, message="", dtypes=(), contract=None):
    header = dict(status=status, message=message, warnings=warnings, arrays=list(arrays),
                  dtypes=list(dtypes), contract=contract)
    _write(stream, json.dumps(header).encode())
    for value in arrays.values():
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value, dtype=np.float64), allow_pickle=False)
        _write(stream, buffer.getvalue())


if __name__ == "__main__":
    main()
