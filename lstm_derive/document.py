"""Build a cell's `Document`: everything its .tex and .html show, derived, measured and drawn here.

`make_document(entry, derivation, lstm, module, reference)` takes the cell's catalogue
entry (its words) and derivation, the LSTM's derivation (None for the LSTM itself), the
cell's generated module text and the reference module (name, text) its gradient flow is
compared with.  For a recurrent cell it derives the output heads and, when its Jacobians
are sums of paths (`derive.jacobians.has_paths`), computes the state Jacobians, measures the gradient flow by running `module` and draws the plot; the
renderers then only print the result.  Every cell gets a worked example, run with `module`.
"""
from __future__ import annotations

from catalogue.entry import Entry
from catalogue.references import references
from codegen.document import Document
from codegen.flow_plot import draw
from derive.derivation import Derivation, derive
from derive.heads import output_heads
from derive.jacobians import has_paths, state_jacobians
from lstm_derive.measure import measure_flow
from lstm_derive.worked import worked_example


def make_document(entry: Entry, derivation: Derivation, lstm: Derivation | None, module: str,
                  reference: tuple[str, str] | None) -> Document:
    cell = derivation.cell
    example = "gomez2016" if cell.recurrent else "mazur2015"   # the worked example's source
    words = dict(description=entry.description, notes=entry.notes, intuition=entry.intuition,
                 cites=entry.cites, worked=worked_example(entry, derivation, module),
                 references=references(("kang2019", *entry.cites, example)))
    if not cell.recurrent:
        return Document(derivation, lstm=lstm, **words)
    heads = tuple(derive(head) for head in output_heads(cell))
    if not has_paths(cell):   # no path form of its Jacobians: no gradient-flow section
        return Document(derivation, lstm=lstm, **words, heads=heads)
    jacobians = state_jacobians(derivation)
    flow = measure_flow(derivation, jacobians, module, reference)
    return Document(derivation, lstm=lstm, **words,
                    heads=heads,
                    jacobians=jacobians, flow=flow, plot=draw(flow))
