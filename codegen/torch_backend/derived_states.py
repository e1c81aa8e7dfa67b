"""States that the other cached values of their own step determine (PyTorch only).

Contract: `derived_states(prog) -> (names, records)`.  `names`: the cached state buffers
(`h_seq`) whose every step is an elementwise function of the same step's non-state cached
values and the parameters (IndRNN's h = relu(z), the LSTM's h = k * o), in the order of
`prog.cached`; `records`: the forward records, for all steps at once, that write rows 1:
of those buffers from the cached ones (row 0 is the initial state, an input).

Why: the backward reads such a state (h_prev in a parameter gradient) and the values it is
made from (z, for relu's derivative), so saving both keeps the same information twice:
IndRNN's Function kept 2x the bytes of the plain cell.  A Function that saves only the
other values and rebuilds these states before its backward (one elementwise pass over all
steps) keeps each once.  A state read through its previous step (the LSTM's c, the GRU's h)
or through a product needs the recurrence or a GEMM and stays saved.  The NumPy backend
has no saved-tensor accounting, so this is a pass of the PyTorch backend.
"""
from __future__ import annotations

from codegen.program_recompute import all_steps
from codegen.records import Add, Assign, Buffer, Copy, Gemm, View, reads

__all__ = ["derived_states"]


def derived_states(prog) -> tuple[tuple[str, ...], list]:
    """(names, records) as the module docstring says; the records in forward order."""
    cached = {f"{name}_seq" for name, _, is_state in prog.cached if not is_state}
    states = [f"{name}_seq" for name, _, is_state in prog.cached if is_state]
    scratch = {r.name for r in prog.forward_pre if isinstance(r, Buffer) and r.shape[0] == "B"}
    moved = [all_steps(r, scratch) for r in prog.forward_loop]
    root = _roots(moved)
    given = {name for name in root if root[name] in cached} | cached | set(prog.weights)
    names, kept = [], set()
    for state in states:
        closure = _closure(moved, state, given, root)
        if closure is not None:
            names.append(state)
            kept |= closure
    return tuple(names), [r for n, r in enumerate(moved) if n in kept]


def _roots(records) -> dict:
    """Each name bound by a view -> the buffer it is finally a part of."""
    root = {}
    for r in records:
        if isinstance(r, View):
            root[r.name] = root.get(r.ref.name, r.ref.name)
    return root


def _writes(r) -> str | None:
    """The name a record writes (a view binds its name)."""
    if isinstance(r, View):
        return r.name
    if isinstance(r, Assign):
        return r.target if isinstance(r.target, str) else r.target.name
    if isinstance(r, Gemm):
        return r.out.name
    if isinstance(r, (Add, Copy)):
        return r.target.name
    return None


def _closure(records, state, given, root) -> set | None:
    """Positions of the records that write `state` from given values alone, or None when
    it needs anything else: a state's earlier step (its own or another's), a product, xs.
    A given value is in its cached buffer, so the records computing it are not needed; the
    views binding its name are."""
    needed, kept = {state}, set()
    for n in reversed(range(len(records))):
        r = records[n]
        written = _writes(r)
        if written not in needed or (written in given and not isinstance(r, View)):
            continue
        if not isinstance(r, (View, Assign)) or written == state and r.target.step != "1:":
            return None                        # a product or copy; a write of one step
        kept.add(n)
        inputs = reads(r) - ({state} if written == state else set())
        if any(root.get(name, name) not in given and root.get(name, name).endswith("_seq")
               for name in inputs):
            return None                        # a state's earlier step, xs
        needed |= inputs
    return kept if needed - given - {_writes(records[n]) for n in kept} == set() else None
