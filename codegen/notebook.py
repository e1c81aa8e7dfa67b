"""A derivation shown in a notebook: `Page(derivation)` renders as its equations or its page.

The mathematics does not know how it is drawn; wrap a derivation to display it.
"""
from __future__ import annotations

from codegen.emit_html import html_fragment
from codegen.emit_latex import summary_latex


class Page:
    """Notebook display of a derivation: `_repr_latex_` (its equations), `_repr_html_` (its page)."""

    def __init__(self, derivation):
        self.derivation = derivation

    def _repr_latex_(self) -> str:
        return summary_latex(self.derivation)

    def _repr_html_(self) -> str:
        return html_fragment(self.derivation)
