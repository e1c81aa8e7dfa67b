"""The document's teaching sections: figures, backward steps branch by branch, output
layers that start the chain from a loss, and the gradient flow through time.

`sections(document, printer, nt)` returns the template context for them.  Everything
printed comes from the `Document` it is handed (the cell's derivation, its output heads'
derivations, the state Jacobians, the measured gradient flow); the words around it are
chosen from facts read off those.
"""
from __future__ import annotations

import itertools
import math
import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from codegen import drawing, figures
from codegen.latex_terms import (and_join, backward_eq, forward_eq, loss_head, param_eq, signed_sum, term_tex,
                                 visible as _visible)
from codegen.notation import Notation, tex_param
from derive.derivation import LOSS_BRANCH
from derive.stages import Kind, Loss
from derive.terms import WT, adjoint

HEAD_LABELS = ("S", "Q")   # softmax head equations S1.., squared-error head Q1..
HEAD_WORDS = {Loss.CROSS_ENTROPY: "softmax output layer with cross-entropy loss",
              Loss.SQUARED_ERROR: "linear output layer with squared-error loss"}
TIMES = r" \times "
# the pattern of backward flow each consuming stage's kind follows (Section "Patterns of
# backward flow"); every other elementwise kind multiplies by its local partial
PATTERNS = {Kind.ADD: "add", Kind.MUL: "multiply", Kind.AFFINE: "affine"}
LINE = 48   # visible characters of one line of a long Jacobian term
OVERFULL = 72   # a line this long no longer fits as printed (the count of `_visible` is rough)
EXPANDABLE = 60   # operations in a term worth multiplying out (expanding grows with nesting depth)


def sections(document, printer, nt) -> dict:
    derivation = document.derivation
    cell = derivation.cell
    loss = next((a.label for a in derivation.adjoints
                 if any(t.branch == LOSS_BRANCH for t in a.terms)), None)
    fork = document.fork
    out = dict(graph=_figure(*document.graph), fork=_figure(*fork) if fork else None, loss_entry=loss,
               steps=[backward_step(derivation, adj, printer, nt) for adj in derivation.adjoints],
               unrolled=None, heads=[], flow=None,
               stabiliser=stabiliser_section(document, printer, nt) if document.stabiliser else None)
    if cell.recurrent:
        out.update(unrolled=_figure(*figures.unrolled(derivation, nt)),
                   heads=[_head(h, p, nt) for h, p in zip(document.heads, HEAD_LABELS)],
                   flow=gradient_flow(document, printer, nt) if document.flow else None)
    return out


def stabiliser_section(document, printer, nt) -> dict:
    """The identities `derive.stabiliser` proved, as LaTeX, and the backward steps that carry
    the stabiliser's gradient (its own and those of the stage that computes it)."""
    proof, derivation = document.stabiliser, document.derivation
    m, out = proof.state, proof.output
    partial = lambda a, b: rf"\frac{{\partial {nt.value(a)}}}{{\partial {nt.value(b)}}}"
    rescaled = [dict(lhs=partial(s, m), expr=printer.doprint(d), state=nt.value(s))
                for s, d in proof.rescaled]
    paths = [(partial(out, s) + partial(s, m),
              rf"\left({printer.doprint(dh)}\right)\left({printer.doprint(ds)}\right)")
             for s, dh, ds in proof.paths]
    unscaled = [dict(lhs=rf"e^{{{nt.value(m)}}} {nt.value(s)}", expr=printer.doprint(e))
                for s, e in proof.unscaled]
    inputs = derivation.cell.stage(m).inputs
    label = {a.target: a.label for a in derivation.adjoints}
    return dict(state=nt.value(m), previous=nt.value(m, "t-1"), output=nt.value(out),
                rescaled=rescaled, chain=" + ".join(p for p, _ in paths),
                products=" + ".join(q for _, q in paths), total=printer.doprint(proof.total),
                unscaled=unscaled, scaled=and_join([f"${nt.value(s)}$" for s, _ in proof.rescaled]),
                own=label[m], through=and_join([f"(\\ref{{eq:{label[x]}}})" for x in inputs]))


