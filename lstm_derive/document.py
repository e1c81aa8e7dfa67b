"""Build a cell's `Document`: everything its .tex and .html show, derived, measured and drawn here.

`make_document(entry, derivation, compared, module, reference)` takes the cell's catalogue
entry (its words) and derivation, the derivation of the cell it is compared with (None when
there is none), what changes from that one (`derive.compare`), the
cell's generated module text and the reference module (name, text) its gradient flow is
compared with.  For a recurrent cell it derives the output heads and, when its Jacobians
are sums of paths (`derive.jacobians.has_paths`), computes the state Jacobians, measures the
gradient flow by running `module` and draws the plot; the renderers then only print the
result.  Every cell gets a worked example, run with `module`, and its stage graph with a
layout from `layouts` (stored, or made by Graphviz's `dot`), and the view of one of its forks.
"""
from __future__ import annotations

import re

from catalogue.entry import Entry
from catalogue.references import references
from codegen.document import Document
from codegen.figures import dot_source, stage_graph
from codegen.flow_plot import draw
from codegen.fork_view import fork_view
from codegen.notation import Notation
from derive.compare import compare
from derive.derivation import Derivation, derive
from derive.heads import output_heads
from derive.jacobians import has_paths, state_jacobians
from derive.stabiliser import stabiliser
from lstm_derive.layout import Layouts
from lstm_derive.measure import measure_flow
from lstm_derive.worked import worked_example


def make_document(entry: Entry, derivation: Derivation, compared: Derivation | None, module: str,
                  reference: tuple[str, str] | None, layouts: Layouts | None = None) -> Document:
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    graph = stage_graph(derivation, nt)
    layout = (layouts or Layouts()).get(cell.name, dot_source(graph))
    example = "gomez2016" if cell.recurrent else "mazur2015"   # the worked example's source
    words = dict(description=entry.description, notes=entry.notes, intuition=entry.intuition,
                 cites=entry.cites, worked=worked_example(entry, derivation, module),
                 code=backward_excerpt(module),
                 references=references(("kang2019", *entry.cites, "cs231n", example)), graph=(graph, layout),
                 fork=fork_view(graph, derivation, nt),
                 compared=compared, comparison=compare(derivation, compared) if compared else None)
    if not cell.recurrent:
        return Document(derivation, **words)
    heads = tuple(derive(head) for head in output_heads(cell))
    words["stabiliser"] = stabiliser(cell, entry.stabiliser) if entry.stabiliser else None
    if not has_paths(cell):   # no path form of its Jacobians: no gradient-flow section
        return Document(derivation, **words, heads=heads)
    jacobians = state_jacobians(derivation)
    flow = measure_flow(derivation, jacobians, module, reference)
    return Document(derivation, **words, heads=heads,
                    jacobians=jacobians, flow=flow, plot=draw(flow))


BACKWARD_LABEL = re.compile(r"#.*\(B\d+\)")


def backward_excerpt(module: str) -> tuple[str, ...]:
    """The lines of `module` that compute one backward step: from the line citing (B1) to
    the last line citing a B-equation before the code leaves that block (the per-step loop
    of a recurrent cell), less their common indentation.  Empty if no line cites (B1)."""
    lines = module.split("\n")
    start = next((n for n, line in enumerate(lines) if "# (B1)" in line), None)
    if start is None:
        return ()
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start
    for n in range(start, len(lines)):
        line = lines[n]
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        end = n if BACKWARD_LABEL.search(line) else end
    return tuple(line[indent:] for line in lines[start:end + 1])
