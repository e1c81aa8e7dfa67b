"""How someone else's code lays out its parameters and arrays, as data (presets included).

A `Layout` says everything `compare --against` needs to call code written in another
style without an adapter: which of the user's functions to call and how their arguments
and results are named (`Signature`, read from one line like
"lstm_step_forward(x, h, c, Wx, Wh, b) -> h, c, cache"), how the user's parameters stack
ours (`params`: user name -> the components of one gate block along its input axis,
"W+U+b"; `gates`: the order of the gate blocks, one letter per gate, the suffix of our
parameter names, so "ifog" for an LSTM, "zrn" for a GRU), the orientation of the stacked
matrices (`weights`: "in_by_gates" is (D, 4H), used as x @ W; "gates_by_in" is (4H, D),
used as W @ x), the batch axis of per-step arrays (`batch`: "rows" (B, D), "columns"
(D, B), "single" one (D, 1) column, "vector" one (D,) vector; the last two compare on
batches of one) and the axes of whole sequences (`sequence`: "TBD", "BTD", "DBT", ...).

Signature names (what `checks.adapt` passes and reads): per step, `x`, the state names
(`h`, `c`: the previous state in, the new state out), `cache`, the user's parameter
names, `params` (all of them as a dict); backward `dh`, `dc` (the whole gradient of the
new state in; of the previous state out), `dx`, `d<param>`, `grads` (a dict). Per
sequence, `xs`, `hs`, `h0`/`c0` (initial state), `hT`/`cT` (final state), `dhs` (every
step's dL/dh), `dh_last` (dL/dh of the last step only), `dhT`/`dcT` (final-state
gradients), `dxs`, `dh0`/`dc0`. `_` ignores a result. What a signature leaves out is
the optional part of the contract: compare supplies zeros and says what it could not check.

A user declares a layout as a preset name or a dict (a preset under "preset", with keys
overridden) in a module-level `LAYOUT`, or names a preset with `--layout`; nothing of
it is executed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

import numpy as np

from derive.errors import DeriveError

NAME = r"[A-Za-z_][\w.]*"
SIGNATURE = re.compile(rf"\s*({NAME})\s*\(([\w\s,]*)\)\s*->\s*([\w\s,]*)")
WEIGHTS = ("in_by_gates", "gates_by_in")
BATCH = ("rows", "columns", "single", "vector")
LOSSES = ("given", "sum")   # who gives dL/dh: compare (dhs, dh_last), or a loss sum(h) built in


@dataclass(frozen=True)
class Signature:
    """One of the user's functions: its (dotted) name, argument and result names."""

    function: str
    args: tuple[str, ...]
    returns: tuple[str, ...]

    @staticmethod
    def parse(text: str, what: str) -> "Signature":
        found = SIGNATURE.fullmatch(text) if isinstance(text, str) else None
        if not found:
            raise DeriveError(f"layout: {what} must look like 'name(arg, ...) -> result, ...', got {text!r}")
        split = [tuple(a.strip() for a in part.split(",") if a.strip()) for part in found.groups()[1:]]
        return Signature(found.group(1), *split)

    def __str__(self) -> str:
        return f"{self.function}({', '.join(self.args)}) -> {', '.join(self.returns)}"


@dataclass(frozen=True)
class Layout:
    """One style of hand-written code (see the module docstring for every field)."""

    name: str
    step: bool                  # step functions (compare runs BPTT) or whole sequences
    forward: Signature
    backward: Signature
    gates: str = ""             # block order of stacked parameters; "" = ours, not stacked
    params: tuple[tuple[str, str], ...] = ()   # user name -> "W+U+b" (one gate block's parts)
    weights: str = "in_by_gates"
    batch: str = "rows"
    sequence: str = "TBD"
    loss: str = "given"
    gate_names: tuple[tuple[str, str], ...] = ()   # our gate letter -> the user's, for "{gate}" names

    def stacked(self) -> bool:
        return bool(self.params)

    def entries(self) -> list[tuple[str, list[str], str]]:
        """(user name, parts of a block, the gates it stacks): a name with "{gate}" in it
        is one parameter per gate ("W{gate}": "U+W" is Wf = [U_f W_f], ...)."""
        names = dict(self.gate_names)
        out = []
        for user, spec in self.params:
            if "{gate}" in user:
                out += [(user.replace("{gate}", names.get(g, g)), spec.split("+"), (g,)) for g in self.gates]
            else:
                out.append((user, spec.split("+"), tuple(self.gates) or ("",)))
        return out


