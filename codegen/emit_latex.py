"""Emit the LaTeX derivation document of a derivation (`generated/<cell>.tex`).

The emitter turns the `Derivation` into plain lists of LaTeX strings (one per equation,
with its label) and the template `document.tex.j2` lays them out.  Every formula shown
is printed from the SymPy expression the engine computed; nothing mathematical is
decided here.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from codegen.notation import Notation, tex_param, tex_text
from codegen.templates import render
from derive.cells import LSTM
from derive.derivation import Derivation, TermKind, derive
from derive.rules import (DEFINITIONS, LOSSES, TARGET, X, affine_rule, derivative, loss_gradient,
                          softmax_rule)
from derive.stages import Kind, Loss

KIND_TEX = {Kind.SIGMOID: r"\sigma", Kind.TANH: r"\tanh", Kind.RELU: r"\operatorname{relu}",
            Kind.SOFTPLUS: r"\operatorname{softplus}", Kind.SOFTSIGN: r"\operatorname{softsign}",
            Kind.EXP: r"\exp", Kind.LOG: r"\log"}
KIND_WORDS = {Kind.SIGMOID: "the logistic sigmoid", Kind.TANH: "the hyperbolic tangent",
              Kind.RELU: "the rectifier", Kind.SOFTPLUS: "the softplus",
              Kind.SOFTSIGN: "the softsign", Kind.EXP: "the exponential", Kind.LOG: "the logarithm",
              Kind.MUL: "elementwise product", Kind.ADD: "elementwise sum",
              Kind.ONE_MINUS: "complement", Kind.SUB: "elementwise difference",
              Kind.DIV: "elementwise quotient", Kind.RECIPROCAL: "reciprocal",
              Kind.SCALE: "scaling by a constant", Kind.SHIFT: "shift by a constant"}
SIMPLE_KINDS = (Kind.MUL, Kind.ADD, Kind.ONE_MINUS, Kind.SUB, Kind.DIV, Kind.RECIPROCAL,
                Kind.SCALE, Kind.SHIFT)
STEP_WORDS = {"definition": "definition", "derivative": "SymPy's derivative",
              "inverse": r"solve $s = \mathrm{def}(x)$ for $x$",
              "substituted": "substitute that $x$",
              "in terms of output": "simplified: in terms of the output $s$"}


def tex_prose(text: str) -> str:
    """Words with `$...$` mathematics: escape the words, keep the mathematics."""
    parts = text.split("$")
    return "$".join(part if n % 2 else tex_text(part) for n, part in enumerate(parts))


def emit_latex(derivation: Derivation, command: str) -> str:
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    printer = nt.printer(list(cell.sizes()))
    kinds = {s.kind for s in cell.stages}
    context = dict(
        cell=tex_text(cell.name), title_cell=tex_text(cell.name.upper()),
        description=tex_prose(cell.description), command=command, timed=cell.recurrent,
        shapes=_shapes(cell, nt),
        forward=[_forward_eq(eq, nt) for eq in derivation.forward],
        activations=_activation_rules(kinds),
        simple_rules=_simple_rules(kinds),
        affine=_affine_rule(), softmax=_softmax_rule() if Kind.SOFTMAX in kinds else None,
        loss=_loss_head(cell, nt) if cell.loss else None,
        partials=[dict(stage=nt.value(p.stage), wrt=nt.value(p.wrt), expr=printer.doprint(p.expr))
                  for p in derivation.partials],
        forks=_forks(derivation, nt),
        backward=[_backward_eq(adj, printer, nt) for adj in derivation.adjoints],
        carries=_carries(cell, nt),
        param_grads=[_param_eq(g, printer, nt) for g in derivation.param_grads],
        summary=_summary(derivation, printer, nt),
        differences=_differences(derivation, nt) if cell.name != LSTM.name else None,
        output=nt.value(cell.output),
        states0=[nt.value(s, "0") for s in cell.state_names],
        inputs=[nt.value(x) for x in cell.input_names],
        sum_over=r"\sum_{t=1}^{T} \sum_{b=1}^{B}" if cell.recurrent else r"\sum_{b=1}^{B}",
    )
    return render("document.tex.j2", **context)


def _shapes(cell, nt):
    rows = [(f"${nt.value(v)}$", f"${size}$", _role(cell, v)) for v, size in cell.sizes().items()]
    times = r" \times "
    rows += [(f"${tex_param(p)}$", f"${times.join(shape)}$", "parameter")
             for p, shape in cell.params()]
    return rows


def _role(cell, value):
    if value in cell.input_names:
        return "input at step $t$" if cell.recurrent else "input"
    if value.endswith("_prev"):
        return "state from step $t-1$"
    stage = cell.stage(value)
    return tex_text(stage.note or stage.kind.value)


def _stage_rhs(stage, nt):
    if stage.kind is Kind.AFFINE:
        terms = [f"{tex_param(w)} {nt.value(x)}" for w, x in zip(stage.weights, stage.inputs)]
        return " + ".join(terms + ([tex_param(stage.bias)] if stage.bias else []))
    args = [nt.value(x) for x in stage.inputs]
    if stage.kind is Kind.MUL:
        return r" \odot ".join(args)
    if stage.kind is Kind.ADD:
        return " + ".join(args)
    if stage.kind is Kind.ONE_MINUS:
        return f"1 - {args[0]}"
    if stage.kind is Kind.SUB:
        return f"{args[0]} - {args[1]}"
    if stage.kind is Kind.DIV:
        return rf"{args[0]} \oslash {args[1]}"
    if stage.kind is Kind.RECIPROCAL:
        return rf"1 \oslash {args[0]}"
    if stage.kind is Kind.SCALE:
        return f"{sp.latex(sp.nsimplify(stage.constant, rational=True))} {args[0]}"
    if stage.kind is Kind.SHIFT:
        return f"{args[0]} + {sp.latex(sp.nsimplify(stage.constant, rational=True))}"
    if stage.kind is Kind.SOFTMAX:
        return rf"\operatorname{{softmax}}\left({args[0]}\right)"
    return rf"{KIND_TEX[stage.kind]}\left({', '.join(args)}\right)"


def _forward_eq(eq, nt):
    stage = eq.stage
    return dict(label=eq.label, lhs=nt.value(stage.name), rhs=_stage_rhs(stage, nt),
                note=tex_text(stage.note))


def _activation_rules(kinds):
    """Derivation steps of every activation kind the cell uses, printed from SymPy."""
    out = []
    for kind in (k for k in KIND_TEX if k in kinds):
        partial = derivative(kind, 0)
        steps = [(STEP_WORDS[name], _scalar_step(name, kind, expr)) for name, expr in partial.steps]
        d = DEFINITIONS[kind]
        out.append(dict(name=KIND_WORDS[kind], symbol=KIND_TEX[kind], steps=steps,
                        numeric=sp.latex(d.numeric) if d.numeric != d.expr else None,
                        reuse=d.reuse_output,
                        result=sp.latex(partial.expr)))
    return out


def _scalar_step(name, kind, expr):
    lhs = {"definition": f"s = {KIND_TEX[kind]}(x)", "inverse": "x"}.get(name, r"\frac{ds}{dx}")
    return f"{lhs} = {sp.latex(expr)}"


def _simple_rules(kinds):
    """Partial derivatives of products, sums and complements, as SymPy gives them."""
    rows = []
    for kind in SIMPLE_KINDS:
        if kind in kinds:
            d = DEFINITIONS[kind]
            partials = ", ".join(rf"\frac{{\partial s}}{{\partial {sp.latex(a)}}} = "
                                 rf"{sp.latex(derivative(kind, n).expr)}"
                                 for n, a in enumerate(d.args))
            rows.append(dict(name=KIND_WORDS[kind], definition=sp.latex(d.expr), partials=partials))
    return rows


def _plain(expr):
    """LaTeX of an index expression with its indices printed as plain letters."""
    return sp.latex(expr.xreplace({i: sp.Symbol(str(i.label)) for i in expr.atoms(sp.Idx)}))


def _affine_rule():
    rule = affine_rule()
    return dict(definition=_plain(rule.definition), d_weight=_plain(rule.d_weight),
                d_input=_plain(rule.d_input), d_bias=_plain(rule.d_bias))


def _softmax_rule():
    rule = softmax_rule()
    return dict(definition=_plain(rule.definition), jacobian=_plain(rule.jacobian),
                d_input=_plain(rule.d_input), cross_entropy=_plain(rule.cross_entropy))


def _loss_head(cell, nt):
    y, t = sp.Symbol(nt.value(cell.output)), sp.Symbol("t")
    names = {X: y, TARGET: t}
    return dict(name=cell.loss.value, element=sp.latex(LOSSES[cell.loss].xreplace(names)),
                gradient=sp.latex(loss_gradient(cell.loss).xreplace(names)),
                one_hot=cell.loss is Loss.CROSS_ENTROPY,
                softmax=any(s.kind is Kind.SOFTMAX for s in cell.stages))


def _forks(derivation, nt):
    return [dict(value=nt.value(adj.target), branches=[_branch_name(t, nt) for t in adj.terms])
            for adj in derivation.adjoints if adj.is_fork]


def _branch_name(term, nt):
    if term.kind is TermKind.LOSS:
        return "the loss" + (" at step $t$" if nt.timed else "")
    if term.kind is TermKind.CARRY:
        return "the next time step"
    return f"${nt.value(term.branch)}$"


def _branch_label(term, nt):
    """How a branch is named under its term, in math mode."""
    if term.kind is TermKind.LOSS:
        return r"\text{loss at step } t" if nt.timed else r"\text{loss}"
    if term.kind is TermKind.CARRY:
        return r"\text{from step } t+1"
    return rf"\text{{via }} {nt.value(term.branch)}"


def _lhs(target, nt):
    """A previous-state gradient computed at step t is only step t's part: mark it (t)."""
    if target.endswith("_prev"):
        return rf"{{{nt.adjoint(target)}}}^{{(t)}}"
    return nt.adjoint(target)


