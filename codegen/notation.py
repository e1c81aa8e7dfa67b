"""The document's notation: how value, adjoint and parameter names are written in LaTeX.

One spelling per idea: the stage output `a_f` is `a^{f}_{t}` in the document, its
gradient `d_a_f` is `\\delta a^{f}_{t}`; `h_prev` is `h_{t-1}`; a layer index is a
parenthesised superscript (`a1` is `a^{(1)}`).  Feed-forward networks have no time index.
Products of vectors are elementwise (Hadamard) and printed with `\\odot`.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE

from derive.terms import adjoint

_TEXT_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                 "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def tex_text(text: str) -> str:
    """Plain words (a description, a note) made safe to set as LaTeX text."""
    return "".join(_TEXT_ESCAPES.get(ch, ch) for ch in text)


def note_names(cell) -> frozenset[str]:
    """The names a stage's note may mention that are code, not words: the cell's inputs,
    its states and their previous values, and every stage output with an underscore
    (`zx_f`); a one-letter stage name such as `a` or `i` is left alone (it is also a word)."""
    states = set(cell.state_names) | {f"{s}_prev" for s in cell.state_names}
    return frozenset(set(cell.input_names) | states | {st.name for st in cell.stages if "_" in st.name})


def note_tex(text: str, nt: "Notation", names, math: bool = False) -> str:
    """A stage's note as LaTeX, every value name in it written as the document writes the
    value (`h_prev term of the forget gate` -> `$h_{t-1}$ term of the forget gate`).
    `math`: for a note set inside a displayed equation, as `\\text{...}` pieces around the
    formulas; otherwise plain text with inline formulas."""
    pieces = []
    for token in re.split(r"([A-Za-z]\w*)", text):
        if token in names:
            pieces.append(("math", nt.value(token)))
        elif token and pieces and pieces[-1][0] == "text":
            pieces[-1] = ("text", pieces[-1][1] + tex_text(token))
        elif token:
            pieces.append(("text", tex_text(token)))
    if not math:
        return "".join(f"${v}$" if kind == "math" else v for kind, v in pieces)
    return "".join(f"{{{v}}}" if kind == "math" else rf"\text{{{v}}}" for kind, v in pieces)


GREEK = ("mu", "gamma", "beta")   # heads of a layer norm's names, written as letters


def _head(head: str) -> str:
    return head if len(head) == 1 else "\\" + head if head in GREEK else rf"\mathrm{{{head}}}"


def tex_base(name: str) -> str:
    """`a_f` -> `a^{f}`, `a1` -> `a^{(1)}`, `c` -> `c`, `mu_x` -> `\\mu^{x}`; a word as a
    superscript (`h_new`, `a_nx`) is set upright, as a label, not a product of letters; other
    multi-letter names upright; more underscores separate superscripts (`n_a_b` -> `n^{a,b}`)."""
    layer = re.fullmatch(r"([A-Za-z])(\d+)", name)
    if layer:
        return f"{layer[1]}^{{({layer[2]})}}"
    head, _, tail = name.partition("_")
    head = _head(head)
    # a spec's `n_a_b` is n^{a,b}: a second underscore inside the superscript would be a
    # double subscript, which neither LaTeX nor MathML accepts
    tail = ",".join(rf"\mathrm{{{part}}}" if len(part) > 1 and part.isalpha() else part
                    for part in tail.split("_")) if tail else ""
    return f"{head}^{{{tail}}}" if tail else head


def tex_param(name: str) -> str:
    """`W_f` -> `W_{f}`, `W1` -> `W_{1}`, `b_hn` -> `b_{hn}`, `gamma_x_f` -> `\\gamma_{x,f}`."""
    layer = re.fullmatch(r"([A-Za-z])(\d+)", name)
    if layer:
        return f"{layer[1]}_{{{layer[2]}}}"
    head, _, tail = name.partition("_")
    head = head if head not in GREEK else "\\" + head
    return f"{head}_{{{tail.replace('_', ',')}}}" if tail else head


class Notation:
    """Names at a time step; `timed=False` (feed-forward networks) drops the time index."""

    def __init__(self, timed: bool, params=()):
        self.timed = timed
        self.params = set(params)

    def value(self, name: str, step: str = "t") -> str:
        if name in self.params:
            return tex_param(name)
        if name.endswith("_prev"):
            name, step = name[: -len("_prev")], f"{step}-1"
        return f"{tex_base(name)}_{{{step}}}" if self.timed else tex_base(name)

    def adjoint(self, name: str, step: str = "t") -> str:
        return rf"\delta {self.value(name, step)}"

    def printer(self, values) -> "VectorLatexPrinter":
        """A printer knowing every per-step value, parameter and adjoint `d_<name>`."""
        names = {v: self.value(v) for v in [*values, *self.params]}
        names.update({f"d_{v}": self.adjoint(v) for v in values})
        return VectorLatexPrinter(names, self.timed)


def direct_loss_gradient(value_tex: str, timed: bool) -> str:
    """The direct gradient of the loss term that reads a value: dl_t/dv for a step's loss
    term l_t (never dL/dv, the total gradient delta v), dL/dv without time."""
    loss = r"\ell_{t}" if timed else "L"
    return rf"\frac{{\partial {loss}}}{{\partial {value_tex}}}"


def final_state_gradient(state_tex: str) -> str:
    """The direct gradient of the loss term that reads the final state, l_fin."""
    return rf"\frac{{\partial \ell_{{\mathrm{{fin}}}}}}{{\partial {state_tex}}}"


class VectorLatexPrinter(LatexPrinter):
    """Prints per-step vector expressions: symbols by their names, products as odot."""

    def __init__(self, names: dict[str, str], timed: bool = True):
        super().__init__({"symbol_names": {sp.Symbol(n, real=True): t for n, t in names.items()}})
        self.timed = timed

    def _print_Mul(self, expr):
        if not expr.is_Mul or any(f.is_Pow and f.exp.is_negative for f in expr.args):
            return super()._print_Mul(expr)   # a fraction: LaTeX's own layout
        coeff, factors = expr.as_coeff_mul()
        body = r" \odot ".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in factors)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}"
        return f"{self._print(coeff)} {body}"

    def _print_Pow(self, expr):
        base, exp = expr.args
        if exp.is_Integer and exp > 0:  # braces: the base may carry its own superscript
            return f"{{{self.parenthesize(base, PRECEDENCE['Pow'])}}}^{{{exp}}}"
        return super()._print_Pow(expr)

    def _print_exp(self, expr, exp=None):
        # exp(x), not e^x: a cell may name a value e (the sLSTM's e_t)
        return rf"\exp\left({self._print(expr.args[0])}\right)"

    def _print_WT(self, expr):
        weight, delta = expr.args
        return rf"{tex_param(str(weight))}^{{\top}} {self.parenthesize(delta, PRECEDENCE['Mul'])}"

    def _print_RowSum(self, expr):
        """The sum over a vector's entries, broadcast back: (a^T b) 1 for a product of two."""
        factors = sp.Mul.make_args(expr.args[0])
        if len(factors) == 2:
            a, b = (self._print(f) for f in factors)
            return rf"({a}^{{\top}} {b})\,\mathbf{{1}}"
        return rf"(\mathbf{{1}}^{{\top}} {self.parenthesize(expr.args[0], PRECEDENCE['Mul'])})\,\mathbf{{1}}"

    def _print_RowMean(self, expr):
        """The mean over a vector's entries, broadcast back (a layer norm's statistics)."""
        return rf"\operatorname{{mean}}\left({self._print(expr.args[0])}\right)"

    def _print_LossGrad(self, expr):
        return direct_loss_gradient(self._print(expr.args[0]), self.timed)

    def _print_Carried(self, expr):
        return rf"{{{self._print(adjoint(str(expr.args[0])))}}}^{{(t+1)}}"

    def _print_Outer(self, expr):
        # a product as the left factor is bracketed: (r \odot \delta a) h^T, not r \odot \delta a h^T
        delta, x = expr.args
        return rf"{self.parenthesize(delta, PRECEDENCE['Mul'])} \, {{{self._print(x)}}}^{{\top}}"