def ours(part: str, gate: str) -> str:
    """Our name of one part of a gate's block: W_f, or W for a cell without gates."""
    return f"{part}_{gate}" if gate else part


def _preset(name, step, forward, backward, **rest) -> Layout:
    return Layout(name, step, Signature.parse(forward, "forward"), Signature.parse(backward, "backward"),
                  **rest)


# Named styles.  "course-step"/"course-seq": the step and sequence functions of a well-known
# course assignment (Wx (D,4H), Wh (H,4H), b (4H,), gates i,f,o,g, batch-first sequences,
# no initial cell state), "course-rnn-step"/"course-rnn-seq" its plain RNN (Wx (D,H), ...);
# "gist": a widely copied batched NumPy LSTM (one WLSTM of (1+D+H, 4H) whose first row is
# the bias, inputs [1, x, h], gates i,f,o,g, (T, B, D) arrays, optional c0/h0 and
# final-state gradients); "torch": PyTorch's nn.LSTM weights
# (weight_ih (4H, D), weight_hh (4H, H), gates i,f,g,o, one bias) with step functions.
PRESETS = {p.name: p for p in (
    _preset("ours", False, "forward(params, xs, state0) -> hs, stateT, cache",
            "backward(params, cache, dhs, dstateT) -> grads, dxs, dstate0"),
    _preset("course-step", True, "lstm_step_forward(x, h, c, Wx, Wh, b) -> h, c, cache",
            "lstm_step_backward(dh, dc, cache) -> dx, dh, dc, dWx, dWh, db",
            gates="ifog", params=(("Wx", "W"), ("Wh", "U"), ("b", "b"))),
    _preset("course-rnn-step", True, "rnn_step_forward(x, h, Wx, Wh, b) -> h, cache",
            "rnn_step_backward(dh, cache) -> dx, dh, dWx, dWh, db",
            params=(("Wx", "W"), ("Wh", "U"), ("b", "b"))),
    _preset("course-rnn-seq", False, "rnn_forward(xs, h0, Wx, Wh, b) -> hs, cache",
            "rnn_backward(dhs, cache) -> dxs, dh0, dWx, dWh, db",
            params=(("Wx", "W"), ("Wh", "U"), ("b", "b")), sequence="BTD"),
    _preset("course-seq", False, "lstm_forward(xs, h0, Wx, Wh, b) -> hs, cache",
            "lstm_backward(dhs, cache) -> dxs, dh0, dWx, dWh, db",
            gates="ifog", params=(("Wx", "W"), ("Wh", "U"), ("b", "b")), sequence="BTD"),
    _preset("gist", False, "LSTM.forward(xs, WLSTM, c0, h0) -> hs, cT, hT, cache",
            "LSTM.backward(dhs, cache, dcT, dhT) -> dxs, dWLSTM, dc0, dh0",
            gates="ifog", params=(("WLSTM", "b+W+U"),)),
    _preset("torch", True, "step_forward(x, h, c, params) -> h, c, cache",
            "step_backward(dh, dc, cache) -> dx, dh, dc, grads",
            gates="ifgo", params=(("weight_ih", "W"), ("weight_hh", "U"), ("bias", "b")),
            weights="gates_by_in"),
)}


def read(declared, option: str | None) -> Layout | None:
    """The layout from `--layout` (a preset name) and a module's `LAYOUT` (a preset name or
    a dict whose keys override its "preset", else the --layout preset); None for neither."""
    base = _named(option, "--layout") if option else None
    if declared is None:
        return base
    if isinstance(declared, str):
        return _named(declared, "LAYOUT")
    if not isinstance(declared, dict):
        raise DeriveError(f"layout: LAYOUT must be a preset name or a dict, not {type(declared).__name__}")
    declared = dict(declared)
    preset = declared.pop("preset", None)
    base = _named(preset, "LAYOUT['preset']") if preset else base or PRESETS["ours"]
    return _override(base, declared)


def _named(name, where) -> Layout:
    if name not in PRESETS:
        raise DeriveError(f"layout: {where} names no preset {name!r} (presets: {', '.join(PRESETS)})")
    return PRESETS[name]