def _term_tex(term, printer, nt, target):
    if term.kind is TermKind.LOCAL:
        return printer.doprint(sp.Symbol(f"d_{term.source}", real=True) * term.factor)
    if term.kind is TermKind.WEIGHT:
        return f"{tex_param(term.weight)}^{{\\top}} {nt.adjoint(term.source)}"
    if term.kind is TermKind.SOFTMAX:
        y, dy = nt.value(term.source), nt.adjoint(term.source)
        return rf"{y} \odot \left({dy} - ({dy}^{{\top}} {y})\,\mathbf{{1}}\right)"
    if term.kind is TermKind.LOSS:
        return rf"\frac{{\partial L}}{{\partial {nt.value(target)}}}"
    return rf"{{{nt.adjoint(target)}}}^{{(t+1)}}"


def _backward_eq(adj, printer, nt):
    terms = [_term_tex(t, printer, nt, adj.target) for t in adj.terms] or ["0"]
    named = [(tex, _branch_label(t, nt)) for tex, t in zip(terms, adj.terms)]
    return dict(label=adj.label, lhs=_lhs(adj.target, nt), terms=terms, named=named,
                fork=adj.is_fork, carry=adj.target.endswith("_prev"),
                words=_backward_words(adj, nt))


def _backward_words(adj, nt):
    if adj.is_fork:
        return (f"${nt.value(adj.target)}$ is a fork: it feeds "
                + ", ".join(_branch_name(t, nt) for t in adj.terms)
                + "; its gradient is the sum of one term per branch.")
    if adj.target.endswith("_prev"):
        state = adj.target[: -len("_prev")]
        return (f"This is the part of the gradient of ${nt.value(adj.target)}$ that flows back "
                f"through step $t$; at step $t-1$ it is the term "
                f"${{{nt.adjoint(state)}}}^{{(t+1)}}$ of the fork of ${nt.value(state)}$.")
    return ""


