"""Print a figure at its layout: TikZ for the LaTeX document, inline SVG for the HTML page.

`tikz(figure, layout)` and `svg(figure, layout, title)` draw every node as the box the
layout gives it and every arrow along the layout's Bezier curve, at 100% (no scaling: a
label is 11 pt, a subscript 8 pt, in the PDF; 15 px and 11 px in the page).  They decide
nothing about where things go: that is the `Layout` they are handed.
"""
from __future__ import annotations

import re
from html import escape

from codegen.figures import Figure
from codegen.layout import Layout
from codegen.text_width import FONT, PX, SCRIPT, SVG_FONT, svg_advance, svg_spans, svg_width

MARGIN = 6.0          # points around the drawing
LEGEND, LEGEND_TEXT = 13, 36   # px: the legend's font size, and where its words start

TIKZ_STYLES = {
    "value": "draw, rounded corners=3pt",
    "stage": "draw, rounded corners=3pt, fill=blue!6",
    "affine": "draw, rounded corners=3pt, fill=blue!12, align=center",
    "fork": "draw, very thick, rounded corners=3pt, fill=orange!25, align=center",
    "sink": "draw, circle, fill=black!5",
    "box": "draw, thick, fill=blue!6",
    "forward": "->, >=stealth, thin",
    "gradient": "->, >=stealth, densely dashed, red!75!black, thin",
}


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def tikz(figure: Figure, layout: Layout) -> str:
    """A `tikzpicture` in big points (dot's unit), styles inline: the preamble needs only tikz."""
    lines = [r"\begin{tikzpicture}[x=1bp, y=1bp, inner sep=0pt]"]
    for n in figure.nodes:
        b = layout.box(n.key)
        size = (f"minimum size={_num(b.w)}bp" if n.style == "sink" else
                f"minimum width={_num(b.w)}bp, minimum height={_num(b.h)}bp")
        label = f"${n.tex}$" + (rf"\\ ${n.note}$" if n.note else "")
        lines.append(rf"\node[{TIKZ_STYLES[n.style]}, {size}] ({n.key}) at "
                     rf"({_num(b.x)},{_num(b.y)}) {{{label}}};")
    for e, r in zip(figure.edges, layout.routes):
        p = [f"({_num(x)},{_num(y)})" for x, y in r.points]
        path = p[0] + "".join(f" .. controls {p[i]} and {p[i + 1]} .. {p[i + 2]}"
                              for i in range(1, len(p) - 2, 3))
        lines.append(rf"\draw[{TIKZ_STYLES[e.style]}] {path};")
        if r.label:
            colour = ", red!75!black" if e.style == "gradient" else ""
            lines.append(rf"\node[anchor=center{colour}] at ({_num(r.label.x)},{_num(r.label.y)}) "
                         rf"{{${e.label}$}};")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def tikz_legend(legend) -> str:
    """One line of LaTeX explaining the figure's line styles."""
    words = {"forward": r"\tikz\draw[->,>=stealth] (0,0) -- (0.6,0);",
             "gradient": r"\tikz\draw[->,>=stealth,densely dashed,red!75!black] (0,0) -- (0.6,0);",
             "fork": r"\tikz\node[draw, very thick, fill=orange!25, minimum width=4mm, minimum height=2.5mm] {};",
             "box": r"\tikz\node[draw, thick, fill=blue!6, minimum width=4mm, minimum height=2.5mm] {};"}
    return r"; \ ".join(f"{words[s]} {w}" for s, w in legend)


SVG_FILL = {"value": "#ffffff", "stage": "#eef0fb", "affine": "#e0e4f8", "fork": "#fde3c4",
            "sink": "#f2f2f2", "box": "#eef0fb"}


def svg(figure: Figure, layout: Layout, title: str) -> str:
    """The same figure as inline SVG: boxes, text with sub/superscripts, arrows."""
    left, bottom, right, top = layout.bounds
    drawing, height = (right - left + 2 * MARGIN) * PX, (top - bottom + 2 * MARGIN) * PX
    width = max(drawing, *(LEGEND_TEXT + svg_width(((words, ""),)) * LEGEND / FONT + 10
                           for _, words in figure.legend))   # a legend line is not cut off
    shift = (width - drawing) / 2                               # the drawing centred above it

    def at(x, y):
        return f"{(x - left + MARGIN) * PX + shift:.1f}", f"{(top - y + MARGIN) * PX:.1f}"

    extra = 8 + 20 * len(figure.legend)   # one line per legend entry, below the drawing
    marker = "arrow-" + re.sub(r"\W+", "-", title)   # ids must differ between figures
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
           f'height="{height + extra:.0f}" viewBox="0 0 {width:.0f} {height + extra:.0f}">',
           f"<title>{escape(title)}</title>",
           f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
           'fill="context-stroke"/></marker></defs>']
    for n in figure.nodes:
        out.append(_svg_node(n, layout.box(n.key), at))
    for e, r in zip(figure.edges, layout.routes):
        out.append(_svg_edge(e, r, at, marker))
    out.append(_svg_legend(figure.legend, height))
    out.append("</svg>")
    return "\n".join(out)


