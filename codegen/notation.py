"""The document's notation: how value, adjoint and parameter names are written in LaTeX.

One spelling per idea: the stage output `a_f` is `a^{f}_{t}` in the document, its
gradient `d_a_f` is `\\delta a^{f}_{t}`; `h_prev` is `h_{t-1}`.  Products of vectors are
elementwise (Hadamard) and printed with `\\odot`.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE


_TEXT_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def tex_text(text: str) -> str:
    """Plain words (a description, a note) made safe to set as LaTeX text."""
    return "".join(_TEXT_ESCAPES.get(ch, ch) for ch in text)


def tex_base(name: str) -> str:
    """`a_f` -> `a^{f}`, `c` -> `c`; a multi-letter name is set upright."""
    head, _, tail = name.partition("_")
    head = head if len(head) == 1 else rf"\mathrm{{{head}}}"
    return f"{head}^{{{tail}}}" if tail else head


def tex_value(name: str, step: str = "t") -> str:
    """A per-step value at `step`: `h_prev` -> `h_{t-1}`, `a_f` -> `a^{f}_{t}`."""
    if name.endswith("_prev"):
        name, step = name[: -len("_prev")], f"{step}-1"
    return f"{tex_base(name)}_{{{step}}}"


def tex_adjoint(name: str, step: str = "t") -> str:
    return rf"\delta {tex_value(name, step)}"


def tex_param(name: str) -> str:
    """`W_f` -> `W_{f}`, `b_hn` -> `b_{hn}`."""
    head, _, tail = name.partition("_")
    return f"{head}_{{{tail}}}" if tail else head


class VectorLatexPrinter(LatexPrinter):
    """Prints per-step vector expressions: symbols by their time-indexed names, products as odot."""

    def __init__(self, names: dict[str, str]):
        super().__init__({"symbol_names": {sp.Symbol(n, real=True): t for n, t in names.items()}})

    def _print_Mul(self, expr):
        coeff, factors = expr.as_coeff_mul()
        body = r" \odot ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in factors)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        return f"{self._print(coeff)} {body}"

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and exp > 0:
            return f"{self.parenthesize(base, PRECEDENCE['Pow'])}^{{{exp}}}"
        return super()._print_Pow(expr)


def vector_printer(values) -> VectorLatexPrinter:
    """A printer knowing every per-step value name and its adjoint `d_<name>`."""
    names = {v: tex_value(v) for v in values}
    names.update({f"d_{v}": tex_adjoint(v) for v in values})
    return VectorLatexPrinter(names)