def _carries(cell, nt):
    return [dict(state=nt.value(s), carried=rf"{{{nt.adjoint(s, 'T')}}}^{{(T+1)}}",
                 final=nt.value(s, "T"), initial=rf"{{{nt.adjoint(s, '0')}}}^{{(1)}}",
                 state0=nt.value(s, "0"))
            for s in cell.state_names]


def _param_rhs(g, printer, nt):
    if g.stage is None:
        return " + ".join(_term_tex(t, printer, nt, g.param) for t in g.terms)
    delta = nt.adjoint(g.stage)
    return f"{delta} \\, {{{nt.value(g.input)}}}^{{\\top}}" if g.input else delta


def _param_eq(g, printer, nt):
    body = _param_rhs(g, printer, nt)
    body = f"\\left({body}\\right)" if g.stage is None and len(g.terms) > 1 else body
    return dict(label=g.label, lhs=rf"\delta {tex_param(g.param)}", body=body,
                shape=r" \times ".join(g.shape))


def _summary(derivation, printer, nt):
    rows = [dict(label=a.label, lhs=_lhs(a.target, nt), shape=a.size,
                 rhs=" + ".join(_term_tex(t, printer, nt, a.target) for t in a.terms) or "0")
            for a in derivation.adjoints]
    for g in derivation.param_grads:
        eq = _param_eq(g, printer, nt)
        rows.append(dict(label=g.label, lhs=eq["lhs"], rhs=rf"\textstyle\sum {eq['body']}",
                         shape=eq["shape"]))
    return rows


def _forks_of(derivation):
    return {a.target: tuple(t.branch for t in a.terms) for a in derivation.adjoints if a.is_fork}


@lru_cache(maxsize=1)
def _lstm_forks():
    """The LSTM's forks, derived once for every document that compares with them."""
    return _forks_of(derive(LSTM))


def _differences(derivation, nt):
    """What the stage graph of this cell has that the LSTM's has not, and the reverse."""
    cell = derivation.cell
    mine, theirs = _forks_of(derivation), _lstm_forks()
    lstm_nt = Notation(True)

    def show(value, branches, notation):
        names = ", ".join("the loss" if b == "loss" else "the next step" if b == "next step"
                          else f"${notation.value(b)}$" for b in branches)
        return f"${notation.value(value)}$ into {names}"

    params, lstm_params = dict(cell.params()), dict(LSTM.params())
    return dict(
        notes=[tex_prose(n) for n in cell.notes],
        new_forks=[show(v, b, nt) for v, b in mine.items() if theirs.get(v) != b],
        lost_forks=[show(v, b, lstm_nt) for v, b in theirs.items() if mine.get(v) != b],
        new_params=[f"${tex_param(p)}$" for p in params if p not in lstm_params],
        lost_params=[f"${tex_param(p)}$" for p in lstm_params if p not in params],
        carried=[f"${nt.value(s)}$" for s in cell.state_names])
