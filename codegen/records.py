"""Operation records: the generated code of a cell as plain data, before any backend spells it.

The schedule (`codegen.program`) lists what a module does as these frozen records, in
order; a backend (`codegen/<target>_backend/`) only spells each record in its language.
Buffers and values are named as in the mathematics (`h_seq`, `d_A_x`, `f`); `Ref` points
at one step, some columns or all steps (as one matrix) of a named buffer.  Sizes are
Python size expressions (`2 * H`), shared by every Python backend.

- `Buffer(name, shape)`: uninitialised storage; `Zeros(name, shape)`: zeros.
- `View(name, ref)`: bind a name to part of a buffer (no copy); its label names the
  equations it stands for when the value is another's under a new name (d_yx = d_yh).
- `Gemm(out, a, b, ...)`: out = a b (or out += a b), either operand transposed.
- `Assign(target, expr)`: an elementwise SymPy expression evaluated into `target` (a
  `Ref` into storage, or a fresh name when `target` is a str).
- `Add(target, source)`: target += source (bias, another product's columns).
- `Copy(target, source)`: target = source, element by element.
- `Reduce(target, source)`: target += the sum of source over its rows (batch, steps;
  `steps=True`: a (steps, B, w) source, summed over its two leading axes).
- `Scale(target, base, factor, repeat, size)`: target = base * factor, the base (B, size)
  repeated `repeat` times along the columns (one call for a run of gradient columns).
- `BlockSum(e, G, n)`: in an expression, the sum of e's G blocks of n columns (a value stored
  stacked by `codegen.program_norm`).
- `Fold(name, rows, factor)`: a constant factor of a block's activation that a backend may
  fold into its forward's copy of the weights (`Program.folds`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.terms import Carried, LossGrad

ALL_STEPS = ":"


class Softmax(sp.Function):
    """`Softmax(a)`: the softmax of a vector (each batch row), an opaque value to the printers."""

    nargs = 1
    is_real = True


class BlockSum(sp.Function):
    """`BlockSum(e, G, n)`: the sum of the G blocks of n columns that make up e (a value
    stored stacked, `codegen.program_norm`): the G terms of a fork sum, one per block, at once."""

    nargs = 3
    is_real = True


@dataclass(frozen=True)
class Ref:
    """Part of a named buffer: one step ("t", "t + 1"), all steps (":") or the first steps
    (":steps"); some columns of the last axis; or all its steps as one (steps * B, flat) matrix."""

    name: str
    step: str | None = None
    columns: str | None = None
    flat: str | None = None
    vector: bool = False      # a 1-D buffer: columns index its only axis


@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[str, ...]


@dataclass(frozen=True)
class Zeros:
    name: str
    shape: tuple[str, ...]
    label: str = ""


@dataclass(frozen=True)
class View:
    name: str
    ref: Ref
    label: str = ""           # the equations a view computes (a value equal to another's)


@dataclass(frozen=True)
class Gemm:
    out: Ref
    a: Ref
    b: Ref
    transpose_a: bool = False
    transpose_b: bool = False
    accumulate: bool = False
    label: str = ""
    note: str = ""            # a sentence said before it (the hoisted products)


@dataclass(frozen=True)
class Assign:
    target: Ref | str
    expr: sp.Expr
    label: str = ""
    scratch: str | None = None                  # contiguous scratch for all but the last write
    operands: tuple[tuple[str, Ref], ...] = ()  # symbols of expr standing for parts of buffers
    fold: sp.Expr | None = None                 # see `Fold`: the operands' factor a backend may fold


@dataclass(frozen=True)
class Scale:
    """Columns of a gradient buffer = a root's adjoint times stored factors (`codegen.program_chain`):
    `repeat` members of one size side by side, each its factor's columns times the same base."""

    target: Ref
    base: str
    factor: Ref
    repeat: int
    size: str
    label: str = ""


