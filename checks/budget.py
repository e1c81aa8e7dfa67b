"""Work that may not end, run where it can be stopped: a forked child with a time and memory limit.

`limited(fn, *args, seconds=..., memory=...)` runs `fn(*args)` in a child process made by
`fork` (it inherits everything already computed, so nothing is derived twice) and returns
its result, or raises `OverBudget` when the child runs out of time (it is killed) or of
memory (its address space is capped at the parent's size plus `memory` bytes).  SymPy's
`simplify`, exact powers and mpmath's exp of a huge number can each run for minutes inside
one C call, where no signal or flag in this process would stop them; a process can always
be killed.  Exceptions raised by `fn` are raised again here.

This is for our own computations on hostile input (formulas, specs), not for running the
user's code: that runs in a fresh interpreter (`checks.runner`).  Off Linux (no `fork`
on Windows; on macOS it is unsafe without `exec`) the work runs in this process, without
limits.
"""
from __future__ import annotations

import multiprocessing
import os
import sys

SECONDS = 5.0
MEMORY = 2 << 30   # bytes of address space the child may add to what it inherited


class OverBudget(Exception):
    """The work did not finish within its time or memory budget."""


def limited(fn, *args, seconds: float = SECONDS, memory: int = MEMORY):
    """fn(*args), computed in a child that is killed after `seconds`."""
    if not sys.platform.startswith("linux"):   # fork without exec is unsafe on macOS
        return fn(*args)
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, fn, args, memory), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise OverBudget(f"took longer than {seconds:g} s")
        try:
            status, value = receive.recv()
        except (EOFError, OSError):
            raise OverBudget("its process died (out of memory?)") from None
    finally:
        child.kill()
        child.join()
        receive.close()
    if status == "error":
        raise value
    return value


def _child(send, fn, args, memory):
    _cap_memory(memory)
    try:
        reply = ("ok", fn(*args))
    except MemoryError:
        reply = ("error", OverBudget(f"needed more than {memory >> 20} MB of memory"))
    except Exception as err:  # noqa: BLE001 - handed to the parent, which raises it
        reply = ("error", err)
    try:
        send.send(reply)
    except Exception as err:  # noqa: BLE001 - e.g. an exception that cannot be pickled
        send.send(("error", RuntimeError(f"{type(err).__name__}: {err}")))


def _cap_memory(memory):
    """Limit the address space to what the process has now plus `memory` (Linux only)."""
    try:
        import resource
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + memory
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass   # no /proc or no resource module: time is still limited
