"""How PyTorch spells expressions: the NumPy backend's printer with `torch` for `numpy`.

Contract: `expr_code(expr)` prints an expression of the backward vocabulary
(`derive.terms`) as one torch expression over batch rows; a function missing from
`SPELLED` raises `DeriveError` naming it when the module is generated.  Like SymPy's
`JaxPrinter`, this changes the module name and a few spellings, nothing else.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from codegen.numpy_backend.printer import SPELLED, NumPyCode, spelled

__all__ = ["TorchCode", "expr_code", "SPELLED"]

# What PyTorch spells beyond NumPy's table: the error function (a GELU's stable form uses it).
SPELLED = {**SPELLED, sp.erf: "torch.erf"}


class TorchCode(NumPyCode):
    _module = "torch"
    _kf = {k: "torch." + v.split(".")[-1] for k, v in NumPyPrinter._kf.items()}
    _kc = {k: "torch." + v.split(".")[-1] for k, v in NumPyPrinter._kc.items()}
    # the loss gradient of step t from the rows of dhs, split once before the loop
    _default_settings = {**NumPyCode._default_settings, "loss_grad": "d{}s_rows[t]"}

    def doprint(self, expr, assign_to=None):
        return super(NumPyCode, self).doprint(spelled(expr, "PyTorch", SPELLED), assign_to)

    _axis = "dim"

    def _print_RowSum(self, expr):
        return f"({self._print(expr.args[0])}).sum(dim=-1, keepdim=True)"

    def _print_RowMean(self, expr):
        return f"({self._print(expr.args[0])}).mean(dim=-1, keepdim=True)"

    def _print_Pow(self, expr):
        if expr.is_number and not expr.is_Integer:   # sqrt(2): torch.sqrt wants a tensor
            return repr(float(expr))
        base, exponent = expr.args
        # one call each, where `x**2` and `1/torch.sqrt(x)` cost a scalar conversion and two calls
        if exponent in POWERS and not base.is_number:
            return f"{POWERS[exponent]}({self._print(base)})"
        return super()._print_Pow(expr)

    def _print_Add(self, expr, order=None):
        # a number every term is multiplied by multiplies the sum once: (1/4)*(a + b), not a/4 + b/4
        content, rest = expr.as_content_primitive()
        if content != 1 and isinstance(rest, sp.Add) and \
                all(abs(t.as_coeff_Mul()[0]) == 1 and not t.is_Number for t in rest.args):
            return self._print(sp.Mul(content, rest, evaluate=False))
        return super()._print_Add(expr, order)

    def _print_erf(self, expr):
        return f"torch.erf({self._print(expr.args[0])})"

    def _print_Sigmoid(self, expr):
        return f"torch.sigmoid({self._print(expr.args[0])})"

    def _print_Softmax(self, expr):
        return f"torch.softmax({self._print(expr.args[0])}, dim=-1)"

    def _print_Max(self, expr):
        a, b = sorted(expr.args, key=lambda e: e.is_Number)   # max(z, 0)
        if not b.is_Number:   # two tensors
            return f"torch.maximum({self._print(a)}, {self._print(b)})"
        return f"torch.clamp({self._print(a)}, min={self._print(b)})"


POWERS = {sp.Integer(2): "torch.square", sp.Rational(-1, 2): "torch.rsqrt", sp.Integer(-1): "torch.reciprocal"}
PRINTER = TorchCode()


def expr_code(expr) -> str:
    """The expression as one torch expression."""
    return PRINTER.doprint(expr)

