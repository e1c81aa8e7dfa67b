"""How NumPy spells expressions: SymPy's NumPy printer plus the backward vocabulary.

Contract: `expr_code(expr)` prints an expression in value symbols, adjoint symbols and the
functions of `derive.terms` as one NumPy expression over batch rows (a vector is the last
axis); `assign(expr, out)` prints it as calls that write into an existing array, one
operation at a time, so it allocates no temporaries where it can.  A function missing from
`SPELLED` raises `DeriveError` naming it when the module is generated, never a NameError
when it runs.  The loss gradient and the carried gradient are spelled by the settings
`loss_grad` and `carried` (format strings of the value's name).
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from derive.errors import DeriveError
from codegen.records import BlockSum, Softmax
from derive.terms import WT, Carried, LossGrad, Outer, RowMean, RowSum

# Every function the printer can spell (the backward vocabulary has its own methods below).
class Sigmoid(sp.Function):
    """The logistic sigmoid, as the module's helper `_sigmoid` spells it (the derivation writes
    it (1 + tanh(z/2))/2, which the printers recognise)."""

    nargs = 1
    is_real = True


SPELLED = {sp.tanh: "numpy.tanh", sp.exp: "numpy.exp", sp.log: "numpy.log", sp.Abs: "numpy.abs", sp.sign: "numpy.sign",
           sp.Max: "numpy.maximum", WT: None, RowSum: None, RowMean: None, LossGrad: None, Carried: None, Outer: None,
           Softmax: None, Sigmoid: None, BlockSum: None}
_IN_PLACE = {sp.tanh: "numpy.tanh", sp.exp: "numpy.exp", sp.log: "numpy.log"}
_X = sp.Wild("x")


class NumPyCode(NumPyPrinter):
    """SymPy's NumPy printer with the backward terms: W^T d over batch rows is `d @ W`."""

    _default_settings = {**NumPyPrinter._default_settings, "fully_qualified_modules": True,
                         "allow_unknown_functions": False, "loss_grad": "d{}s[t]",
                         "carried": "d_{}_next"}

    def doprint(self, expr, assign_to=None):
        return super().doprint(spelled(expr), assign_to)

    def parenthesize(self, item, level, strict=False):
        """A matrix product inside a product or power keeps its parentheses: y*(d @ W)."""
        if isinstance(item, (WT, Outer)) and level >= PRECEDENCE["Mul"]:
            return f"({self._print(item)})"
        return super().parenthesize(item, level, strict)

    def _print_WT(self, expr):
        weight, delta = expr.args
        return f"{self._print(delta)} @ {self._print(weight)}"

    def _print_Outer(self, expr):
        delta, x = expr.args
        return f"{self._print(delta)}.T @ {self._print(x)}"

    def _print_RowSum(self, expr):
        return f"({self._print(expr.args[0])}).sum(axis=-1, keepdims=True)"

    def _print_RowMean(self, expr):
        return f"({self._print(expr.args[0])}).mean(axis=-1, keepdims=True)"

    def _print_BlockSum(self, expr):
        """The blocks of a stacked value summed: a (rows, G, n) view, summed over G."""
        e, blocks, n = expr.args
        return f"({self._print(e)}).reshape(-1, {blocks}, {self._print(n)}).sum({self._axis}=1)"

    _axis = "axis"

    def _print_LossGrad(self, expr):
        return self._settings["loss_grad"].format(expr.args[0].name)

    def _print_Carried(self, expr):
        return self._settings["carried"].format(expr.args[0].name)

    def _print_Sigmoid(self, expr):
        return f"_sigmoid({self._print(expr.args[0])})"

    def _print_Softmax(self, expr):
        return f"_softmax({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        a, b = sorted(expr.args, key=lambda e: e.is_Number)   # numpy.maximum(z, 0)
        return f"numpy.maximum({self._print(a)}, {self._print(b)})"


def spelled(expr, backend: str = "NumPy", table=SPELLED) -> sp.Expr:
    """The expression, checked: ReLU's (z + |z|)/2 as Max(z, 0), (1 + tanh(z/2))/2 as
    Sigmoid(z), the unit step as (1 + sign z)/2; DeriveError for a function
    NumPy cannot spell."""
    expr = sp.sympify(expr).replace((_X + sp.Abs(_X)) / 2, lambda x: sp.Max(x, 0, evaluate=False))
    expr = expr.replace(_is_sigmoid, lambda e: Sigmoid(2 * next(iter(e.atoms(sp.tanh))).args[0]))
    expr = expr.replace(sp.Heaviside, _step)
    for f in expr.atoms(sp.Function):
        if type(f) not in table:
            raise DeriveError(f"the {backend} backend cannot spell the function {type(f).__name__} "
                              f"(in {expr}); it spells {', '.join(sorted(k.__name__ for k in table))}")
    return expr


def _is_sigmoid(expr) -> bool:
    """(1 + tanh(z/2))/2 written out, the half visible in tanh's argument: a tanh whose argument
    has no factor 1/2 (weights already halved) stays a tanh, so it is not halved twice."""
    if not isinstance(expr, sp.Add) or len(expr.args) != 2 or sp.Rational(1, 2) not in expr.args:
        return False
    rest = expr - sp.Rational(1, 2)
    found = rest.atoms(sp.tanh)
    return len(found) == 1 and sp.expand(rest - next(iter(found)) / 2) == 0 and \
        next(iter(found)).args[0].as_coeff_Mul()[0] == sp.Rational(1, 2)


def _step(x, at_zero=sp.S.Half):
    """The unit step as every backend spells it, (1 + sign x)/2: a maximum's derivative."""
    if at_zero != sp.S.Half:
        raise DeriveError(f"the step Heaviside({x}, {at_zero}) is spelled only with value 1/2 at 0")
    return (1 + sp.sign(x)) / 2


PRINTER = NumPyCode()


def expr_code(expr, **settings) -> str:
    """The expression as one NumPy expression (temporaries allocated by NumPy)."""
    return (NumPyCode(settings) if settings else PRINTER).doprint(expr)
