"""The gradient-flow plot: measured norms (a `Flow`) drawn with matplotlib, as SVG and PDF.

`draw(flow)` returns a `Plot` (deterministic SVG text and PDF bytes: no dates, a fixed hash
salt) or None when matplotlib, an optional documentation dependency, is not installed; the
documents then say the plot was not drawn.  It draws numbers it is handed and measures
nothing: the numbers come from `lstm_derive.measure`.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from codegen.document import Flow, Plot
from codegen.notation import tex_param

RC = {"svg.hashsalt": "lstm-derive", "svg.fonttype": "none", "font.size": 9}


def _figure(flow: Flow):
    """The plot as a matplotlib Figure, made without pyplot and without touching the
    caller's matplotlib settings (a notebook showing a derivation keeps its own)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(5.6, 3.4))
        ax = fig.add_subplot()
        for (name, values), style in zip(flow.curves, ("o-", "s-", "^-")):
            ax.semilogy(flow.steps, values, style, markersize=3, label=_legend(flow, name))
        for (name, values), colour in zip(flow.paths, ("C0", "C1")):   # the cell's colours
            ax.semilogy(flow.steps, values, "--", color=colour, linewidth=1, label=_legend(flow, name))
        ax.set_xlabel(r"$\tau$ (steps back from the last output)")
        ax.set_ylabel(r"mean norm of $\partial L / \partial s_{T-\tau}$")
        # plain tick labels: matplotlib's mathtext would cost most of the plotting time
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(np.log10(v))}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8.5)   # printed at natural size: 8.5 pt in the PDF, over 11 px in the HTML
        fig.tight_layout()
    return fig


def _legend(flow: Flow, name: str) -> str:
    """A curve's legend in words and mathtext, never its key (keys hold code names such as
    "lstm, b_f = 3"): "this cell", "this cell, $b_{f} = 3$", "plain RNN", and a weight-free
    path's curve as its cell's legend followed by ": weight-free path alone"."""
    names, suffix = [n for n, _ in flow.curves], ": weight-free path alone"
    if name.endswith(suffix):
        return _legend(flow, name[:-len(suffix)]) + suffix
    if name == names[0]:
        return "this cell"
    if flow.biases and name == names[1]:
        biases = ", ".join(tex_param(b) for b in flow.biases)
        return f"this cell, ${biases} = {flow.setting.open_bias:g}$"
    return "plain RNN"


@lru_cache(maxsize=16)
def draw(flow: Flow) -> Plot | None:
    """The plot drawn once, saved as SVG and as PDF; None without matplotlib.  Cached by
    the numbers: the same measurement always gives the same bytes."""
    try:
        import matplotlib
        fig = _figure(flow)
    except ImportError:
        return None
    svg, pdf = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context(RC):   # tick labels are made while saving: same settings
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
        fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "Creator": None})
    text = svg.getvalue().decode("utf-8")
    return Plot(svg=text[text.index("<svg"):], pdf=pdf.getvalue())
