"""Emit a cell's LaTeX derivation document (`generated/<cell>.tex`) from its `Document`.

The emitter turns the document's data (the derivation, the LSTM's for comparison, and what
`latex_sections` shows) into plain lists of LaTeX strings (one per equation, with its label)
and the template `document.tex.j2` lays them out.  Every formula shown is printed from a
SymPy expression the engine computed; nothing is derived, measured or decided here.
`summary_latex(derivation)` is the equations alone, for a notebook.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter

from codegen import latex_sections
from codegen.latex_compare import cite_equations, differences
from codegen.latex_worked import worked
from codegen.document import Document
from codegen.latex_terms import (adjoint_lhs, and_join, backward_eq, branch_name, forward_eq,
                                 loss_head, param_eq, signed_sum, tex_prose, term_tex)
from codegen.notation import Notation, direct_loss_gradient, note_names, note_tex, tex_param, tex_text
from codegen.templates import render
from derive.derivation import Derivation
from derive.ops import OPS
from derive.rules import affine_rule, definition, derivative, layer_norm_rule, mean_rule, softmax_rule
from derive.stages import Kind

STEP_WORDS = {"definition": "definition", "derivative": "differentiate the definition",
              "around the definition": "the same, written around the definition",
              "in terms of output": "name the definition $s$"}


def emit_latex(document: Document, command: str) -> str:
    derivation = document.derivation
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    printer = nt.printer(list(cell.sizes()))
    kinds = {s.kind for s in cell.stages}
    context = dict(
        cell=tex_text(cell.name), title_cell=_title(cell.name),
        description=tex_prose(document.description), command=command, timed=cell.recurrent,
        shapes=_shapes(cell, nt), params=_params(cell),
        forward=[forward_eq(eq, nt, note_names(cell)) for eq in derivation.forward],
        activations=_activation_rules(kinds),
        simple_rules=_simple_rules(kinds),
        affine=_affine_rule(), softmax=(_softmax_rule("z" if cell.recurrent else "a")   # z: an output layer's logits
                 if Kind.SOFTMAX in kinds or cell.recurrent else None),
        **(_normalisation_rules() if Kind.MEAN in kinds else dict(mean=None, layer_norm=None)),
        loss=loss_head(cell, nt, TARGET_TEX) if cell.loss else None, target=TARGET_TEX,
        partials=[dict(stage=nt.value(p.stage), wrt=nt.value(p.wrt), expr=printer.doprint(p.expr))
                  for p in derivation.partials],
        forks=_forks(derivation, nt),
        backward=[backward_eq(adj, printer, nt) for adj in derivation.adjoints],
        carries=_carries(cell, nt),
        param_grads=[param_eq(g, printer, nt) for g in derivation.param_grads],
        summary=_summary(derivation, printer, nt),
        wrap_summary=any(len(row["rhs"]) > WRAP for row in _summary(derivation, printer, nt)),
        differences=differences(document, _title, nt),
        literature=([cite_equations(n, derivation, dict(document.references)) for n in document.notes]
                    if document.comparison is None else []),   # notes said with the notation
        output=nt.value(cell.output),
        states0=[nt.value(s, "0") for s in cell.state_names],
        inputs=[nt.value(x) for x in cell.input_names],
        sum_over=(r"\sum_{t=1}^{T} \sum_{\text{batch}}" if cell.recurrent
                  else r"\sum_{\text{batch}}"),
        worked=worked(document, nt),
        intuition=[cite_equations(p, derivation, dict(document.references)) for p in document.intuition], cites=",".join(document.cites),
        references=document.references,
        code=(code := broken_lines(document.code)), code_size=_code_size(code),
        code_broken=len(code) > len(document.code),
        # what the paragraph before the excerpt explains, only where the excerpt has it
        code_joined=any(len(re.findall(r"\([A-Z]\d+\)", line)) > 1 for line in document.code),
        code_unnamed=any("# (" not in line for line in document.code),
        code_after=_not_cited(derivation, document.code),
        code_factors=any(re.search(r"\bF_", line) for line in document.code),
        code_direct=tex_text(f"d{cell.output}s[t]" if cell.recurrent else f"d{cell.output}"),
        code_direct_tex=direct_loss_gradient(nt.value(cell.output), cell.recurrent),
        **latex_sections.sections(document, printer, nt),
    )
    return render("document.tex.j2", **context)


def _not_cited(derivation, lines) -> list[str]:
    """Labels of the backward equations that no comment of the code excerpt cites."""
    cited = set(re.findall(r"\(([A-Z]\d+)\)", " ".join(line.partition("#")[2] for line in lines)))
    return [a.label for a in derivation.adjoints if a.label not in cited]


CODE_WIDTH = 110   # characters of code that fit the line in \scriptsize type


def broken_lines(lines) -> list[str]:
    """`lines` of Python with each line longer than CODE_WIDTH broken before a `+` or `-`
    outside brackets: the line ends ` \\` and the next starts with four spaces and the
    operator, so joining them back (`unbroken_lines`) gives the line itself.  Its comment stays
    at the end of its last piece."""
    out = []
    for line in lines:
        code, hash_, comment = line.partition("  #")
        terms = _top_level_terms(code) if len(line) > CODE_WIDTH else [code]
        terms[-1] += hash_ + comment
        pieces = [terms[0]]
        for term in terms[1:]:
            if len(pieces[-1]) + 1 + len(term) > CODE_WIDTH - 2:
                pieces.append("    " + term)
            else:
                pieces[-1] += " " + term
        out += [p + " \\" for p in pieces[:-1]] + [pieces[-1]]
    return out


def unbroken_lines(lines) -> list[str]:
    """The inverse of `broken_lines`."""
    out: list[str] = []
    for line in lines:
        joined = out and out[-1].endswith(" \\")
        out[-1:] = [out[-1][:-2] + " " + line.lstrip()] if joined else [*out[-1:], line]
    return out


def _top_level_terms(code: str) -> list[str]:
    """`code` split before each ` + ` and ` - ` outside brackets (each later term starts with
    its operator)."""
    terms, depth, start = [], 0, 0
    for n, ch in enumerate(code):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0 and code[n:n + 3] in (" + ", " - "):
            terms.append(code[start:n])
            start = n + 1
    return terms + [code[start:]]


def _code_size(lines) -> str:
    """The type size at which the longest code line fits the text width."""
    longest = max(map(len, lines), default=0)
    return r"\small" if longest <= 84 else r"\footnotesize" if longest <= 96 else r"\scriptsize"


# a built-in cell's name in words; a spec's name is shown in type
TITLES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "mlp": "MLP", "gru_reset_after": "reset-after GRU",
          "layernorm_lstm": "layer-norm LSTM", "layernorm_gru": "layer-norm GRU",
          "peephole_lstm": "peephole LSTM", "cifg_lstm": "CIFG LSTM", "lstmp": "LSTMP", "indrnn": "IndRNN",
          "slstm": "sLSTM", "mlp_softmax": "softmax MLP"}


def _title(name: str) -> str:
    """The cell's name as a title says it: LSTM, or the identifier itself in type."""
    return TITLES.get(name, rf"\code{{{tex_text(name)}}}")


