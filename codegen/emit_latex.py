"""Emit the LaTeX derivation document of a derivation (`generated/<cell>.tex`).

The emitter turns the `Derivation` into plain lists of LaTeX strings (one per equation,
with its label) and the template `document.tex.j2` lays them out.  Every formula shown
is printed from the SymPy expression the engine computed; nothing mathematical is
decided here.
"""
from __future__ import annotations

import sympy as sp

from codegen.notation import tex_adjoint, tex_param, tex_text, tex_value, vector_printer
from codegen.templates import render
from derive.derivation import Derivation, TermKind
from derive.rules import DEFINITIONS, affine_rule, derivative
from derive.stages import Kind

KIND_TEX = {Kind.SIGMOID: r"\sigma", Kind.TANH: r"\tanh"}
KIND_WORDS = {Kind.SIGMOID: "the logistic sigmoid", Kind.TANH: "the hyperbolic tangent",
              Kind.MUL: "the elementwise product", Kind.ADD: "the elementwise sum"}
STEP_WORDS = {"definition": "definition", "derivative": "SymPy's derivative",
              "inverse": r"solve $s = \mathrm{def}(x)$ for $x$",
              "substituted": "substitute that $x$",
              "in terms of output": "simplified: in terms of the output $s$"}


def emit_latex(derivation: Derivation, command: str) -> str:
    cell = derivation.cell
    values = list(cell.sizes())
    printer = vector_printer(values)
    context = dict(
        cell=tex_text(cell.name), title_cell=tex_text(cell.name.upper()),
        description=tex_text(cell.description),
        command=command,
        shapes=_shapes(cell),
        forward=[_forward_eq(eq, printer) for eq in derivation.forward],
        activations=_activation_rules(cell),
        affine=_affine_rule(),
        partials=_partials(derivation, printer),
        forks=_forks(derivation),
        backward=[_backward_eq(adj, printer, cell) for adj in derivation.adjoints],
        carries=_carries(cell),
        param_grads=[_param_eq(g) for g in derivation.param_grads],
        summary=_summary(derivation, printer),
        output=tex_value(cell.output), output_name=cell.output,
        states0=[tex_value(s, "0") for s in cell.state_names],
        inputs=[tex_value(x) for x in cell.input_names],
    )
    return render("document.tex.j2", **context)


def _shapes(cell):
    rows = [(f"${tex_value(v)}$", size, _role(cell, v)) for v, size in cell.sizes().items()]
    rows += [(f"${tex_param(p)}$", r" \times ".join(shape), "parameter")
             for p, shape in cell.params()]
    return [(name, f"${shape}$", role) for name, shape, role in rows]


def _role(cell, value):
    if value in cell.input_names:
        return "input at step $t$"
    if value.endswith("_prev"):
        return "state from step $t-1$"
    stage = cell.stage(value)
    return tex_text(stage.note or stage.kind.value)


def _stage_rhs(stage):
    if stage.kind is Kind.AFFINE:
        terms = [f"{tex_param(w)} {tex_value(x)}" for w, x in zip(stage.weights, stage.inputs)]
        return " + ".join(terms + ([tex_param(stage.bias)] if stage.bias else []))
    args = [tex_value(x) for x in stage.inputs]
    if stage.kind is Kind.MUL:
        return r" \odot ".join(args)
    if stage.kind is Kind.ADD:
        return " + ".join(args)
    return rf"{KIND_TEX[stage.kind]}\left({', '.join(args)}\right)"


def _forward_eq(eq, printer):
    stage = eq.stage
    return dict(label=eq.label, lhs=tex_value(stage.name), rhs=_stage_rhs(stage),
                note=tex_text(stage.note), kind=stage.kind.value)


def _activation_rules(cell):
    """Derivation steps of every activation kind the cell uses, printed from SymPy."""
    kinds = [k for k in dict.fromkeys(s.kind for s in cell.stages) if k in KIND_TEX]
    out = []
    for kind in kinds:
        partial = derivative(kind, 0)
        steps = [(STEP_WORDS[name], _scalar_step(name, kind, expr)) for name, expr in partial.steps]
        out.append(dict(name=KIND_WORDS[kind], symbol=KIND_TEX[kind], steps=steps,
                        numeric=sp.latex(DEFINITIONS[kind].numeric),
                        result=sp.latex(partial.expr)))
    return out


def _scalar_step(name, kind, expr):
    lhs = {"definition": f"s = {KIND_TEX[kind]}(x)", "inverse": "x",
           "derivative": r"\frac{ds}{dx}", "substituted": r"\frac{ds}{dx}",
           "in terms of output": r"\frac{ds}{dx}"}[name]
    return f"{lhs} = {sp.latex(expr)}"


