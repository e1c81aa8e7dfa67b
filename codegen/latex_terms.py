"""Printing single equations of a derivation in the document's LaTeX notation.

Each function turns one piece of a `Derivation` (a stage, a backward term, an adjoint, a
parameter gradient, a loss head) into LaTeX strings; the section builders in
`emit_latex` and `latex_sections` arrange them.  Nothing mathematical is decided here.
"""
from __future__ import annotations

import re

import sympy as sp

from codegen.notation import note_tex, tex_param, tex_text
from derive.derivation import LOSS_BRANCH, NEXT_STEP_BRANCH
from derive.rules import LOSSES, TARGET, X, loss_gradient
from derive.stages import Kind, Loss

def tex_prose(text: str) -> str:
    """Words with `$...$` mathematics: escape the words, keep the mathematics."""
    parts = text.split("$")
    return "$".join(part if n % 2 else tex_text(part) for n, part in enumerate(parts))


def stage_rhs(stage, nt):
    if stage.kind is Kind.AFFINE:
        terms = [f"{tex_param(w)} {nt.value(x)}" for w, x in zip(stage.weights, stage.inputs)]
        return " + ".join(terms + ([tex_param(stage.bias)] if stage.bias else []))
    args = [nt.value(x) for x in stage.inputs]
    constant = "" if stage.constant is None else sp.latex(sp.nsimplify(stage.constant, rational=True))
    return stage.kind.tex.format(*args, c=constant, all=r";\,".join(args))   # all: a mean's stacked rows


def forward_eq(eq, nt, names=frozenset()):
    """One forward equation: label, both sides and its note, ready to set inside a display
    (`names`: the values the note may mention, `notation.note_names`)."""
    stage = eq.stage
    return dict(label=eq.label, lhs=nt.value(stage.name), rhs=stage_rhs(stage, nt),
                note=note_tex(stage.note, nt, names, math=True))


def loss_head(cell, nt, target: str = "t"):
    """The loss per element and its gradient; `target` names the target (not `t` where `t`
    is also the time step)."""
    y, t = sp.Symbol(nt.value(cell.output)), sp.Symbol(target)
    names = {X: y, TARGET: t}
    return dict(name=cell.loss.value, target=target,
                # terms in the order they are written: (y - y*)^2 / 2, not (-y* + y)^2 / 2
                element=sp.latex(LOSSES[cell.loss].xreplace(names), order="none"),
                gradient=sp.latex(loss_gradient(cell.loss).xreplace(names), order="none"),
                one_hot=cell.loss is Loss.CROSS_ENTROPY,
                softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages))


def branch_name(term, nt):
    if term.branch == LOSS_BRANCH:
        return "the loss" + (" at step $t$" if nt.timed else "")
    if term.branch == NEXT_STEP_BRANCH:
        return "the next time step"
    return f"${nt.value(term.branch)}$"


def branch_label(term, nt):
    """How a branch is named under its term, in math mode."""
    if term.branch == LOSS_BRANCH:
        return r"\text{loss at step } t" if nt.timed else r"\text{loss}"
    if term.branch == NEXT_STEP_BRANCH:
        return r"\text{from step } t+1"
    return rf"\text{{via }} {nt.value(term.branch)}"


def adjoint_lhs(target, nt):
    """A previous-state gradient computed at step t is only step t's part: mark it (t)."""
    if target.endswith("_prev"):
        return rf"{{{nt.adjoint(target)}}}^{{(t)}}"
    return nt.adjoint(target)


def term_tex(term, printer, nt, target):
    """One branch, printed from its expression (the printer spells products and sums)."""
    return printer.doprint(term.expr)


def and_join(items) -> str:
    """`a, b and c`."""
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def signed_sum(terms) -> str:
    """`a + b - c` rather than `a + b + -c`."""
    out = terms[0] if terms else "0"
    for term in terms[1:]:
        out += f" - {term[1:].lstrip()}" if term.startswith("-") else f" + {term}"
    return out


ROW = 66   # visible characters of one row of a fork's sum (its terms with their branch names)
ONE_A_ROW = 4   # a fork of up to this many branches is set one term a row (at most four short rows)


def visible(tex: str) -> int:
    """Rough printed width of LaTeX source, in characters: commands count as one, font
    switches (`\\mathrm`) and sizing (`\\left`, `\\right`) as none."""
    tex = re.sub(r"\\(mathrm|left|right)\b", "", tex)
    return len(re.sub(r"[{}^_]", "", re.sub(r"\\[A-Za-z]+", "x", tex)))


def sum_rows(named) -> list[list[tuple[str, str]]]:
    """The (term, branch name) pairs of a fork's sum in rows: one a row for up to ONE_A_ROW
    branches, else a row takes the next term while it stays within ROW visible characters
    (so that a fork of many branches keeps its step on one page)."""
    if len(named) <= ONE_A_ROW:
        return [[pair] for pair in named]
    rows: list[list[tuple[str, str]]] = []
    for tex, branch in named:
        width = lambda row: sum(max(visible(t), visible(b)) + 3 for t, b in row)   # noqa: E731
        if rows and width(rows[-1] + [(tex, branch)]) <= ROW:
            rows[-1].append((tex, branch))
        else:
            rows.append([(tex, branch)])
    return rows


def backward_eq(adj, printer, nt):
    terms = [term_tex(t, printer, nt, adj.target) for t in adj.terms] or ["0"]
    named = [(tex, branch_label(t, nt)) for tex, t in zip(terms, adj.terms)]
    return dict(label=adj.label, lhs=adjoint_lhs(adj.target, nt), terms=terms, named=named,
                rows=sum_rows(named),
                sum=signed_sum(terms),
                lhs_value=nt.value(adj.target),
                fork=adj.is_fork, carry=adj.target.endswith("_prev"),
                words=backward_words(adj, nt))


def backward_words(adj, nt):
    if adj.is_fork:
        return (f"${nt.value(adj.target)}$ is a fork: it feeds "
                + and_join([branch_name(t, nt) for t in adj.terms])
                + "; pattern: fork, one term per branch, summed below.")
    if adj.target.endswith("_prev"):
        state = adj.target[: -len("_prev")]
        return (f"This is the part of the gradient of ${nt.value(adj.target)}$ that flows back "
                f"through step $t$; at step $t-1$ it is the term "
                f"${{{nt.adjoint(state)}}}^{{(t+1)}}$ of the fork of ${nt.value(state)}$.")
    return ""


def param_rhs(g, printer, nt):
    if g.stage is None:
        return " + ".join(term_tex(t, printer, nt, g.param) for t in g.terms)
    delta = nt.adjoint(g.stage)
    return f"{delta} \\, {{{nt.value(g.input)}}}^{{\\top}}" if g.input else delta


def param_eq(g, printer, nt):
    body = param_rhs(g, printer, nt)
    body = f"\\left({body}\\right)" if g.stage is None and len(g.terms) > 1 else body
    return dict(label=g.label, lhs=rf"\delta {tex_param(g.param)}", body=body,
                shape=r" \times ".join(g.shape))
