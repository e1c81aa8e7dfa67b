"""Build a cell's `Document`: everything its .tex and .html show, derived, measured and drawn here.

`make_document(derivation, lstm, module, reference)` takes the cell's derivation, the LSTM's
(None for the LSTM itself), the cell's generated module text and the reference module
(name, text) its gradient flow is compared with.  For a recurrent cell it derives the output
heads, computes the state Jacobians, measures the gradient flow by running `module` and
draws the plot; the renderers then only print the result.
"""
from __future__ import annotations

from codegen.document import Document
from codegen.flow_plot import draw
from derive.derivation import Derivation, derive
from derive.heads import output_heads
from derive.jacobians import state_jacobians
from lstm_derive.measure import measure_flow


def make_document(derivation: Derivation, lstm: Derivation | None, module: str,
                  reference: tuple[str, str] | None) -> Document:
    cell = derivation.cell
    words = dict(description=cell.description, notes=cell.notes)
    if not cell.recurrent:
        return Document(derivation, lstm=lstm, **words)
    jacobians = state_jacobians(derivation)
    flow = measure_flow(derivation, jacobians, module, reference)
    return Document(derivation, lstm=lstm, **words,
                    heads=tuple(derive(head) for head in output_heads(cell)),
                    jacobians=jacobians, flow=flow, plot=draw(flow))