def _override(base: Layout, keys: dict) -> Layout:
    known = {f.name for f in fields(Layout)} - {"name"}
    for key, value in keys.items():
        if key not in known:
            raise DeriveError(f"layout: unknown key {key!r} (keys: {', '.join(sorted(known))})")
        if key in ("forward", "backward"):
            value = Signature.parse(value, key)
        elif key == "params":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise DeriveError("layout: params must be a dict like {'Wx': 'W', 'Wh': 'U', 'b': 'b'}")
            value = tuple((str(k), v) for k, v in value.items())
        elif key == "step":
            value = bool(value)
        elif key == "gate_names":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise DeriveError("layout: gate_names must be a dict like {'g': 'c'}")
            value = tuple((str(k), v) for k, v in value.items())
        elif not isinstance(value, str):
            raise DeriveError(f"layout: {key} must be a string, not {type(value).__name__}")
        base = replace(base, **{key: value})
    return replace(base, name=f"{base.name} with {', '.join(keys)}" if keys else base.name)


def check(layout: Layout, cell_name: str, param_names) -> None:
    """A one-line DeriveError if `layout` cannot describe code for the cell `cell_name`
    whose parameters are `param_names`."""
    for key, allowed in (("weights", WEIGHTS), ("batch", BATCH), ("loss", LOSSES)):
        if getattr(layout, key) not in allowed:
            raise DeriveError(f"layout: {key} must be one of {', '.join(allowed)}, not {getattr(layout, key)!r}")
    if sorted(layout.sequence) != ["B", "D", "T"]:
        raise DeriveError(f"layout: sequence must order the letters T, B, D, not {layout.sequence!r}")
    if layout.stacked():
        known = set(param_names)
        for user, parts, gates in layout.entries():
            for gate in gates:
                missing = [ours(p, gate) for p in parts if ours(p, gate) not in known]
                if missing:
                    raise DeriveError(f"layout: {user} = {'+'.join(parts)!r} over gates {gates!r} needs "
                                      f"{missing[0]}, which {cell_name} does not have")
        covered = {ours(p, g) for _, parts, gates in layout.entries() for p in parts for g in gates}
        if covered != known:
            raise DeriveError(f"layout: the parameters {', '.join(sorted(known - covered))} of {cell_name} "
                              "are in none of the layout's params")


def _block(params, parts, gate, shapes):
    """One gate's block, (gate size, input sizes): its parts side by side (a bias as a column)."""
    cols = [np.asarray(params[ours(p, gate)]).reshape(shapes[ours(p, gate)][0], -1) for p in parts]
    return np.concatenate(cols, axis=1)


def pack(layout: Layout, params: dict) -> dict:
    """Our parameters as the user's (a copy).  Biases alone are a vector for batch rows,
    a column for batch columns."""
    if not layout.stacked():
        return {k: np.array(v) for k, v in params.items()}
    shapes = {k: np.shape(v) for k, v in params.items()}
    out = {}
    for user, parts, gates in layout.entries():
        full = np.concatenate([_block(params, parts, g, shapes) for g in gates], axis=0)
        vector = all(len(shapes[ours(p, gates[0])]) == 1 for p in parts) and len(parts) == 1
        if vector and layout.batch in ("rows", "vector"):
            full = full[:, 0]
        out[user] = np.ascontiguousarray(full.T if layout.weights == "in_by_gates" else full)
    return out


def unpack(layout: Layout, grads: dict, shapes: dict) -> dict:
    """The user's (stacked) gradients as ours; `shapes` are our parameters' shapes.  A
    stacked gradient of the wrong shape is a DeriveError "returned dW of shape ..."."""
    if not layout.stacked():
        return grads
    out = {}
    for user, parts, gates in layout.entries():
        rows = sum(shapes[ours(parts[0], g)][0] for g in gates)
        cols = sum(int(np.prod(shapes[ours(p, gates[0])][1:], dtype=int)) for p in parts)
        value = np.asarray(grads[user])
        want = (rows, cols) if layout.weights == "gates_by_in" else (cols, rows)
        if value.shape != want and not (cols == 1 and value.shape in ((rows,), (rows, 1), (1, rows))):
            raise DeriveError(f"returned d{user} of shape {value.shape}, expected {want}")
        full = (value.reshape(rows, 1) if cols == 1 else value.T if layout.weights == "in_by_gates" else value)
        start = 0
        for g in gates:
            n = shapes[ours(parts[0], g)][0]
            block, col = full[start:start + n], 0
            for p in parts:
                shape = shapes[ours(p, g)]
                width = int(np.prod(shape[1:], dtype=int))
                out[ours(p, g)] = block[:, col:col + width].reshape(shape)
                col += width
            start += n
    return out