def summary_latex(derivation: Derivation) -> str:
    """Every forward, backward and parameter equation as one displayed `aligned` block
    (what a notebook shows for a derivation: MathJax renders display mathematics only)."""
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    printer = nt.printer(list(cell.sizes()))
    rows = [(eq["lhs"], eq["rhs"], eq["label"]) for eq in map(lambda e: forward_eq(e, nt),
                                                                 derivation.forward)]
    rows += [(r["lhs"], r["rhs"], r["label"]) for r in _summary(derivation, printer, nt)]
    body = r" \\ ".join(rf"{lhs} &= {rhs} && \text{{({label})}}" for lhs, rhs, label in rows)
    return rf"$$\begin{{aligned}} {body} \end{{aligned}}$$"


def _shapes(cell, nt):
    return [(f"${nt.value(v)}$", f"${size}$", _role(cell, v)) for v, size in cell.sizes().items()]


def _params(cell):
    """The parameters with their shapes, for one line under the table of values (a name and
    its shape joined by a no-break space: a line never ends between them)."""
    times = r" \times "
    return ", ".join(f"${tex_param(p)}$~(${times.join(shape)}$)" for p, shape in cell.params())


def _role(cell, value):
    if value in cell.input_names:
        return "input at step $t$" if cell.recurrent else "input"
    if value.endswith("_prev"):
        return "state from step $t-1$"
    stage = cell.stage(value)
    return note_tex(stage.note or stage.kind.words, Notation(cell.recurrent), note_names(cell))


def _activation_rules(kinds):
    """Derivation steps of every activation kind the cell uses, printed from SymPy."""
    out = []
    for kind in (k for k in _in_table_order(kinds) if k.activation):
        partial = derivative(kind, 0)
        steps = [(STEP_WORDS[name], _scalar_step(name, kind, expr)) for name, expr in partial.steps]
        d = definition(kind)
        out.append(dict(name=kind.words, symbol=kind.symbol, steps=steps,
                        numeric=sp.latex(d.numeric) if d.numeric != d.expr else None,
                        reuse=d.reuse_output,
                        result=sp.latex(partial.expr)))
    return out


def _scalar_step(name, kind, expr):
    if name == "definition":
        return f"s = {kind.symbol}(x) &= {sp.latex(expr)}"
    lhs = r"\frac{ds}{dx}" if name == "derivative" else ""
    return f"{lhs} &= {sp.latex(expr)}"