def _figure(figure, layout):
    """A figure's TikZ, legend and caption, and its drawing's height in big points (the
    tikzpicture's unit) for a figure that must be set where it is mentioned."""
    _, bottom, _, top = layout.bounds
    return dict(tikz=drawing.tikz(figure, layout), legend=drawing.tikz_legend(figure.legend),
                caption=figure.caption, height=f"{math.ceil(top - bottom)}bp")


def backward_step(derivation, adj, printer, nt) -> dict:
    """One backward equation with, for each branch, the stage, its local partial and shapes."""
    eq = backward_eq(adj, printer, nt)
    stages = {f.stage.name: f for f in derivation.forward}
    eq["branches"] = [_branch(derivation, stages, adj, term, printer, nt) for term in adj.terms]
    term = adj.terms[0] if len(adj.terms) == 1 else None
    # a plain copy (one branch, factor 1) is shown in one line, not under a heading of its own
    eq["plain"] = (term is not None and term.branch in stages and not eq["words"]
                  and term.expr == adjoint(term.source))
    return eq


def _branch(derivation, stages, adj, term, printer, nt) -> dict:
    """One branch of a backward equation; `stages` maps a stage name to its ForwardEq."""
    cell, target = derivation.cell, adj.target
    tex = term_tex(term, printer, nt, target)
    v = nt.value(target)
    if term.branch in stages:   # explained by the consuming stage's operation
        consumer = stages[term.branch].stage
        stage = forward_eq(stages[term.branch], nt)
        head = (f"via ${stage['lhs']}$, stage ({stage['label']}) "
                f"${stage['lhs']} = {stage['rhs']}$")
        s = stage["lhs"]
        pattern = PATTERNS.get(consumer.kind, "elementwise")
        if consumer.kind is Kind.AFFINE:
            (weight, _), = (node.args for node in term.expr.atoms(WT))
            why = rf"; pattern: {pattern}, through ${tex_param(str(weight))}^{{\top}}$"
        elif consumer.kind is Kind.SOFTMAX:
            why = r"; the softmax rule (Section~\ref{sec:softmax}) contracts its Jacobian with the incoming gradient"
        elif consumer.kind is Kind.MEAN:
            blocks = len(consumer.inputs)
            why = (rf"; the mean rule (Section~\ref{{sec:layernorm}}): every entry of ${v}$ receives the "
                   "mean of the incoming gradient" + (f", divided by the {blocks} stacked inputs" if blocks > 1 else ""))
        else:
            factor = term.expr.as_independent(adjoint(term.source), as_Add=False)[0]
            why = (rf"; pattern: {pattern}, local partial $\partial {s} / \partial {v} = "
                   rf"{printer.doprint(factor)}$")
    elif term.branch == LOSS_BRANCH:
        head = f"the loss reads ${v}$ directly"
        why = ("" if not cell.recurrent else
               r" (Section~\ref{sec:heads} derives this term for two output layers)")
    else:
        prev = derivation.adjoint(f"{target}_prev").label
        head = f"the next time step: ${v}$ is its previous state"
        why = f"; the term was computed there by (\\ref{{eq:{prev}}})"
    return dict(head=head + why, term=tex)


def _head(d, prefix, outer_nt) -> dict:
    """An output layer on h_t (its derivation `d`), its labels renamed S1.. / Q1.."""
    head_cell = d.cell
    nt = Notation(True)
    printer = nt.printer(list(head_cell.sizes()))
    n = itertools.count(1)
    forward = [dict(forward_eq(eq, nt), label=f"{prefix}{next(n)}") for eq in d.forward]
    backward = [dict(backward_eq(a, printer, nt), label=f"{prefix}{next(n)}") for a in d.adjoints]
    params = [dict(param_eq(g, printer, nt), label=f"{prefix}{next(n)}") for g in d.param_grads]
    out = head_cell.inputs[0][0]
    return dict(description=HEAD_WORDS[head_cell.loss], loss=loss_head(head_cell, nt, "y^{*}"),
                forward=forward, backward=backward, params=params,
                sizes=", ".join(f"${tex_param(p)}$: ${TIMES.join(shape)}$" for p, shape in head_cell.params()),
                output=outer_nt.value(out), enters=backward[-1]["label"],
                softmax=any(s.kind is Kind.SOFTMAX for s in head_cell.stages))


