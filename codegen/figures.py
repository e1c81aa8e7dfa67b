"""Figures of a derivation, laid out once and drawn twice: TikZ for LaTeX, SVG for HTML.

`stage_graph(derivation)` places one node per per-step input, previous state and stage
(columns by depth in the stage graph, rows ordered by the rows of their inputs), marks
forks, and lists forward edges (black) and the gradient's path (the same edges reversed,
dashed red).  `unrolled(derivation)` shows three time steps and the state arrows between
them, forward and backward.  `tikz(figure)` and `svg(figure)` print a `Figure`; neither
decides anything about the layout.
"""
from __future__ import annotations

from dataclasses import dataclass
import re
from html import escape

from codegen.notation import tex_param
from derive.derivation import Derivation
from derive.stages import Kind

COLUMN, ROW = 2.3, 1.8        # cm between columns / rows of the stage graph
SVG_SCALE = 42                  # SVG pixels per cm


@dataclass(frozen=True)
class Node:
    key: str
    x: float
    y: float
    tex: str                     # LaTeX label (math mode)
    text: tuple[tuple[str, str], ...]  # SVG label: (text, "" | "sub" | "sup") pieces
    style: str = "value"         # value | stage | affine | fork | sink | box
    note: str = ""               # second line (affine parameters), LaTeX math
    note_text: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    style: str = "forward"       # forward | gradient
    label: str = ""              # LaTeX math
    label_text: str = ""
    shift: tuple[float, float] | None = None  # straight, side to side, moved by (dx, dy) cm


@dataclass(frozen=True)
class Figure:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    legend: tuple[tuple[str, str], ...] = ()   # (style, words)


def _pieces(name: str, step: str | None, params: set) -> tuple[tuple[str, str], ...]:
    """SVG text pieces of a value name, matching the document's LaTeX spelling."""
    if name in params:
        head, _, tail = name.partition("_")
        return ((head, ""), (tail, "sub")) if tail else ((head, ""),)
    if name.endswith("_prev"):
        name, step = name[: -len("_prev")], f"{step}-1"
    head, _, tail = name.partition("_")
    out = [(head, "")] + ([(tail, "sup")] if tail else [])
    return tuple(out + ([(step, "sub")] if step else []))


def stage_graph(derivation: Derivation, nt) -> Figure:
    """One node per value of one step; edges forward and back; forks highlighted."""
    cell = derivation.cell
    sources = list(cell.input_names) + [f"{s}_prev" for s in cell.state_names]
    depth = {v: 0 for v in sources}
    for stage in cell.stages:
        depth[stage.name] = 1 + max(depth[x] for x in stage.inputs if x in depth)
    for v in sources:   # a source sits just left of its first reader (c_prev next to f)
        readers = [depth[s.name] for s in cell.stages if v in s.inputs]
        depth[v] = min(readers, default=1) - 1
    sinks = ["loss"] + (["next"] if cell.recurrent else [])
    last = max(depth.values()) + 1
    for s in sinks:
        depth[s] = last
    consumers = {v: [s.name for s in cell.stages if v in s.inputs] for v in depth}
    consumers[cell.output].append("loss")
    for s in cell.state_names:
        consumers[s].append("next")
    rows = _rows(depth, {s.name: s.inputs for s in cell.stages} |
                 {"loss": (cell.output,), "next": cell.state_names})
    nodes = [_value_node(v, depth[v], rows[v], cell, nt, len(set(consumers[v])) > 1)
             for v in depth if v not in sinks]
    nodes.append(Node("loss", depth["loss"] * COLUMN, rows["loss"], "L",
                      (("L", ""),), "sink"))
    if cell.recurrent:
        nodes.append(Node("next", depth["next"] * COLUMN, rows["next"], r"\text{step } t+1",
                          (("step t+1", ""),), "value"))
    forward = [Edge(v, c) for v in depth for c in dict.fromkeys(consumers.get(v, ()))]
    gradient = [Edge(e.target, e.source, "gradient") for e in forward]
    legend = (("forward", "forward pass"), ("gradient", "gradient, backwards"),
              ("fork", "fork: its gradient is a sum over branches"))
    return Figure(tuple(nodes), tuple(forward + gradient), legend)