def _simple_rules(kinds):
    """Partial derivatives of products, sums and complements, as SymPy gives them."""
    rows = []
    for kind in _in_table_order(kinds):
        if kind.elementwise and not kind.activation:
            partials = [rf"\frac{{\partial s}}{{\partial {sp.latex(a)}}} = "
                        rf"{sp.latex(derivative(kind, n).expr)}" for n, a in enumerate(kind.args)]
            lines = [", ".join(partials[n:n + 2]) for n in range(0, len(partials), 2)]   # two a line
            rows.append(dict(name=kind.words, definition=sp.latex(kind.expr), partials=lines))
    return rows


def _in_table_order(kinds):
    """The cell's kinds, built-in rows in the table's order, any other rows after them."""
    return [k for k in OPS if k in kinds] + sorted((k for k in kinds if k not in OPS),
                                                   key=lambda k: k.name)


WRAP = 250   # a summary equation longer than this (LaTeX characters) may break across lines
TARGET_TEX = "y^{*}"   # the target of a loss, everywhere (t is the time step)


class _IndexPrinter(LatexPrinter):
    """LaTeX of index expressions: a Kronecker delta as the Iverson bracket [p = q], so that
    the letter delta means a gradient only."""

    def _print_KroneckerDelta(self, expr, exp=None):
        i, j = (self._print(a) for a in expr.args)
        return rf"[{i} = {j}]"


def _plain(expr, rename=None, bases=None):
    """LaTeX of an index expression with its indices printed as plain letters, renamed by
    `rename` (k is the LSTM's k_t and the steps back elsewhere: the rows are p here), its
    vectors renamed by `bases`, and the target `t` written y*."""
    rename, bases = rename or {}, {"t": TARGET_TEX, **(bases or {})}
    letters = {i: sp.Symbol(rename.get(str(i.label), str(i.label))) for i in expr.atoms(sp.Idx)}
    renamed = {b: sp.IndexedBase(bases[str(b)]) for b in expr.atoms(sp.IndexedBase) if str(b) in bases}
    return _IndexPrinter().doprint(expr.xreplace(renamed).xreplace(letters))


def _affine_rule():
    rule = affine_rule()
    rows, bases = {"k": "p", "j": "q"}, {"delta": r"\delta a"}   # delta alone is no gradient
    return dict(definition=_plain(rule.definition, rows, bases),
                d_weight=_plain(rule.d_weight, rows, bases),
                d_input=_plain(rule.d_input, rows, bases), d_bias=_plain(rule.d_bias, rows, bases))


def _softmax_rule(logits: str):
    """The softmax's rule with its logits called `logits` (z in an output layer, a in a
    network), the incoming gradient's entries written delta y_p."""
    rule = softmax_rule()
    rows, bases = {"k": "p"}, {"a": logits, "delta": r"\delta y"}
    return dict(logits=logits, definition=_plain(rule.definition, rows, bases),
                jacobian=_plain(rule.jacobian, rows, bases),
                d_input=_plain(rule.d_input, rows, bases),
                cross_entropy=_plain(rule.cross_entropy, rows, bases))


def _normalisation_rules():
    """The mean stage's rule, and the layer norm's derivative in one piece (what its stages
    compose to), both from index notation."""
    mean, ln = mean_rule(), layer_norm_rule()
    return dict(mean=dict(definition=_plain(mean.definition), d_input=_plain(mean.d_input)),
                layer_norm=dict(definition=_plain(ln.definition), jacobian=_plain(ln.jacobian),
                                terms=len(sp.Add.make_args(ln.d_input)), vector=_plain(ln.vector)))


def _forks(derivation, nt):
    return [dict(value=nt.value(adj.target), branches=and_join([branch_name(t, nt) for t in adj.terms]))
            for adj in derivation.adjoints if adj.is_fork]


def _carries(cell, nt):
    return [dict(state=nt.value(s), carried=rf"{{{nt.adjoint(s, 'T')}}}^{{(T+1)}}",
                 final=nt.value(s, "T"), initial=rf"{{{nt.adjoint(s, '0')}}}^{{(1)}}",
                 state0=nt.value(s, "0"))
            for s in cell.state_names]


def _summary(derivation, printer, nt):
    rows = [dict(label=a.label, lhs=adjoint_lhs(a.target, nt), shape=a.size,
                 rhs=signed_sum([term_tex(t, printer, nt, a.target) for t in a.terms]))
            for a in derivation.adjoints]
    for g in derivation.param_grads:
        eq = param_eq(g, printer, nt)
        rows.append(dict(label=g.label, lhs=eq["lhs"], rhs=rf"\textstyle\sum {eq['body']}",
                         shape=eq["shape"]))
    return rows
