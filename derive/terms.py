"""The vocabulary of backward terms: SymPy expressions, with a few small `Function` classes.

A backward equation `d_v = ...` is one SymPy expression in the per-step values (symbols
named like the values: `f`, `c_prev`), their adjoints (`d_f`: `adjoint(name)`) and the
parameters (`W_f`).  Everything elementwise is ordinary SymPy; what is not elementwise is
one of these, so every consumer — the evaluator, the printers, the checks — reads one
expression language instead of a tagged union:

- `WT(W, d)`: W^T d, a transposed-weight product (batch rows: `d @ W`);
- `RowSum(e)`: the sum of e over the entries of one vector (kept as a column, so it
  broadcasts against the vector it came from: softmax's sum(d_y * y));
- `RowMean(e)`: the mean of e over the entries of one vector, kept as a column likewise
  (a layer norm's mean and variance);
- `LossGrad(v)`: the direct gradient of this step's loss term l_t with respect to v
  (`dl_t/dv` — never dL/dv, which is the total gradient `d_v`);
- `Carried(s)`: the gradient of state s carried back from step t+1 (BPTT);
- `Outer(d, x)`: d x^T, a weight's gradient at one step (parameter gradients sum it).

`vector_form` turns an index-notation result (a Sum over an Indexed contraction, as the
rules derive it) into this vocabulary, so non-elementwise terms come from SymPy too.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter


class WT(sp.Function):
    """`WT(W, d)` = W^T d: what flows back through an affine stage into the value W multiplies."""

    nargs = 2
    is_real = True


class RowSum(sp.Function):
    """`RowSum(e)`: the sum of e over one vector's entries, broadcast back over them."""

    nargs = 1
    is_real = True


class RowMean(sp.Function):
    """`RowMean(e)`: the mean of e over one vector's entries, broadcast back over them."""

    nargs = 1
    is_real = True


class LossGrad(sp.Function):
    """`LossGrad(v)`: the direct gradient of this step's loss with respect to v."""

    nargs = 1
    is_real = True


class Carried(sp.Function):
    """`Carried(s)`: dL/ds_t arriving from step t+1, through every use of s_t there."""

    nargs = 1
    is_real = True


class Outer(sp.Function):
    """`Outer(d, x)` = d x^T: a weight's gradient at one step (summed over steps and batch)."""

    nargs = 2
    is_real = True


NON_ELEMENTWISE = (WT, RowSum, RowMean, LossGrad, Carried, Outer)


def value(name: str) -> sp.Symbol:
    """The symbol of a per-step value or parameter (elementwise maths is scalar per element)."""
    return sp.Symbol(name, real=True)


def adjoint(name: str) -> sp.Symbol:
    """The symbol of a value's adjoint dL/d(name), per element."""
    return sp.Symbol(f"d_{name}", real=True)


def vector_form(expr: sp.Expr, free: sp.Idx, names: dict) -> sp.Expr:
    """An index-notation expression with one free index as a vector expression.

    `names` maps each IndexedBase to the symbol of the vector (or weight) it stands for.
    `base[free]` becomes that symbol; a `Sum(W[k, free] * d[k], k)` becomes `WT(W, d)`;
    any other `Sum(body, k)` becomes `RowSum(body)` with k playing the free index.
    """
    if isinstance(expr, sp.Indexed):
        if expr.indices != (free,):
            raise ValueError(f"cannot read {expr} as a vector indexed by {free}")
        return names[expr.base]
    if isinstance(expr, sp.Sum):
        body, (k, *_) = expr.function, expr.limits[0]
        outside = sp.Mul(*(f for f in sp.Mul.make_args(body) if not f.has(k)))
        inside = body / outside   # factors free of the summation index leave the sum
        transposed = _transposed_product(inside, k, free, names)
        summed = transposed if transposed is not None else RowSum(vector_form(inside, k, names))
        return vector_form(outside, free, names) * summed
    if not expr.args:
        return expr
    return expr.func(*(vector_form(a, free, names) for a in expr.args))


def _transposed_product(body, k, free, names):
    """`W[k, free] * d[k]` -> WT(W, d), else None."""
    factors = sp.Mul.make_args(body)
    matrix = [f for f in factors if isinstance(f, sp.Indexed) and f.indices == (k, free)]
    vector = [f for f in factors if isinstance(f, sp.Indexed) and f.indices == (k,)]
    if len(factors) == 2 and len(matrix) == 1 and len(vector) == 1:
        return WT(names[matrix[0].base], names[vector[0].base])
    return None


class TermPrinter(StrPrinter):
    """Plain-text form of backward expressions, as `print(derivation)` shows them."""

    def _print_WT(self, e):
        return f"{self._print(e.args[0])}.T @ {self.parenthesize(e.args[1], PRECEDENCE['Mul'])}"

    def _print_RowSum(self, e):
        return f"sum({self._print(e.args[0])})"

    def _print_RowMean(self, e):
        return f"mean({self._print(e.args[0])})"

    def _print_LossGrad(self, e):
        return f"dl_t/d{self._print(e.args[0])}"   # l_t: the loss term of step t alone

    def _print_Carried(self, e):
        return f"d_{self._print(e.args[0])}_prev[t+1]"   # what step t+1 computed for its s_prev

    def _print_Outer(self, e):
        return f"{self._print(e.args[0])} {self._print(e.args[1])}^T"


def text(expr: sp.Expr) -> str:
    """`expr` as one line of text (TermPrinter)."""
    return TermPrinter({"order": "none"}).doprint(expr)


def is_elementwise(expr: sp.Expr) -> bool:
    """Whether `expr` is scalar maths per element (no product, row sum, loss or carried term)."""
    return not expr.has(*NON_ELEMENTWISE)
