"""Gradient flow through time, measured by running a cell's generated NumPy module.

`measure_flow(derivation, jacobians, source, reference)` loads `source`, the module text the
build rendered for the cell, and for k = 1..K starts a k-step sequence from the state the
same inputs produce at step T-k, puts the loss L = u . h_T on the last output only (u a
fixed random unit vector per example), and reads the mean norm of dL/d(state at T-k) from
`backward`'s initial-state gradient.  It measures the cell at its usual initialisation, again
with the gates of its weight-free state path opened (when it has one), and the module of
`reference` (the plain RNN) the same way.  For a cell with a weight-free state path it also
measures that path *alone*: the gradient of the state at T, multiplied back step by step by
the path's diagonal only (evaluated by the derivation's interpreter on the same inputs), so
the document can say how much of the whole gradient that path carries.
The result is plain numbers, a `Flow`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from checks.gradcheck import load_module
from codegen.document import Flow, Setting
from derive.interpret import evaluate, run
from derive.jacobians import expanded_terms
from derive.rules import DEFINITIONS, X
from derive.stages import Kind

BATCH, INPUT, HIDDEN = 16, 16, 32
STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50)   # k, steps back
OPEN_BIAS = 3.0   # sigmoid(3) = 0.95: a gate this open keeps 95% per step


def measure_flow(derivation, jacobians, source: str,
                 reference: tuple[str, str] | None = None) -> Flow:
    """The cell's curves (plain, and with its weight-free path's gates opened) and the
    `reference` = (name, module text) curve, each a norm for every k in STEPS."""
    name = derivation.cell.name
    biases = gate_biases(derivation, jacobians)
    opened = f"{name}, {', '.join(biases)} = {OPEN_BIAS:g}"
    curves, paths = {name: _norms(source)}, {}
    if biases:
        curves[opened] = _norms(source, biases)
        free = tuple(_free_diagonals(jacobians).items())
        for label, opening in ((name, ()), (opened, biases)):
            paths[f"{label}: weight-free path alone"] = _path_alone(derivation, free, source, opening)
    if reference is not None:
        curves[reference[0]] = _norms(reference[1])
    return Flow(steps=STEPS, curves=tuple(curves.items()), biases=biases, setting=setting(),
                paths=tuple(paths.items()))


@lru_cache(maxsize=32)
def _norms(source: str, open_biases: tuple[str, ...] = ()) -> tuple[float, ...]:
    """`norms` of the module `source`, to 4 significant digits (what the document prints).
    Cached by the text: the same module always measures the same."""
    module = load_module(source, "lstm_derive_measured")
    return tuple(float(f"{v:.4g}") for v in norms(module, open_biases))


def _sizes(module) -> dict[str, int]:
    return {arg: INPUT if symbol == "D" else HIDDEN for symbol, arg in module.SIZES.items()}


def _problem(module, open_biases, seed):
    """Parameters (with `open_biases` set to OPEN_BIAS), inputs and the loss's unit vectors."""
    rng = np.random.default_rng(seed)
    params = module.init_params(**_sizes(module), seed=seed)
    for bias in open_biases:
        params[bias][:] = OPEN_BIAS
    xs = rng.normal(size=(STEPS[-1], BATCH, INPUT))
    out_size = module.forward(params, xs[:1])[0].shape[2]   # the output's size, whatever it is
    u = rng.normal(size=(BATCH, out_size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return params, xs, u


def norms(module, open_biases=(), seed: int = 0) -> np.ndarray:
    """Mean over the batch of |dL/d state_{T-k}| for every k in STEPS (all state variables).

    `open_biases` are set to OPEN_BIAS, opening the gates they feed.
    """
    params, xs, u = _problem(module, open_biases, seed)
    steps = STEPS[-1]
    states, state = [None], None      # states[j]: the state after the first j steps
    for j in range(steps):
        _, state, _ = module.forward(params, xs[j:j + 1], state)
        states.append(state)
    result = []
    for k in STEPS:
        hs, _, cache = module.forward(params, xs[steps - k:], states[steps - k])
        dhs = np.zeros_like(hs)
        dhs[-1] = u
        _, _, dstate0 = module.backward(params, cache, dhs)
        squared = sum((g ** 2).sum(axis=1) for g in dstate0.values())
        result.append(float(np.sqrt(squared).mean()))
    return np.array(result)


def _free_diagonals(jacobians) -> dict[str, sp.Expr]:
    """For each state with a weight-free path to its own next value, that path's diagonal."""
    return {j.state: sum((p.diags[0] for p in j.weight_free), sp.Integer(0))
            for j in jacobians if j.state == j.previous and j.weight_free}


@lru_cache(maxsize=32)
def _path_alone(derivation, free, source, open_biases=(), seed: int = 0) -> tuple[float, ...]:
    """Mean over the batch of |prod_{s=T-k+1}^{T} diag(free_s) dL/ds_T|, the gradient the
    weight-free path alone carries k steps back, for every k in STEPS (4 significant digits)."""
    module = load_module(source, "lstm_derive_measured")
    params, xs, u = _problem(module, open_biases, seed)
    free = dict(free)
    batch = {s: np.zeros((BATCH, params_size)) for s, params_size in _state_sizes(module, params)}
    dhs = np.zeros((len(xs), BATCH, u.shape[1]))
    dhs[-1] = u
    trace = run(derivation, params, xs, batch, dhs, {s: np.zeros_like(v) for s, v in batch.items()})[5]
    carried = {s: trace[-1][f"d_{s}"] for s in free}   # dL/ds_T, from the loss on h_T
    result, k = [], 0
    for want in STEPS:
        while k < want:   # one more step back: multiply by the diagonal of step T - k
            values = {**trace[len(xs) - 1 - k], **params}
            carried = {s: g * evaluate(free[s], values) for s, g in carried.items()}
            k += 1
        squared = sum((g ** 2).sum(axis=1) for g in carried.values())
        result.append(float(f"{float(np.sqrt(squared).mean()):.4g}"))
    return tuple(result)


def _state_sizes(module, params):
    """(state name, size) from a forward step's final state."""
    probe = module.forward(params, np.zeros((1, 1, INPUT)))[1]
    return [(s, v.shape[1]) for s, v in probe.items()]


def gate_biases(derivation, jacobians) -> tuple[str, ...]:
    """Biases of the sigmoid gates that scale a weight-free state path (LSTM: b_f);
    `jacobians` are the derivation's one-step state Jacobians."""
    cell = derivation.cell
    names = {str(term) for j in jacobians if j.state == j.previous
             for path in j.weight_free for term in expanded_terms(path.diags[0])
             if term.is_Symbol}   # the gate that multiplies the kept state itself
    found = []
    for stage in cell.stages:
        if stage.name in names and stage.kind is Kind.SIGMOID:
            found += _bias_of(cell, stage.inputs[0])
    return tuple(dict.fromkeys(found))


def _bias_of(cell, value) -> list[str]:
    """The bias of the affine stage behind a pre-activation, looking through sums."""
    if value not in {s.name for s in cell.stages}:
        return []
    stage = cell.stage(value)
    if stage.kind is Kind.AFFINE:
        return [stage.bias] if stage.bias else []
    if stage.kind is Kind.ADD:
        return [b for x in stage.inputs for b in _bias_of(cell, x)]
    return []


@lru_cache(maxsize=1)
def setting() -> Setting:
    """The measurement's constants; the gates' values from the one definition of the sigmoid."""
    sigmoid = DEFINITIONS[Kind.SIGMOID].expr
    return Setting(hidden=HIDDEN, input=INPUT, batch=BATCH, open_bias=OPEN_BIAS,
                   open_gate=float(sigmoid.subs(X, OPEN_BIAS)), closed_gate=sigmoid.subs(X, 0))