def gradient_flow(document, printer, nt) -> dict:
    """The one-step state Jacobians, which of them have a weight-free path, and the plot."""
    cell, flow = document.derivation.cell, document.flow
    jacobians = []
    for n, j in enumerate(document.jacobians, 1):
        paths = [_path_tex(p, printer) for p in j.paths] or ["0"]
        jacobians.append(dict(label=f"J{n}", lhs=rf"\frac{{\partial {nt.value(j.state)}}}"
                                                  rf"{{\partial {nt.value(j.previous, 't-1')}}}",
                              paths=paths, size=f"{cell.sizes()[j.state]}{TIMES}{cell.sizes()[j.previous]}",
                              free=[_path_tex(p, printer) for p in j.weight_free]
                              if j.state == j.previous else []))
        jacobians[-1]["free_sum"] = signed_sum(jacobians[-1]["free"])
    free = [j for j in jacobians if j["free"]]
    refs = [rf"(\ref{{eq:{j['label']}}})" for j in free]
    free_intro = (f"The Jacobian {refs[0]} contains a term without any weight matrix," if len(refs) == 1
                  else f"The Jacobians {and_join(refs)} each contain a term without any weight "
                       "matrix, one per line," if refs else "")
    biases = [f"${tex_param(b)}$" for b in flow.biases]
    claims = []
    return dict(jacobians=jacobians, free=free, free_intro=free_intro, biases=biases, plot=document.plot_file,
                measured=flow_words(flow, claims), claims=claims, setting=_setting(flow),
                final=nt.value(cell.output, "T"))


def _read(claims, curves, name, k):
    """The value of curve `name` at k as the text prints it, recorded in `claims`."""
    flow_steps, values = curves["steps"], curves[name]
    printed = number(values[flow_steps.index(k)])
    claims.append(dict(curve=name, k=k, printed=printed))
    return f"${printed}$"


def flow_words(flow, claims) -> list[str]:
    """What the measured curves show, each number read off them (and listed in `claims`)."""
    curves = dict(flow.curves + flow.paths, steps=flow.steps)
    names = [name for name, _ in flow.curves]
    cell, last, s = names[0], flow.steps[-1], flow.setting
    words = []
    if flow.biases:
        opened = names[1]
        bias = ", ".join(f"${tex_param(b)}$" for b in flow.biases)
        alone = {name: f"{name}: weight-free path alone" for name in (cell, opened)}
        whole_open, path_open = (curves[n][-1] for n in (opened, alone[opened]))
        words += [
            rf"At this initialisation the gates are about $\sigma(0) = {s.closed_gate}$: at $\tau = {last}$ "
            f"the whole gradient is {_read(claims, curves, cell, last)} and the weight-free path "
            f"alone carries {_read(claims, curves, alone[cell], last)}.",
            f"With {bias} set to ${s.open_bias:g}$ ($\\sigma({s.open_bias:g}) \\approx {s.open_gate:.2f}$, "
            f"so that path keeps about $\\sigma({s.open_bias:g})^{{{last}}} \\approx {number(s.open_gate ** last)}$ "
            f"of what it carries over {last} steps) the path alone carries "
            f"{_read(claims, curves, alone[opened], last)} at $\\tau = {last}$, while the whole gradient is "
            f"{_read(claims, curves, opened, last)}: "
            + ("most of what survives comes along the paths through the recurrent weights, not "
               "along the weight-free path alone." if path_open < whole_open / 2 else
               "the weight-free path carries most of what survives.")]
    for name in names:
        values = curves[name]
        low = min(range(len(values)), key=values.__getitem__)
        if low < len(values) - 1 and values[-1] > 1.1 * values[low]:
            words.append(
                f"The whole gradient of {_curve_tex(name, flow)} is smallest at $\\tau = {flow.steps[low]}$ "
                f"({_read(claims, curves, name, flow.steps[low])}) and then rises to "
                f"{_read(claims, curves, name, last)} at $\\tau = {last}$: there the paths through "
                "the weights have begun to grow the gradient, the early sign of an exploding gradient.")
    if len(names) > (2 if flow.biases else 1):
        reference = names[-1]
        words.append(f"The plain RNN, whose every path passes through its weights, "
                     f"falls from {_read(claims, curves, reference, flow.steps[0])} at $\\tau = {flow.steps[0]}$ "
                     f"to {_read(claims, curves, reference, last)} at $\\tau = {last}$.")
    elif not flow.biases:
        words.append(f"Its gradient falls from {_read(claims, curves, cell, flow.steps[0])} at "
                     f"$\\tau = {flow.steps[0]}$ to {_read(claims, curves, cell, last)} at $\\tau = {last}$.")
    return words


