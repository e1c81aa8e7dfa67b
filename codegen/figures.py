"""Figures of a derivation: what is drawn (nodes, arrows, labels), and the stage graph as DOT.

`stage_graph(derivation, nt)` lists one node per per-step input, previous state and stage,
plus the loss (and the next step), and one forward arrow per (value, reader); forks are
marked, and the stages of one layer normalisation are one "LN" box; its caption, made here,
says what was drawn.  The gradient runs back along every arrow, and the caption says so:
drawing each arrow twice would double the lines at every fork (`codegen.fork_view` draws
both directions for one fork instead).  A box is as wide as its label measured in the fonts
of both drawings (`codegen.text_width`), and `crowded` finds a label that does not fit.
`dot_source(figure)` is that graph for Graphviz's `dot`, which places it (nodes of fixed
sizes, no labels: the layout needs no fonts); its positions come back as a
`codegen.layout.Layout`.  `unrolled(derivation, nt)` shows three time steps and the state
between them, placed here by hand (a fixed pattern).  `codegen.drawing` prints a figure with
its layout as TikZ and as SVG.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from codegen.layout import Box, Layout, Route
from codegen.notation import tex_param
from codegen.text_width import PX, svg_width, tex_width_at_most
from derive.derivation import Derivation
from derive.stages import Kind

Pieces = tuple[tuple[str, str], ...]   # text pieces: (text, "" | "sub" | "sup")

# A box is as wide as its label, measured in the fonts of both drawings (`codegen.text_width`:
# the PDF's Computer Modern, the page's DejaVu Sans), plus PAD; INSET is the least room a label
# keeps on each side, which `crowded` checks.
PAD, INSET = 10.0, 3.0
LINE, NOTE_LINE = 22.0, 15.0     # box height of one line, and what a parameter line adds
SINK = 26.0                      # diameter of the loss circle
WIDTH = 450.0                    # points: the document's line is 482 pt; figures are not scaled
RANKSEP = (0.28, 0.14)           # inches between columns: preferred, and the least allowed


@dataclass(frozen=True)
class Node:
    key: str
    tex: str                     # LaTeX label (math mode)
    text: Pieces                 # SVG label
    style: str = "value"         # value | stage | affine | fork | sink | box
    note: str = ""               # second line (affine parameters), LaTeX math
    note_text: Pieces = ()

    @property
    def size(self) -> tuple[float, float]:
        """Width and height of the node's box in points."""
        width = max(label_width(self.tex, self.text), label_width(self.note, self.note_text)) + PAD
        if self.style == "sink":
            return (max(SINK, round(width, 2)),) * 2
        return max(30.0, round(width, 2)), LINE + (NOTE_LINE if self.note else 0.0)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    style: str = "forward"       # forward | gradient
    label: str = ""              # LaTeX math
    label_text: Pieces = ()


@dataclass(frozen=True)
class Figure:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    legend: tuple[tuple[str, str], ...] = ()   # (style, words)
    caption: str = ""                          # LaTeX: what the figure draws


def label_width(tex: str, text: Pieces) -> float:
    """Width in points of a label as the wider of its two drawings: `tex` set by LaTeX in the
    PDF, `text` in the page's SVG (at 100%, PX pixels a point)."""
    return max(tex_width_at_most(tex) if tex else 0.0, svg_width(text) / PX)


def crowded(figure: Figure, layout: Layout, inset: float = INSET) -> list[str]:
    """The nodes and arrow labels of `figure` whose measured label leaves less than `inset`
    points on either side inside the box `layout` gives it; [] when every label fits."""
    found = [n.key for n in figure.nodes if layout.box(n.key).w <
             max(label_width(n.tex, n.text), label_width(n.note, n.note_text)) + 2 * inset]
    found += [f"label of {e.source} -> {e.target}" for e, r in zip(figure.edges, layout.routes)
              if r.label and r.label.w < label_width(e.label, e.label_text)]
    return found