def _rows(depth: dict, inputs: dict) -> dict[str, float]:
    """Row of every node: column by column, ordered by the mean row of its inputs."""
    columns: dict[int, list[str]] = {}
    for v, d in depth.items():
        columns.setdefault(d, []).append(v)
    rows: dict[str, float] = {}
    for d in sorted(columns):
        members = columns[d]
        if d:
            members.sort(key=lambda v: -sum(rows[x] for x in inputs.get(v, ()) if x in rows)
                         / max(1, sum(x in rows for x in inputs.get(v, ()))))
        for n, v in enumerate(members):
            rows[v] = ((len(members) - 1) / 2 - n) * ROW
    return rows


def _value_node(v, d, y, cell, nt, fork):
    params = set(cell.vector_param_names)
    step = "t" if cell.recurrent else None
    stages = {s.name for s in cell.stages}
    style = "fork" if fork else "stage" if v in stages else "value"
    note, note_text = "", ()
    if v in stages and cell.stage(v).kind is Kind.AFFINE:
        stage = cell.stage(v)
        names = [*stage.weights] + ([stage.bias] if stage.bias else [])
        note = ", ".join(nt.value(p) if p in params else tex_param(p) for p in names)
        note_text = tuple(piece for n, p in enumerate(names)
                          for piece in ((", ", ""),) * bool(n) + _pieces(p, None, {p}))
        style = "fork" if fork else "affine"
    return Node(v, d * COLUMN, y, nt.value(v), _pieces(v, step, params), style, note, note_text)


def unrolled(derivation: Derivation, nt) -> Figure:
    """Steps t-1, t, t+1 with their inputs, losses and the state between them."""
    cell = derivation.cell
    nodes, edges = [], []
    steps = (("t-1", -1), ("t", 0), ("t+1", 1))
    for step, n in steps:
        x = n * 5.2
        nodes.append(Node(f"cell{n}", x, 0, rf"\text{{cell at step }} {step}",
                          ((f"cell at step {step}", ""),), "box"))
        nodes.append(Node(f"x{n}", x, -2.2, nt.value(cell.input_names[0], step),
                          _pieces(cell.input_names[0], step, set()), "value"))
        nodes.append(Node(f"L{n}", x, 2.2, rf"\ell_{{{step}}}", (("\u2113", ""), (step, "sub")), "sink"))
        edges += [Edge(f"x{n}", f"cell{n}"),
                  Edge(f"cell{n}", f"L{n}", label=nt.value(cell.output, step),
                       label_text=cell.output, shift=(-0.35, 0)),
                  Edge(f"L{n}", f"cell{n}", "gradient",
                       rf"\partial \ell_{{{step}}} / \partial {nt.value(cell.output, step)}",
                       f"d\u2113/d{cell.output}", shift=(0.35, 0))]
    states = cell.state_names
    for a, b in ((-1, 0), (0, 1)):
        step = steps[a + 1][0]
        for k, s in enumerate(states):
            value, y = nt.value(s, step), 0.6 - 1.2 * k / max(1, len(states) - 1)
            y = y if len(states) > 1 else 0.3
            edges.append(Edge(f"cell{a}", f"cell{b}", label=value, label_text=f"{s}",
                              shift=(0, y)))
            edges.append(Edge(f"cell{b}", f"cell{a}", "gradient",
                              rf"{{\delta {value}}}^{{({steps[b + 1][0]})}}", f"d{s}",
                              shift=(0, y - 0.3)))
    legend = (("forward", "state carried forward"), ("gradient", "gradient carried back"))
    return Figure(tuple(nodes), tuple(edges), legend)


TIKZ_STYLES = {
    "value": "draw, rounded corners, minimum height=7mm, minimum width=9mm",
    "stage": "draw, rounded corners, minimum height=7mm, minimum width=9mm, fill=blue!6",
    "affine": "draw, rounded corners, minimum height=7mm, minimum width=9mm, fill=blue!12, align=center",
    "fork": "draw, very thick, rounded corners, minimum height=7mm, minimum width=9mm, fill=orange!25, align=center",
    "sink": "draw, circle, inner sep=1pt, minimum size=8mm, fill=black!5",
    "box": "draw, thick, minimum width=32mm, minimum height=16mm, fill=blue!6",
    "forward": "->, >=stealth, thin",
    "gradient": "->, >=stealth, densely dashed, red!75!black, thin",
}


