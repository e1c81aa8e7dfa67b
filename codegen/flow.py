"""Gradient flow through time, measured with the generated code, and its plot.

`gradient_norms(cell)` runs the cell's generated NumPy module: for k = 1..K it starts a
k-step sequence from the state the same inputs produce at step T-k, puts the loss
L = u . h_T on the last output only (u a fixed random unit vector per example), and
reads the norm of dL/d(state at T-k) from `backward`'s initial-state gradient.  The same
is done for the plain RNN.  `plot_svg` / `plot_pdf` draw both curves with
matplotlib, an optional documentation dependency: without it the callers say so.
"""
from __future__ import annotations

import io
import types
from functools import lru_cache

import numpy as np

from codegen.emit_numpy import emit_numpy
from catalogue.cells import RNN
from derive.derivation import derive
from derive.jacobians import expanded_terms, state_jacobians
from derive.rules import DEFINITIONS, X
from derive.stages import Cell, Kind

BATCH, INPUT, HIDDEN = 16, 16, 32
STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50)   # k, steps back
OPEN_BIAS = 3.0   # sigmoid(3) = 0.95: a gate this open keeps 95% per step
RC = {"svg.hashsalt": "lstm-derive", "svg.fonttype": "none", "font.size": 9}


def generated_module(cell: Cell) -> types.ModuleType:
    """The cell's generated module, rendered and loaded in memory (it is our own output)."""
    module = types.ModuleType(f"lstm_derive_generated_{cell.name}")
    exec(compile(emit_numpy(derive(cell), "flow"), f"<generated {cell.name}>", "exec"),
         module.__dict__)
    return module


def _sizes(module) -> dict[str, int]:
    return {arg: INPUT if symbol == "D" else HIDDEN for symbol, arg in module.SIZES.items()}


def norms(module, open_biases=(), seed: int = 0) -> np.ndarray:
    """Mean over the batch of |dL/d state_{T-k}| for every k in STEPS (all state variables).

    `open_biases` are set to OPEN_BIAS, opening the gates they feed.
    """
    rng = np.random.default_rng(seed)
    params = module.init_params(**_sizes(module), seed=seed)
    for bias in open_biases:
        params[bias][:] = OPEN_BIAS
    steps = STEPS[-1]
    xs = rng.normal(size=(steps, BATCH, INPUT))
    out_size = module.forward(params, xs[:1])[0].shape[2]   # the output's size, whatever it is
    u = rng.normal(size=(BATCH, out_size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
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


def gate_biases(derivation) -> tuple[str, ...]:
    """Biases of the sigmoid gates that scale a weight-free state path (LSTM: b_f)."""
    cell = derivation.cell
    names = {str(term) for j in state_jacobians(derivation) if j.state == j.previous
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


@lru_cache(maxsize=16)
def setting() -> dict:
    """The measurement's constants, for the document's description of it."""
    sigmoid = DEFINITIONS[Kind.SIGMOID].expr     # the one definition of the sigmoid
    return dict(hidden=HIDDEN, input=INPUT, batch=BATCH, steps=STEPS[-1], bias=f"{OPEN_BIAS:g}",
                gate=f"{float(sigmoid.subs(X, OPEN_BIAS)):.2f}", closed=str(sigmoid.subs(X, 0)))


def gradient_norms(cell: Cell) -> dict[str, tuple[float, ...]]:
    """{curve label: norm for every k in STEPS}: this cell at its usual initialisation,
    with its weight-free path's gates opened (when it has one), and the plain RNN."""
    module, biases = generated_module(cell), gate_biases(derive(cell))
    curves = {f"{cell.name}": norms(module)}
    if biases:
        curves[f"{cell.name}, {', '.join(biases)} = {OPEN_BIAS:g}"] = norms(module, biases)
    if cell.name != RNN.name:
        curves[RNN.name] = _rnn_norms()
    return {name: tuple(float(f"{v:.4g}") for v in values) for name, values in curves.items()}


@lru_cache(maxsize=1)
def _rnn_norms():
    return norms(generated_module(RNN))


def _figure(curves):
    """The plot as a matplotlib Figure, made without pyplot and without touching the
    caller's matplotlib settings (a notebook showing a derivation keeps its own)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(5.6, 2.9))
        ax = fig.add_subplot()
        for (name, values), style in zip(curves.items(), ("o-", "s-", "^--")):
            ax.semilogy(STEPS, values, style, markersize=3, label=name)
        ax.set_xlabel("k (steps back from the last output)")
        ax.set_ylabel("mean norm of dL/ds at T-k")
        # plain tick labels: matplotlib's mathtext would cost most of the plotting time
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(np.log10(v))}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
        fig.tight_layout()
    return fig


def plot_svg(cell: Cell) -> str | None:
    """The plot as SVG text (deterministic), or None without matplotlib."""
    drawn = _plots(cell)
    return None if drawn is None else drawn[0]


def plot_pdf(cell: Cell) -> bytes | None:
    """The plot as PDF bytes for the LaTeX document; None without matplotlib."""
    drawn = _plots(cell)
    return None if drawn is None else drawn[1]


@lru_cache(maxsize=16)
def _plots(cell) -> tuple[str, bytes] | None:
    """The plot drawn once, saved as SVG and as PDF (no dates: reproducible output)."""
    try:
        import matplotlib
        fig = _figure(gradient_norms(cell))
    except ImportError:
        return None
    svg, pdf = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context(RC):   # tick labels are made while saving: same settings
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "Creator": None})
    text = svg.getvalue().decode("utf-8")
    return text[text.index("<svg"):], pdf.getvalue()