def pieces(name: str, step: str | None, params: set) -> Pieces:
    """SVG text pieces of a value name, matching the document's LaTeX spelling."""
    if name in params:
        head, _, tail = name.partition("_")
        return ((head, ""), (tail, "sub")) if tail else ((head, ""),)
    if name.endswith("_prev"):
        name, step = name[: -len("_prev")], f"{step}-1"
    layer = re.fullmatch(r"([A-Za-z])(\d+)", name)
    head, _, tail = (layer[1], "", f"({layer[2]})") if layer else name.partition("_")
    out = [(head, "")] + ([(tail, "sup")] if tail else [])
    return tuple(out + ([(step, "sub")] if step else []))


def stage_graph(derivation: Derivation, nt) -> Figure:
    """One node per value of one step and one arrow per (value, reader); forks highlighted.
    The stages of one layer normalisation are drawn as one "LN" box (see `_norm_groups`)."""
    cell = derivation.cell
    group = _norm_groups(cell)
    node = lambda v: group.get(v, v)   # noqa: E731 - the drawn node of a value
    values = list(dict.fromkeys(node(v) for v in (list(cell.input_names)
                                + [f"{s}_prev" for s in cell.state_names] + [s.name for s in cell.stages])))
    readers = {v: [] for v in values}
    for s in cell.stages:
        for v in s.inputs:
            if node(v) in readers and node(v) != node(s.name) and node(s.name) not in readers[node(v)]:
                readers[node(v)].append(node(s.name))
    readers[node(cell.output)].append("loss")
    for s in cell.state_names:
        readers[node(s)].append("next")
    groups = set(group.values())
    nodes = [Node(v, r"\mathrm{LN}", (("LN", ""),), "box") if v in groups
             else _value_node(v, cell, nt, len(readers[v]) > 1) for v in values]
    nodes.append(Node("loss", "L", (("L", ""),), "sink"))
    if cell.recurrent:
        nodes.append(Node("next", r"\text{step } t+1", (("step t+1", ""),), "value"))
    edges = [Edge(v, r) for v in values for r in readers[v]]
    forks = any(len(readers[v]) > 1 for v in values if v not in groups)
    legend = (("forward", "forward pass (the gradient runs back along every arrow)"),
              *((("fork", "fork: its gradient is a sum over its arrows"),) if forks else ()))
    if groups:
        legend += (("box", "LN: one layer normalisation, its mean, variance, inverse deviation and "
                           "normalised blocks (forks inside it not drawn)"),)
    return Figure(tuple(nodes), tuple(edges), legend, _caption(cell, nt, values, group, len(edges), forks))


def _caption(cell, nt, values, group, arrows: int, forks: bool) -> str:
    """What the stage graph draws, counted from what `stage_graph` put in it."""
    show = lambda vs: ", ".join(f"${nt.value(v)}$" for v in vs)   # noqa: E731
    inputs = [v for v in values if v in cell.input_names]
    states = [v for v in values if v.endswith("_prev")]
    stages = [v for v in values if v in {s.name for s in cell.stages}]
    norms = len(set(group.values()))
    parts = [f"a box for the input{'s' * (len(inputs) > 1)} {show(inputs)}"]
    if states:
        parts.append(f"for each state from step $t-1$ ({show(states)})")
    parts.append(f"for each of the {len(stages)} stages{' outside the layer normalisations' * bool(norms)} "
                 "(an affine stage shows its parameters)")
    if norms:
        parts.append(f"one LN box for {'each of the ' * (norms > 1)}{norms} layer normalisation"
                     f"{'s' * (norms > 1)}, standing for {len(group)} stages in all (mean, squared "
                     "deviations, variance, inverse deviation and normalised blocks) and their arrows")
    parts.append("a circle for the loss $L$" + (" and a box for the next step" if cell.recurrent else ""))
    what = "one time step" if cell.recurrent else "one example"
    return (f"The stage graph of {what}, drawn from the stage list: " + "; ".join(parts) +
            f"; and one arrow from each node to each node that reads it ({arrows} arrows), "
            r"laid out by Graphviz's \code{dot}.  The gradient flows back along every arrow" +
            ("; a value with a thick outline is a fork, and its gradient is the sum over its arrows."
             if forks else "; no value is read twice, so no gradient here is a sum."))