def tikz(figure: Figure) -> str:
    """A `tikzpicture` drawing the figure (styles inline, so the preamble needs only tikz)."""
    lines = [r"\begin{tikzpicture}"]
    for n in figure.nodes:
        label = f"${n.tex}$" + (rf"\\[-1pt] {{\scriptsize ${n.note}$}}" if n.note else "")
        lines.append(rf"\node[{TIKZ_STYLES[n.style]}] ({n.key}) at ({n.x:.2f},{n.y:.2f}) {{{label}}};")
    for e in figure.edges:
        curve = "to[bend left=12]" if e.style == "gradient" else "--"
        side = _label_side(figure, e)
        label = (rf" node[midway, {side}inner sep=1pt, font=\scriptsize] {{${e.label}$}}"
                 if e.label else "")
        ends = _anchors(figure, e)
        lines.append(rf"\draw[{TIKZ_STYLES[e.style]}] {ends[0]} "
                     rf"{'--' if e.shift else curve}{label} {ends[1]};")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def _sides(figure, edge):
    """Facing sides of the two nodes of a shifted edge: east/west or north/south."""
    pos = {n.key: n for n in figure.nodes}
    a, b = pos[edge.source], pos[edge.target]
    if abs(b.x - a.x) >= abs(b.y - a.y):
        return ("east", "west") if b.x > a.x else ("west", "east")
    return ("north", "south") if b.y > a.y else ("south", "north")


def _label_side(figure, edge):
    """Labels of vertical lanes sit beside them, others on a white patch across the line."""
    if edge.shift and _sides(figure, edge)[0] in ("north", "south"):
        return "left, " if edge.shift[0] < 0 else "right, "
    return "fill=white, "


def _anchors(figure, edge):
    if not edge.shift:
        return f"({edge.source})", f"({edge.target})"
    dx, dy = edge.shift
    near, far = _sides(figure, edge)
    return (f"([shift={{({dx}cm,{dy}cm)}}]{edge.source}.{near})",
            f"([shift={{({dx}cm,{dy}cm)}}]{edge.target}.{far})")


def svg(figure: Figure, title: str) -> str:
    """The same figure as inline SVG: boxes, text with sub/superscripts, arrows."""
    xs = [n.x for n in figure.nodes]
    ys = [n.y for n in figure.nodes]
    pad = 2.0
    left, top = min(xs) - pad, max(ys) + pad
    width, height = (max(xs) - min(xs) + 2 * pad) * SVG_SCALE, (max(ys) - min(ys) + 2 * pad) * SVG_SCALE

    def at(x, y):
        return (x - left) * SVG_SCALE, (top - y) * SVG_SCALE

    marker = "arrow-" + re.sub(r"\W+", "-", title)   # ids must differ between figures
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
           f'height="{height + 24:.0f}" viewBox="0 0 {width:.0f} {height + 24:.0f}">',
           f"<title>{escape(title)}</title>",
           f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="context-stroke"/></marker></defs>']
    pos = {n.key: n for n in figure.nodes}
    for e in figure.edges:
        out.append(_svg_edge(e, pos, at, marker))
    for n in figure.nodes:
        out.append(_svg_node(n, at))
    out.append(_svg_legend(figure.legend, height))
    out.append("</svg>")
    return "\n".join(out)


SVG_FILL = {"value": "#ffffff", "stage": "#eef0fb", "affine": "#e0e4f8", "fork": "#fde3c4",
            "sink": "#f2f2f2", "box": "#eef0fb"}
SVG_HALF = {"box": (68, 34), "sink": (17, 17)}


def _svg_node(n, at):
    x, y = at(n.x, n.y)
    hw, hh = _half(n)
    stroke = ' stroke-width="2.2"' if n.style == "fork" else ""
    shape = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{hw}" fill="{SVG_FILL[n.style]}" stroke="black"/>'
             if n.style == "sink" else
             f'<rect x="{x - hw:.1f}" y="{y - hh:.1f}" width="{2 * hw}" height="{2 * hh}" rx="5" '
             f'fill="{SVG_FILL[n.style]}" stroke="black"{stroke}/>')
    dy = -3 if n.note else 5
    text = f'<text x="{x:.1f}" y="{y + dy:.1f}" text-anchor="middle" font-size="14" font-style="italic">'
    text += "".join(_tspan(t, kind) for t, kind in n.text) + "</text>"
    if n.note:
        text += (f'<text x="{x:.1f}" y="{y + 13:.1f}" text-anchor="middle" font-size="9">'
                 + "".join(_tspan(t, kind, 9) for t, kind in n.note_text) + "</text>")
    return shape + text


