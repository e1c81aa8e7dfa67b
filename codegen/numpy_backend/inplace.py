"""Print an elementwise SymPy expression as NumPy calls that write into an existing array.

`assign(expr, out)` returns lines such as `numpy.multiply(a, 1/2, out=out)`,
`numpy.tanh(out, out=out)`: the expression is evaluated into `out` one operation at a
time, so no temporary arrays are allocated for it (a sub-expression that cannot be
evaluated in place is printed normally and costs one temporary).  Anything the table
below does not know is printed whole and assigned, so every expression works.
"""
from __future__ import annotations

import sympy as sp
from codegen.numpy_backend.printer import Sigmoid, expr_code, spelled
from codegen.records import BlockSum
from derive.terms import WT, Carried, LossGrad, Outer, RowMean, RowSum

_FUNCTIONS = {sp.tanh: "numpy.tanh", sp.exp: "numpy.exp", sp.log: "numpy.log", Sigmoid: "_sigmoid"}
_WHOLE = (WT, Outer, RowSum, RowMean, BlockSum)  # printed whole: not elementwise, no in-place form


def assign(expr: sp.Expr, out: str) -> list[str]:
    expr = spelled(expr)
    if _leaf(expr) or expr.atoms(*_WHOLE):
        return [_copy(out, expr_code(expr))]
    if isinstance(expr, sp.Add):
        return _add(expr, out)
    if isinstance(expr, sp.Mul):
        return _mul(expr, out)
    if isinstance(expr, sp.Pow) and expr.exp == 2:
        return _unary(expr.base, "numpy.square", out)
    if type(expr) in _FUNCTIONS and len(expr.args) == 1:
        return _unary(expr.args[0], _FUNCTIONS[type(expr)], out)
    return [_copy(out, expr_code(expr))]


def assign_via(expr: sp.Expr, scratch: str, out: str) -> list[str]:
    """Like `assign`, but every call works in the contiguous `scratch`, which is then copied into
    `out` (a strided slice) by one assignment: a ufunc call with a strided operand or output
    took about 1.7 us more than on contiguous arrays on the machine of the README's Speed section
    (8x32: 2.0 vs 0.3 us), the slice assignment 0.3 us."""
    lines = assign(expr, scratch)
    if not lines[-1].endswith(f"out={scratch})"):
        return assign(expr, out)
    return lines + [_copy(out, scratch)]


def _copy(out: str, value: str) -> str:
    """`out[...] = value` for a named buffer, `out = value` for a slice expression."""
    return f"{out} = {value}" if out.endswith("]") else f"{out}[...] = {value}"


def _leaf(expr) -> bool:
    """A value read as it is: a symbol, a number, the loss's or the next step's gradient."""
    return expr.is_Symbol or expr.is_Number or isinstance(expr, (LossGrad, Carried))


def _unary(arg, function, out):
    if _leaf(arg):
        return [f"{function}({expr_code(arg)}, out={out})"]
    return assign(arg, out) + [f"{function}({out}, out={out})"]


def _add(expr, out):
    pos = [a for a in expr.args if not a.could_extract_minus_sign()]
    neg = [-a for a in expr.args if a.could_extract_minus_sign()]
    pos.sort(key=_leaf)    # compound terms first: they are evaluated into out
    neg.sort(key=_leaf)
    if pos and not _leaf(pos[0]):
        lines = assign(pos.pop(0), out)
    elif neg and not _leaf(neg[0]):
        lines = assign(neg.pop(0), out)
        lines.append(f"numpy.subtract({expr_code(pos.pop(0))}, {out}, out={out})" if pos
                     else f"numpy.negative({out}, out={out})")
    elif len(pos) >= 2:
        a, b = pos.pop(0), pos.pop(0)
        lines = [f"numpy.add({expr_code(a)}, {expr_code(b)}, out={out})"]
    elif pos and neg:
        a, b = pos.pop(0), neg.pop(0)
        lines = [f"numpy.subtract({expr_code(a)}, {expr_code(b)}, out={out})"]
    elif pos:
        lines = [_copy(out, expr_code(pos.pop(0)))]
    else:
        lines = [f"numpy.negative({expr_code(neg.pop(0))}, out={out})"]
    lines += [f"numpy.add({out}, {expr_code(a)}, out={out})" for a in pos]
    lines += [f"numpy.subtract({out}, {expr_code(a)}, out={out})" for a in neg]
    return lines


def _mul(expr, out):
    coefficient, factors = expr.as_coeff_mul()
    factors = sorted(factors, key=_leaf)
    if not _leaf(factors[0]):
        lines = assign(factors.pop(0), out)
    elif len(factors) >= 2:
        a, b = factors.pop(0), factors.pop(0)
        lines = [f"numpy.multiply({expr_code(a)}, {expr_code(b)}, out={out})"]
    elif coefficient != 1:
        a = factors.pop(0)
        lines = [f"numpy.multiply({expr_code(a)}, {_number(coefficient)}, out={out})"]
        coefficient = sp.Integer(1)
    else:
        lines = [_copy(out, expr_code(factors.pop(0)))]
    lines += [f"numpy.multiply({out}, {expr_code(a)}, out={out})" for a in factors]
    if coefficient == -1:
        lines.append(f"numpy.negative({out}, out={out})")
    elif coefficient != 1:
        lines.append(f"numpy.multiply({out}, {_number(coefficient)}, out={out})")
    return lines


def _number(value) -> str:
    return expr_code(value)


def commented(lines, comment):
    """The comment (an equation label) on the first of the lines an equation became."""
    return [lines[0] + comment] + lines[1:] if comment else lines
