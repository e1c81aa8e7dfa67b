"""A derivation shown in a notebook: `Page(derivation)` renders as its equations or its page.

The mathematics does not know how it is drawn; wrap a derivation to display it.  The page
is rendered the way the build renders it (module, measured flow, document, .tex, .html),
with the words of the cell's catalogue entry: the built-in one, or `entry` if given (a
spec's, from `catalogue.spec.load_spec`).
"""
from __future__ import annotations

from catalogue.cells import CELLS
from catalogue.entry import Entry
from codegen.emit_html import html_fragment
from codegen.emit_latex import summary_latex
from lstm_derive.build import Build


class Page:
    """Notebook display of a derivation: `_repr_latex_` (its equations), `_repr_html_` (its page)."""

    def __init__(self, derivation, entry: Entry | None = None):
        if entry is not None and entry.cell != derivation.cell:
            raise ValueError(f"entry {entry.name!r} is not the derivation's cell "
                             f"{derivation.cell.name!r}")
        self.derivation = derivation
        self.entry = entry or _entry_of(derivation.cell)

    def _repr_latex_(self) -> str:
        return summary_latex(self.derivation)

    def _repr_html_(self) -> str:
        name = self.entry.name
        return html_fragment(Build("lstm-derive").render(self.entry, only=".html").files[f"{name}.html"])


def _entry_of(cell) -> Entry:
    """The built-in entry of `cell`, or a plain one naming it (a cell made in the notebook)."""
    found = CELLS.get(cell.name)
    if found is not None and found.cell == cell:
        return found
    return Entry(cell, f"user-defined cell {cell.name}")   # the words a spec without any gets