def _tspan(text, kind, size=14):
    if not kind:
        return f'<tspan font-size="{size}" baseline-shift="0">{escape(text)}</tspan>'
    shift = "sub" if kind == "sub" else "super"
    return f'<tspan font-size="{size * 0.65:.0f}" baseline-shift="{shift}">{escape(text)}</tspan>'


def _stroke(style):
    """SVG stroke colour and dash attribute of a line style."""
    return ("#a01010", ' stroke-dasharray="4 3"') if style == "gradient" else ("black", "")


def _svg_edge(e, pos, at, marker):
    if e.shift:
        return _svg_straight(e, pos, at, marker)
    (x1, y1), (x2, y2) = at(pos[e.source].x, pos[e.source].y), at(pos[e.target].x, pos[e.target].y)
    # stop at the boxes: shorten the segment by the node's half size along its direction
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    r1, r2 = _radius(pos[e.source], ux, uy), _radius(pos[e.target], ux, uy)
    x1, y1, x2, y2 = x1 + ux * r1, y1 + uy * r1, x2 - ux * r2, y2 - uy * r2
    bend = 0.12 if e.style == "gradient" else 0.0
    cx, cy = (x1 + x2) / 2 - uy * bend * length, (y1 + y2) / 2 + ux * bend * length
    color, dash = _stroke(e.style)
    path = (f'<path d="M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}" fill="none" '
            f'stroke="{color}"{dash} marker-end="url(#{marker})"/>')
    if e.label_text:
        path += (f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle" font-size="11" '
                 f'fill="{color}">{escape(e.label_text)}</text>')
    return path


def _svg_straight(e, pos, at, marker):
    """A side-to-side edge moved by its shift (unrolled figure: one lane per state)."""
    a, b = pos[e.source], pos[e.target]
    dx, dy = e.shift
    (x1, y1), (x2, y2) = at(a.x + dx, a.y + dy), at(b.x + dx, b.y + dy)
    length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    r1, r2 = _radius(a, abs(ux), abs(uy)), _radius(b, abs(ux), abs(uy))
    x1, y1, x2, y2 = x1 + ux * r1, y1 + uy * r1, x2 - ux * r2, y2 - uy * r2
    color, dash = _stroke(e.style)
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 3
    anchor, mx = ("middle", mx) if not uy else ("end", mx - 6) if dx < 0 else ("start", mx + 6)
    return (f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" fill="none" stroke="{color}"{dash} '
            f'marker-end="url(#{marker})"/><text x="{mx:.1f}" y="{my:.1f}" '
            f'text-anchor="{anchor}" font-size="11" fill="{color}">{escape(e.label_text)}</text>')


def _half(node):
    """Half width and height of a node's box in SVG pixels, wide enough for its text."""
    if node.style in SVG_HALF:
        return SVG_HALF[node.style]
    if node.note:
        return max(24, 8 + 3.6 * sum(len(t) for t, _ in node.note_text)), 20
    return max(24, 8 + 4.6 * sum(len(t) for t, _ in node.text)), 15


def _radius(node, ux, uy):
    hw, hh = _half(node)
    if node.style == "sink":
        return hw
    tx = hw / abs(ux) if ux else float("inf")
    ty = hh / abs(uy) if uy else float("inf")
    return min(tx, ty)


def _svg_legend(legend, height):
    parts, x = [], 10
    for style, words in legend:
        y = height + 12
        if style == "fork":
            parts.append(f'<rect x="{x}" y="{y - 8}" width="16" height="11" fill="{SVG_FILL["fork"]}" '
                         'stroke="black" stroke-width="2"/>')
        else:
            color, dash = _stroke(style)
            parts.append(f'<line x1="{x}" y1="{y - 3}" x2="{x + 18}" y2="{y - 3}" stroke="{color}"{dash}/>')
        parts.append(f'<text x="{x + 22}" y="{y + 1}" font-size="11">{escape(words)}</text>')
        x += 30 + 6 * len(words)
    return "".join(parts)


def tikz_legend(legend) -> str:
    """One line of LaTeX explaining the figure's line styles."""
    words = {"forward": r"\tikz\draw[->,>=stealth] (0,0) -- (0.6,0);",
             "gradient": r"\tikz\draw[->,>=stealth,densely dashed,red!75!black] (0,0) -- (0.6,0);",
             "fork": r"\tikz\node[draw, very thick, fill=orange!25, minimum width=4mm, minimum height=2.5mm] {};"}
    return r"; \ ".join(f"{words[s]} {w}" for s, w in legend)
