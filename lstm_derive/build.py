"""Render a cell's artefacts: the one place that sequences the work for a cell.

`render_all(name)` returns {file name: text} for one built-in cell (.py, .tex, .html) and
`render_cell(entry)` for any cell; `pdf_assets(cell)` the files its PDF includes.  Writing
is `lstm_derive.files`, compiling PDFs `lstm_derive.pdf`.
"""
from __future__ import annotations

from codegen.emit_feedforward import emit_feedforward
from codegen.emit_html import emit_html
from codegen.emit_latex import emit_latex
from codegen.emit_numpy import emit_numpy
from catalogue.cells import get_cell
from derive.derivation import derive

BUILD_COMMAND = "lstm-derive build"


def render_all(name: str, command: str = BUILD_COMMAND) -> dict[str, str]:
    """The artefacts of a built-in cell."""
    return render_cell(get_cell(name), command)


def render_cell(cell, command: str = BUILD_COMMAND, only: str | None = None) -> dict[str, str]:
    """{file name: text} for any cell, built in or from a spec; `only=".py"` (or ".tex",
    ".html") renders just that file (the page is converted from the .tex)."""
    derivation = derive(cell)
    out = {}
    if only in (None, ".py"):
        emit = emit_numpy if cell.recurrent else emit_feedforward
        out[f"{cell.name}.py"] = emit(derivation, command)
    if only in (None, ".tex", ".html"):
        tex = emit_latex(derivation, command)
        if only in (None, ".tex"):
            out[f"{cell.name}.tex"] = tex
        if only in (None, ".html"):
            out[f"{cell.name}.html"] = emit_html(derivation, tex)
    return out


def pdf_assets(cell) -> dict[str, bytes]:
    """Files a cell's document includes: its gradient-flow plot when matplotlib is there."""
    if not cell.recurrent:
        return {}
    from codegen.flow import plot_pdf
    data = plot_pdf(cell)
    return {f"{cell.name}-flow.pdf": data} if data else {}