def _affine_rule():
    rule = affine_rule()

    def show(expr):  # print indices as plain letters, without their ranges
        plain = {i: sp.Symbol(str(i.label)) for i in expr.atoms(sp.Idx)}
        return sp.latex(expr.xreplace(plain))

    return dict(definition=show(rule.definition), d_weight=show(rule.d_weight),
                d_input=show(rule.d_input), d_bias=show(rule.d_bias))


def _partials(derivation, printer):
    rows = []
    for p in derivation.partials:
        rows.append(dict(stage=tex_value(p.stage), wrt=tex_value(p.wrt), expr=printer.doprint(p.expr)))
    return rows


def _forks(derivation):
    return [dict(value=tex_value(adj.target), branches=[_branch_name(t) for t in adj.terms])
            for adj in derivation.adjoints if adj.is_fork]


def _branch_name(term):
    if term.kind is TermKind.LOSS:
        return "the loss at step $t$"
    if term.kind is TermKind.CARRY:
        return "the next time step"
    return f"${tex_value(term.branch)}$"


def _branch_label(term):
    """How a branch is named under its term, in math mode."""
    if term.kind is TermKind.LOSS:
        return r"\text{loss at step } t"
    if term.kind is TermKind.CARRY:
        return r"\text{from step } t+1"
    return rf"\text{{via }} {tex_value(term.branch)}"


def _lhs(target):
    """A previous-state gradient computed at step t is only step t's part: mark it (t)."""
    if target.endswith("_prev"):
        return rf"{tex_adjoint(target)}^{{(t)}}"
    return tex_adjoint(target)


def _term_tex(term, printer, target):
    if term.kind is TermKind.LOCAL:
        return printer.doprint(sp.Symbol(f"d_{term.source}", real=True) * term.factor)
    if term.kind is TermKind.WEIGHT:
        return f"{tex_param(term.weight)}^{{\\top}} {tex_adjoint(term.source)}"
    if term.kind is TermKind.LOSS:
        return rf"\frac{{\partial L}}{{\partial {tex_value(target)}}}"
    return rf"{tex_adjoint(target)}^{{(t+1)}}"


def _backward_eq(adj, printer, cell):
    terms = [_term_tex(t, printer, adj.target) for t in adj.terms] or ["0"]
    named = [(tex, _branch_label(t)) for tex, t in zip(terms, adj.terms)]
    return dict(label=adj.label, lhs=_lhs(adj.target), terms=terms, named=named,
                fork=adj.is_fork, carry=adj.target.endswith("_prev"),
                size=adj.size, words=_backward_words(adj, cell))


def _backward_words(adj, cell):
    if adj.is_fork:
        return (f"${tex_value(adj.target)}$ is a fork: it feeds "
                + ", ".join(_branch_name(t) for t in adj.terms) + "; its gradient is the sum of "
                "one term per branch.")
    if adj.target.endswith("_prev"):
        state = adj.target[: -len("_prev")]
        return (f"This is the part of the gradient of ${tex_value(adj.target)}$ that flows back "
                f"through step $t$; at step $t-1$ it is the term "
                f"${tex_adjoint(state)}^{{(t+1)}}$ of the fork of ${tex_value(state)}$.")
    return ""


def _carries(cell):
    return [dict(state=tex_value(s), carried=rf"{tex_adjoint(s, 'T')}^{{(T+1)}}",
                 final=tex_value(s, "T"), initial=rf"{tex_adjoint(s, '0')}^{{(1)}}",
                 state0=tex_value(s, "0"))
            for s in cell.state_names]


def _param_eq(g):
    delta = tex_adjoint(g.stage)
    body = f"{delta} \\, {tex_value(g.input)}^{{\\top}}" if g.input else delta
    return dict(label=g.label, lhs=rf"\delta {tex_param(g.param)}",
                rhs=rf"\sum_{{t=1}}^{{T}} \sum_{{b=1}}^{{B}} {body}",
                shape=r" \times ".join(g.shape))


def _summary(derivation, printer):
    rows = [dict(label=a.label, lhs=_lhs(a.target),
                 rhs=" + ".join(_term_tex(t, printer, a.target) for t in a.terms) or "0",
                 shape=a.size) for a in derivation.adjoints]
    rows += [dict(label=g.label, lhs=_param_eq(g)["lhs"], rhs=_param_eq(g)["rhs"],
                  shape=r" \times ".join(g.shape)) for g in derivation.param_grads]
    return rows
