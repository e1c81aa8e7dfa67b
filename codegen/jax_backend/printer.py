"""How JAX spells expressions: the NumPy backend's printer with `jnp` for `numpy`.

Contract: `expr_code(expr, **settings)` prints an expression of the backward vocabulary
(`derive.terms`) as one `jax.numpy` expression over batch rows; a function missing from
`SPELLED` raises `DeriveError` naming it when the module is generated.  Like SymPy's
`JaxPrinter`, this changes the module name and a few spellings, nothing else.  In a scan
body the loss gradient of step t is `d<output>s_t` (the slice the scan hands the body).
"""
from __future__ import annotations

from sympy.printing.numpy import NumPyPrinter

from codegen.numpy_backend.printer import SPELLED, NumPyCode, spelled

__all__ = ["JaxCode", "expr_code", "SPELLED"]


class JaxCode(NumPyCode):
    _module = "jnp"
    _kf = {k: "jnp." + v.split(".")[-1] for k, v in NumPyPrinter._kf.items()}
    _kc = {k: "jnp." + v.split(".")[-1] for k, v in NumPyPrinter._kc.items()}
    _default_settings = {**NumPyCode._default_settings, "loss_grad": "d{}s_t"}

    def doprint(self, expr, assign_to=None):
        return super(NumPyCode, self).doprint(spelled(expr, "JAX"), assign_to)

    def _print_Sigmoid(self, expr):
        return f"jax.nn.sigmoid({self._print(expr.args[0])})"

    def _print_Softmax(self, expr):
        return f"jax.nn.softmax({self._print(expr.args[0])}, axis=-1)"

    def _print_Max(self, expr):
        a, b = sorted(expr.args, key=lambda e: e.is_Number)   # max(z, 0)
        return f"jnp.maximum({self._print(a)}, {self._print(b)})"


PRINTER = JaxCode()


def expr_code(expr) -> str:
    """The expression as one jax.numpy expression."""
    return PRINTER.doprint(expr)
