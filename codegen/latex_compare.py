"""The section on how a cell differs from the cell it is compared with, as LaTeX strings.

`differences(document, title, nt)` prints what `derive.compare` found: the other cell's
stages this one has not (in the other cell's notation, so that every letter of it is defined
where it is used), the labels of this cell's own stages in their place, and the gradients
that change, both written out.  The catalogue's prose (`notes`) comes first; a note may cite
this document's equations by value, `[[B:h_prev]]` for the backward equation of h_prev and
`[[F:a_n]]` for the forward equation of a_n, so a label is never typed (`[[S:params]]` is
the section labelled sec:params, `[[C:greff2017]]` a citation of that work).
"""
from __future__ import annotations

import re

import sympy as sp

from codegen.latex_terms import signed_sum, stage_rhs, tex_prose, visible
from codegen.notation import Notation, note_names, note_tex, tex_base, tex_param, tex_text
from derive.compare import same_meaning

SECTIONS = {name: name for name in ("params", "layernorm", "softmax", "stabiliser", "flow",
                                    "loss", "backward", "forward", "local", "differences")}
ROW = 56    # visible characters of one row of a written-out gradient
ROWS = 2    # a gradient needing more rows than this is left to the prose
CITE = re.compile(r"\[\[([FBSC]):(\w+)\]\]")


def differences(document, title, nt) -> dict | None:
    """The section's strings; None when the document compares with no cell."""
    if document.comparison is None:
        return None
    mine, theirs, c = document.derivation, document.compared, document.comparison
    their_nt = Qualified(nt.timed, theirs.cell.vector_param_names, clashes(mine, theirs),
                         theirs.cell.name)
    printer, their_printer = (n.printer(list(d.cell.sizes())) for n, d in ((nt, mine), (their_nt, theirs)))
    labels = {eq.stage.name: eq.label for eq in mine.forward}
    changes = [dict(lhs=_lhs(ch, nt), theirs=rows(ch.theirs, their_printer, ch.param, nt.timed),
                    mine=rows(ch.mine, printer, ch.param, nt.timed)) for ch in c.changes]
    return dict(
        against=title(theirs.cell.name),
        notes=[cite_equations(n, mine, dict(document.references)) for n in document.notes],
        theirs=[dict(lhs=their_nt.value(s.name), rhs=stage_rhs(s, their_nt),
                     note=note_tex(s.note, their_nt, note_names(theirs.cell), math=True))
                for s in c.theirs],
        mine=label_ranges([labels[s.name] for s in c.mine]),
        shared=len(mine.cell.stages) > len(c.mine),
        changes=[ch for ch in changes if ch["theirs"] and ch["mine"]])


def rows(expr, printer, param: bool, timed: bool) -> list[str] | None:
    """The right-hand side of a gradient in rows of at most ROW visible characters, broken
    between terms (a parameter's gradient as the sum over steps and examples it is); None
    when it needs more than ROWS rows or a term is much wider than a row."""
    terms = [printer.doprint(t) for t in sp.Add.make_args(expr)]
    out: list[list[str]] = []
    for term in terms:
        if out and visible(signed_sum(out[-1] + [term])) <= ROW:
            out[-1].append(term)
        else:
            out.append([term])
    lines = [signed_sum(row) for row in out]
    lines[1:] = [f"- {line[1:]}" if line.startswith("-") else f"+ {line}" for line in lines[1:]]
    if param and len(lines) == 1:   # a parameter's gradient sums over steps and examples
        total = r"\sum_{t=1}^{T} \sum_{\text{batch}} " if timed else r"\sum_{\text{batch}} "
        lines = [total + (rf"\left({lines[0]}\right)" if len(terms) > 1 else lines[0])]
    fits = len(lines) <= ROWS and all(visible(line) <= ROW + 12 for line in lines)
    return lines if fits else None   # None: too wide for the page, left to the prose


def clashes(mine, theirs) -> set[str]:
    """The other cell's values named like one of this cell's but meaning something else (the
    LSTM's kept part m beside the sLSTM's stabiliser m): shown qualified by the other cell's
    name (m^LSTM), so that no letter means two things in one document."""
    own = {s.name for s in mine.cell.stages}
    return {s.name for s in theirs.cell.stages
            if s.name in own and not same_meaning(mine, theirs, s.name)}


class Qualified(Notation):
    """The other cell's notation, its clashing names (`clashes`) qualified by its name."""

    def __init__(self, timed: bool, params, renamed: set[str], cell: str):
        super().__init__(timed, params)
        self.renamed, self.tag = renamed, rf"\mathrm{{{tex_text(cell.upper())}}}"

    def value(self, name: str, step: str = "t") -> str:
        if name not in self.renamed:
            return super().value(name, step)
        base = tex_base(name)
        qualified = base[:-1] + f",{self.tag}}}" if base.endswith("}") else f"{base}^{{{self.tag}}}"
        return f"{qualified}_{{{step}}}" if self.timed else qualified


def _lhs(change, nt) -> str:
    if change.param:
        return rf"\delta {tex_param(change.target)}"
    if change.target.endswith("_prev"):
        return rf"{{{nt.adjoint(change.target)}}}^{{(t)}}"
    return nt.adjoint(change.target)


def cite_equations(text: str, derivation, works=()) -> str:
    """The prose `text` in LaTeX, each `[[F:v]]` / `[[B:v]]` (outside mathematics) replaced by
    a reference to the forward equation of v / the backward equation of v's gradient; an
    unknown value is a ValueError; `[[C:key]]` cites the work `key`, one of `works`."""
    tables = {"F": {eq.stage.name: eq.label for eq in derivation.forward},
              "B": {a.target: a.label for a in derivation.adjoints}}
    tables["S"] = SECTIONS
    tables["C"] = dict.fromkeys(works)
    pieces = CITE.split(text)   # words, then (kind, value, words) for every citation
    out = [tex_prose(pieces[0])]
    for kind, value, words in zip(pieces[1::3], pieces[2::3], pieces[3::3]):
        if value not in tables[kind]:
            raise ValueError(f"{derivation.cell.name}: a note cites [[{kind}:{value}]], "
                             f"which this document does not have")
        cite = {"S": rf"Section~\ref{{sec:{value}}}", "C": rf"~\cite{{{value}}}"}.get(
            kind, rf"(\ref{{eq:{tables[kind].get(value)}}})")
        out += [cite, tex_prose(words)]
    return "".join(out)


def label_ranges(labels) -> str:
    """`(F1)--(F4), (F7)` for F1, F2, F3, F4, F7: runs of consecutive labels as ranges."""
    runs: list[list[str]] = []
    for label in labels:
        if runs and int(label[1:]) == int(runs[-1][-1][1:]) + 1:
            runs[-1].append(label)
        else:
            runs.append([label])
    cite = lambda label: rf"(\ref{{eq:{label}}})"   # noqa: E731
    return ", ".join(cite(r[0]) if len(r) == 1 else f"{cite(r[0])}--{cite(r[-1])}" for r in runs)