def _curve_tex(name, flow) -> str:
    """A curve's name in prose: the document's cell is "the cell", its curve with opened gates
    "the cell with $b_{f} = 3$", the reference "the plain RNN"."""
    names = [n for n, _ in flow.curves]
    if name == names[0]:
        return "the cell"
    if flow.biases and name == names[1]:
        biases = ", ".join(tex_param(b) for b in flow.biases)
        return f"the cell with ${biases} = {flow.setting.open_bias:g}$"
    return "the plain RNN"


def number(value: float) -> str:
    """A measured value as the text prints it: two significant digits."""
    if 1e-2 <= abs(value) < 100:
        return f"{value:.2g}"
    return _sci(value)


def _setting(flow) -> dict:
    """The measurement's constants as the text prints them."""
    s = flow.setting
    return dict(hidden=s.hidden, input=s.input, batch=s.batch, steps=flow.steps[-1],
                bias=f"{s.open_bias:g}", gate=f"{s.open_gate:.2f}", closed=str(s.closed_gate))


def _sci(value: float) -> str:
    """2 significant digits, as LaTeX: 3.4 \\times 10^{-12}."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}" if int(exponent) else mantissa


def _path_tex(path, printer) -> str:
    """A path as LaTeX inside a `split`; a long diagonal is broken after its sums."""
    parts = []
    for n, d in enumerate(path.diags):
        if d != 1:
            parts.append(_diag_tex(d, printer))
        if n < len(path.weights):
            parts.append(tex_param(path.weights[n]))
    return r" \, ".join(parts) or "I"


def _diag_tex(d, printer) -> str:
    """diag(d); when too long for a line, broken between terms (or factors of a product), and
    when a piece is still too long, between the terms of the expanded sum (if small enough)."""
    shorter = sp.factor_terms(d)
    d = shorter if len(str(shorter)) < len(str(d)) else d
    whole = printer.doprint(d)
    if _visible(whole) <= LINE:
        return rf"\operatorname{{diag}}\left({whole}\right)"
    lines, glue = _broken(d, printer)
    if max(map(_visible, lines)) > OVERFULL and sp.count_ops(d) <= EXPANDABLE and sp.expand(d).is_Add:
        lines, glue = _broken(sp.expand(d), printer)
    rest = "".join(r" \\ &\qquad" + glue(text) for text in lines[1:])
    return r"\operatorname{diag}\bigl(" + lines[0] + rest + r"\bigr)"


def _broken(d, printer):
    """The lines of d broken between terms (or factors), and the glue that starts a later line."""
    if d.is_Add:   # break between terms: `a + b \\ - c`
        pieces = [printer.doprint(t) for t in sp.Add.make_args(d)]
        join, glue = signed_sum, lambda line: (" - " + line[1:].lstrip() if line.startswith("-")
                                               else " + " + line)
    else:          # break between factors: `a \odot b \\ \odot c`
        coeff, factors = d.as_coeff_mul()
        pieces = [printer.parenthesize(f, PRECEDENCE["Mul"]) for f in factors]
        pieces[0] = {1: "", -1: "-"}.get(coeff, f"{printer.doprint(coeff)} ") + pieces[0]
        join, glue = (lambda part: r" \odot ".join(part)), (lambda line: r" \odot " + line)
    lines, line = [], []
    for piece in pieces:
        if line and _visible(join(line + [piece])) > LINE:
            lines.append(join(line))
            line = []
        line.append(piece)
    lines.append(join(line))
    return lines, glue