STATISTICS = (Kind.MEAN, Kind.SQUARED_DEVIATION, Kind.RSQRT)


def _norm_groups(cell) -> dict[str, str]:
    """Stage name -> key of its layer normalisation's node, for the stages `layer_norm` makes:
    a NORMALISED stage and the statistics it reads, directly or through other statistics
    (each normalisation's own mean, squared deviations, variance and inverse deviation)."""
    kinds = {s.name: s.kind for s in cell.stages}
    group: dict[str, str] = {}
    for s in cell.stages:
        if s.kind is not Kind.NORMALISED:
            continue
        members, todo = [s.name], [v for v in s.inputs if kinds.get(v) in STATISTICS]
        while todo:
            v = todo.pop()
            if v not in members:
                members.append(v)
                todo += [u for u in cell.stage(v).inputs if kinds.get(u) in STATISTICS]
        key = next((group[m] for m in members if m in group), f"LN_{s.name}")
        group.update((m, key) for m in members)
    return group


def _value_node(v, cell, nt, fork):
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
                          for piece in ((", ", ""),) * bool(n) + pieces(p, None, {p}))
        style = "fork" if fork else "affine"
    return Node(v, nt.value(v), pieces(v, step, params), style, note, note_text)


def dot_source(figure: Figure) -> str:
    """The figure's graph in DOT: boxes of fixed size in inches, arrows without heads (we
    draw those), in the figure's order, so that the same figure always gives the same text.
    Left to right when its columns fit in WIDTH (closer together if need be), else top down."""
    sizes = {n.key: n.size for n in figure.nodes}
    columns: dict[int, float] = {}
    for key, rank in _ranks(figure).items():
        columns[rank] = max(columns.get(rank, 0.0), sizes[key][0])
    gaps = max(1, len(columns) - 1)
    sep = min(RANKSEP[0], (WIDTH - sum(columns.values())) / gaps / 72)
    graph = ("rankdir=LR", f"ranksep={sep:.2f}") if sep >= RANKSEP[1] else ("rankdir=TB", "ranksep=0.3")
    lines = ["digraph stages {", f"  graph [{', '.join(graph)}, nodesep=0.3, splines=spline];",
             '  node [shape=box, fixedsize=true, label=""];', "  edge [dir=none];"]
    for n in figure.nodes:
        w, h = (round(v / 72, 4) for v in n.size)
        shape = "circle" if n.style == "sink" else "box"
        lines.append(f'  "{n.key}" [shape={shape}, width={w}, height={h}];')
    lines += [f'  "{e.source}" -> "{e.target}";' for e in figure.edges]
    return "\n".join(lines + ["}"]) + "\n"


def _ranks(figure: Figure) -> dict[str, int]:
    """Column of each node when every arrow goes one column or more to the right and each
    node sits as far left as it can (how many columns `dot` needs, and what is in them)."""
    rank = {n.key: 0 for n in figure.nodes}
    for _ in figure.nodes:   # longest path from a source: at most one pass per node
        for e in figure.edges:
            rank[e.target] = max(rank[e.target], rank[e.source] + 1)
    return rank


STEP_GAP, CELL_W, LANE = 165.0, 96.0, 48.0   # points: between steps, cell width, between states


STEPS = (("t-1", -1), ("t", 0), ("t+1", 1))


def unrolled(derivation: Derivation, nt) -> tuple[Figure, Layout]:
    """Steps t-1, t, t+1 with their inputs, losses and the state between them, placed by hand:
    one lane per state, the state forwards above the gradient backwards, labels beside lanes."""
    cell = derivation.cell
    height = LANE * len(cell.state_names) + 24
    parts = [_step(cell, nt, step, n, height) for step, n in STEPS]
    parts += [_lanes(cell, nt, k, s, a) for a in (-1, 0) for k, s in enumerate(cell.state_names)]
    nodes, edges, boxes, routes = (tuple(x for part in parts for x in part[i]) for i in range(4))
    legend = (("forward", "state carried forward"), ("gradient", "gradient carried back"))
    return Figure(nodes, edges, legend), Layout("", boxes, routes)