@dataclass(frozen=True)
class Fold:
    """Rows of a stacked weight (entries of a stacked bias) that feed only a block whose
    activation reads its pre-activation z as tanh(factor * z) (the sigmoid: tanh(z/2)).  A
    backend may scale its forward's copy of these rows by `factor` and evaluate the block's
    `Assign` (marked with the same `fold`) at operand / factor: one tanh, no scaling per step.
    The backward reads the stacked weights as they are."""

    name: str
    rows: str           # a slice, as code
    factor: sp.Expr


@dataclass(frozen=True)
class Add:
    target: Ref
    source: Ref


@dataclass(frozen=True)
class Copy:
    target: Ref
    source: Ref


@dataclass(frozen=True)
class Reduce:
    target: str
    source: Ref | sp.Expr
    label: str = ""
    steps: bool = False       # source spans every step, (steps, B, w): summed over both axes


@dataclass(frozen=True)
class Stack:
    """A stacked weight or bias: parameters by name, or None for zeros of that size."""

    name: str
    parts: tuple[tuple[str | None, str], ...]   # (parameter or None, its size)


@dataclass(frozen=True)
class GradRows:
    """grads[param] = the rows `rows` of the gradient of the stacked `source`."""

    param: str
    source: str
    rows: str | None = None


@dataclass(frozen=True)
class Program:
    """A recurrent cell's module as records, in the order they run."""

    stacking: tuple[Stack, ...]
    weights: tuple[str, ...]                     # what `_stack` returns, in order
    cached: tuple[tuple[str, str, bool], ...]    # (value, size, is_state) stored per step
    forward_pre: tuple = ()
    forward_loop: tuple = ()
    backward_pre: tuple = ()
    backward_loop: tuple = ()
    backward_post: tuple = ()
    recompute: tuple = ()                        # all steps' non-state cached values from the states
    grads: tuple[GradRows, ...] = ()
    dxs_written: bool = False
    folds: tuple[Fold, ...] = ()
    factors: tuple[tuple[str, str], ...] = ()    # (buffer, width) per step: `program_chain` factors
    factor_pass: tuple = ()                      # all steps' factors from the forward's values
    backward_reads: tuple[str, ...] = ()         # cached values the backward reads (factors: some)
    extras: dict = field(default_factory=dict, compare=False)


def reads(record) -> set[str]:
    """The names a record reads (its target's buffer included when it writes part of one)."""
    refs, exprs = [], []
    if isinstance(record, View):
        refs = [record.ref]
    elif isinstance(record, Gemm):
        refs = [record.a, record.b] + ([record.out] if record.accumulate else [])
    elif isinstance(record, Assign):
        exprs = [record.expr]
        refs = [r for _, r in record.operands] + ([record.target] if isinstance(record.target, Ref) else [])
    elif isinstance(record, (Add, Copy)):
        refs = [record.target, record.source]
    elif isinstance(record, Scale):
        refs, exprs = [record.target, record.factor], [sp.Symbol(record.base)]
    elif isinstance(record, Reduce):
        (refs if isinstance(record.source, Ref) else exprs).append(record.source)
    found = {r.name for r in refs}
    for expr in exprs:   # LossGrad(h), Carried(h) read dhs[t], d_h_next: not h
        expr = expr.xreplace({node: sp.Integer(1) for node in expr.atoms(LossGrad, Carried)})
        found |= {s.name for s in expr.free_symbols}
    return found


def prune_views(records) -> list:
    """The records without views of names no later record reads."""
    kept = []
    for n, record in enumerate(records):
        if isinstance(record, View) and not any(record.name in reads(r) for r in records[n + 1:]):
            continue
        kept.append(record)
    return kept


def part(name: str, cols: str | None, width, step: str | None = None) -> Ref:
    """Columns of a buffer; the whole buffer (no columns) when they cover its width."""
    return Ref(name, step, None if cols == f"0:{width}" else cols)


def step_of(product) -> str | None:
    """The step index of a product's per-step buffer: hoisted ones hold every step."""
    return "t" if product.hoisted else None


def list_labels(found) -> str:
    """(F5) (F6) (F8): the labels of the equations one record implements."""
    return " ".join(f"({label})" for label in found)
