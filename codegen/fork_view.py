"""The backward view of one fork: where the gradient of a value that several stages read
comes from, drawn beside the stage graph (which shows the forward arrows only).

`fork_view(graph, derivation, nt)` takes the stage graph's fork with the most arrows (the
later one in the graph's order on a tie: a state or stage rather than the input) and draws
it with its readers only, placed by hand: the fork on the left (taller if need be, so that
its lines' ends are 7 pt apart), its readers in one column on the right, and to each reader
two straight lines, the value going forward (solid) and a term
of the gradient coming back (dashed).  The lines of one reader are parallel and the readers'
ends are in the same top-to-bottom order on both sides, so no two lines cross and none
passes a box; tests/test_figures.py checks this from the coordinates.  None when the graph
has no fork.
"""
from __future__ import annotations

from codegen.figures import Edge, Figure
from codegen.layout import Box, Layout, Route

GAP, ROW, SPLIT = 120.0, 12.0, 3.0   # points: fork to readers, between readers, line offset


def fork_view(graph: Figure, derivation, nt) -> tuple[Figure, Layout] | None:
    readers = {n.key: [e.target for e in graph.edges if e.source == n.key]
               for n in graph.nodes if n.style == "fork"}
    if not readers:
        return None
    most = max(len(r) for r in readers.values())
    fork = [k for k, r in readers.items() if len(r) == most][-1]
    nodes = {n.key: n for n in graph.nodes}
    drawn = [nodes[fork], *(nodes[r] for r in readers[fork])]
    edges = [e for r in readers[fork] for e in (Edge(fork, r), Edge(r, fork, "gradient"))]
    legend = (("forward", "forward: the value to each reader"),
              ("gradient", "backward: a gradient term from each, summed at the fork"))
    figure = Figure(tuple(drawn), tuple(edges), legend, _caption(drawn, derivation, nt))
    return figure, _place(drawn)


def _place(drawn) -> Layout:
    """The fork at the origin, the readers' left edges at GAP, stacked downwards around y = 0."""
    fork, readers = drawn[0], drawn[1:]
    heights = [n.size[1] for n in readers]
    top = (sum(heights) + ROW * (len(readers) - 1)) / 2
    fw, fh = fork.size[0], max(fork.size[1], 2 * len(readers) * 7.0)   # ends 7 pt apart or more
    boxes, routes, y = [(fork.key, Box(0.0, 0.0, fw, fh))], [], top
    step = (fh - 2 * SPLIT) / (2 * len(readers) - 1)   # the fork's ends, top to bottom
    for n, (reader, h) in enumerate(zip(readers, heights)):
        w = reader.size[0]
        cy = round(y - h / 2, 2)
        boxes.append((reader.key, Box(round(GAP + w / 2, 2), cy, w, h)))
        out, back = fh / 2 - SPLIT - 2 * n * step, fh / 2 - SPLIT - (2 * n + 1) * step
        routes.append(_line(fork.key, reader.key, (fw / 2, out), (GAP, cy + SPLIT)))
        routes.append(_line(reader.key, fork.key, (GAP, cy - SPLIT), (fw / 2, back)))
        y -= h + ROW
    return Layout("", tuple(boxes), tuple(routes))


def _line(source, target, a, b) -> Route:
    a, b = tuple(round(v, 2) for v in a), tuple(round(v, 2) for v in b)
    return Route(source, target, (a, a, b, b))


def _caption(drawn, derivation, nt) -> str:
    """Which fork this is, who reads it, and the backward equation that sums its terms."""
    fork, readers = drawn[0], drawn[1:]
    label = next((a.label for a in derivation.adjoints if a.target == fork.key), None)
    names = ", ".join(f"${n.tex}$" for n in readers)
    sums = (rf"equation~(\ref{{eq:{label}}}) adds them up" if label else "their sum is its gradient")
    return (rf"The backward pass at one fork of Figure~\ref{{fig:graph}}: ${fork.tex}$ has "
            f"{len(readers)} readers ({names}).  Forward, its value goes to each (solid); backward, "
            rf"each sends back one term of $\delta {fork.tex}$ (dashed), and {sums}.  Every fork "
            "of the stage graph works the same way.")
