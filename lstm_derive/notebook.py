"""A derivation shown in a notebook: `Page(derivation)` renders as its equations or its page.

The mathematics does not know how it is drawn; wrap a derivation to display it.  The page
is rendered the way the build renders it (module, measured flow, document, .tex, .html).
"""
from __future__ import annotations

from codegen.emit_html import html_fragment
from codegen.emit_latex import summary_latex
from lstm_derive.build import Build


class Page:
    """Notebook display of a derivation: `_repr_latex_` (its equations), `_repr_html_` (its page)."""

    def __init__(self, derivation):
        self.derivation = derivation

    def _repr_latex_(self) -> str:
        return summary_latex(self.derivation)

    def _repr_html_(self) -> str:
        cell = self.derivation.cell
        page = Build("lstm-derive").render(cell, only=".html").files[f"{cell.name}.html"]
        return html_fragment(page)