def _step(cell, nt, step: str, n: int, height: float):
    """(nodes, edges, boxes, routes) of one step: its cell, input, loss and their arrows."""
    cx, out, x = n * STEP_GAP, cell.output, cell.input_names[0]
    nodes = [Node(f"cell{n}", rf"\text{{cell at step }} {step}", ((f"cell at step {step}", ""),), "box"),
             Node(f"x{n}", nt.value(x, step), pieces(x, step, set())),
             Node(f"L{n}", rf"\ell_{{{step}}}", (("\u2113", ""), (step, "sub")), "sink")]
    boxes = [(f"cell{n}", Box(cx, 0, CELL_W, height)),
             (f"x{n}", Box(cx, -height / 2 - 40, *nodes[1].size)),
             (f"L{n}", Box(cx, height / 2 + 44, *nodes[2].size))]
    edges = [Edge(f"x{n}", f"cell{n}"),
             Edge(f"cell{n}", f"L{n}", label=nt.value(out, step), label_text=pieces(out, step, set())),
             Edge(f"L{n}", f"cell{n}", "gradient",
                  rf"\partial \ell_{{{step}}} / \partial {nt.value(out, step)}",
                  (("\u2202\u2113", ""), (step, "sub"), ("/\u2202", "")) + pieces(out, step, set()))]
    top = height / 2
    routes = [_line(f"x{n}", f"cell{n}", (cx, -top - 29), (cx, -top)),
              _line(f"cell{n}", f"L{n}", (cx - 10, top), (cx - 10, top + 31),
                    _label(edges[1], cx - 14, top + 15, "left")),
              _line(f"L{n}", f"cell{n}", (cx + 10, top + 31), (cx + 10, top),
                    _label(edges[2], cx + 14, top + 15, "right"))]
    return nodes, edges, boxes, routes


def _lanes(cell, nt, k: int, s: str, a: int):
    """(nodes, edges, boxes, routes) of state `s` (the k-th) between steps a and a + 1: its
    value forwards and, below it, its gradient backwards, each labelled beside its lane."""
    step, later = STEPS[a + 1][0], STEPS[a + 2][0]
    y = LANE * ((len(cell.state_names) - 1) / 2 - k)
    x0, x1 = a * STEP_GAP + CELL_W / 2, (a + 1) * STEP_GAP - CELL_W / 2
    fwd = Edge(f"cell{a}", f"cell{a + 1}", label=nt.value(s, step), label_text=pieces(s, step, set()))
    back = Edge(f"cell{a + 1}", f"cell{a}", "gradient", rf"{{\delta {nt.value(s, step)}}}^{{({later})}}",
                (("\u03b4", ""),) + pieces(s, step, set()) + ((f"({later})", "sup"),))
    routes = [_line(fwd.source, fwd.target, (x0, y + 4), (x1, y + 4),
                    _label(fwd, (x0 + x1) / 2, y + 14, "above")),
              _line(back.source, back.target, (x1, y - 4), (x0, y - 4),
                    _label(back, (x0 + x1) / 2, y - 14, "below"))]
    return [], [fwd, back], [], routes


def _line(source, target, a, b, label=None) -> Route:
    return Route(source, target, (a, a, b, b), label)


def _label(edge: Edge, x: float, y: float, side: str) -> Box:
    """The box of an arrow's label beside a lane; `side` says which way it extends from (x, y)."""
    w, h = label_width(edge.label, edge.label_text) + 4, 16.0
    dx = {"left": -w / 2, "right": w / 2}.get(side, 0.0)
    return Box(round(x + dx, 2), y, round(w, 2), h)