def _svg_node(n, b, at):
    x, y = at(b.x, b.y)
    w, h = b.w * PX, b.h * PX
    stroke = ' stroke-width="2.2"' if n.style == "fork" else ' stroke-width="1.5"' if n.style == "box" else ""
    shape = (f'<circle cx="{x}" cy="{y}" r="{w / 2:.1f}" fill="{SVG_FILL[n.style]}" stroke="black"/>'
             if n.style == "sink" else
             f'<rect x="{float(x) - w / 2:.1f}" y="{float(y) - h / 2:.1f}" width="{w:.1f}" '
             f'height="{h:.1f}" rx="4" fill="{SVG_FILL[n.style]}" stroke="black"{stroke}/>')
    first = float(y) + (-4 if n.note else 5)
    text = _svg_text(n.text, x, first)
    if n.note:
        text += _svg_text(n.note_text, x, float(y) + 15)
    return shape + text


def _svg_text(pieces, x, y, colour="black"):
    """A label in SVG_FONT, the font its box was measured in (`codegen.text_width`), held to
    the width measured in it (textLength: a browser without the font spaces another to fit); oblique
    when it is mathematics (no words), its scripts raised or lowered, a subscript right after
    a superscript (or the reverse) stacked under it, as LaTeX sets a^r_t."""
    italic = "" if any(re.search("[A-Za-z]{2}", t) for t, _ in pieces) else ' font-style="italic"'
    fill = f' fill="{colour}"' if colour != "black" else ""
    spans = "".join(_tspan(text, kind, dx) for text, kind, dx in svg_spans(pieces)[0])
    return (f'<text x="{x}" y="{y:.1f}" text-anchor="middle" font-family="{SVG_FONT}, sans-serif" '
            f'font-size="{FONT}" textLength="{svg_advance(pieces):.1f}"{italic}{fill}>{spans}</text>')


def _tspan(text, kind, dx=0.0):
    move = f' dx="{dx:.1f}"' if dx else ""
    if not kind:
        return f'<tspan{move} font-size="{FONT}" baseline-shift="0">{escape(text)}</tspan>'
    shift = "sub" if kind == "sub" else "super"
    return f'<tspan{move} font-size="{SCRIPT}" baseline-shift="{shift}">{escape(text)}</tspan>'


def _stroke(style):
    """SVG stroke colour and dash attribute of a line style."""
    return ("#a01010", ' stroke-dasharray="4 3"') if style == "gradient" else ("black", "")


def _svg_edge(e, r, at, marker):
    p = [",".join(at(x, y)) for x, y in r.points]
    d = f"M{p[0]}" + "".join(f" C{p[i]} {p[i + 1]} {p[i + 2]}" for i in range(1, len(p) - 2, 3))
    colour, dash = _stroke(e.style)
    out = f'<path d="{d}" fill="none" stroke="{colour}"{dash} marker-end="url(#{marker})"/>'
    if r.label:
        x, y = at(r.label.x, r.label.y)
        out += _svg_text(e.label_text, x, float(y) + 5, colour)
    return out


def _svg_legend(legend, height):
    parts, x = [], 10
    for n, (style, words) in enumerate(legend):
        y = height + 16 + 20 * n
        if style in ("fork", "box"):
            parts.append(f'<rect x="{x}" y="{y - 9}" width="18" height="12" fill="{SVG_FILL[style]}" '
                         f'stroke="black" stroke-width="{2 if style == "fork" else 1.5}"/>')
        else:
            colour, dash = _stroke(style)
            parts.append(f'<line x1="{x}" y1="{y - 3}" x2="{x + 20}" y2="{y - 3}" stroke="{colour}"{dash}/>')
        parts.append(f'<text x="{LEGEND_TEXT}" y="{y + 2}" font-family="{SVG_FONT}, sans-serif" '
                     f'font-size="{LEGEND}">{escape(words)}</text>')
    return "".join(parts)
