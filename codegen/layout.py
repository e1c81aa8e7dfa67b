"""Where a figure's boxes and arrows go: a `Layout`, plain numbers in points (y upwards).

A stage graph's layout comes from Graphviz's `dot` (run by `lstm_derive.layout`, never
here): `from_plain(text, key)` reads `dot -Tplain` output back, `to_json`/`from_json` store it
(the committed cache; `key` is the hash of the DOT text it was made from, so a changed graph
is never drawn with an old layout).  `collisions(layout)` lists every arrow that passes
through, or grazes, a box it does not join, and `crossings(layout)` counts pairs of arrows
that cross: the test of every figure, read from the same coordinates the drawings use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

INCH = 72.0        # dot's plain output is in inches; we work in points (1/72 inch)
MARGIN = 2.0       # pt: an arrow closer than this to a box it does not join grazes it
STEPS = 40         # samples per Bezier segment when an arrow is checked


@dataclass(frozen=True)
class Box:
    """A rectangle by its centre and size, in points."""

    x: float
    y: float
    w: float
    h: float

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return abs(x - self.x) < self.w / 2 + margin and abs(y - self.y) < self.h / 2 + margin


@dataclass(frozen=True)
class Route:
    """One arrow from `source` to `target`: cubic Bezier control points p0 c1 c2 p1 c1 c2 p2 ...
    (a straight segment repeats its ends), and where its label sits, if it has one."""

    source: str
    target: str
    points: tuple[tuple[float, float], ...]
    label: Box | None = None


@dataclass(frozen=True)
class Layout:
    key: str                                  # sha256 of the DOT text ("" when placed by hand)
    boxes: tuple[tuple[str, Box], ...]        # (node key, box)
    routes: tuple[Route, ...]

    def box(self, key: str) -> Box:
        return dict(self.boxes)[key]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """left, bottom, right, top of everything drawn."""
        xs = [v for _, b in self.boxes for v in (b.x - b.w / 2, b.x + b.w / 2)]
        ys = [v for _, b in self.boxes for v in (b.y - b.h / 2, b.y + b.h / 2)]
        for r in self.routes:
            xs += [p[0] for p in r.points] + ([r.label.x - r.label.w / 2, r.label.x + r.label.w / 2]
                                               if r.label else [])
            ys += [p[1] for p in r.points] + ([r.label.y - r.label.h / 2, r.label.y + r.label.h / 2]
                                               if r.label else [])
        return min(xs), min(ys), max(xs), max(ys)


def _pt(text: str) -> float:
    return round(float(text) * INCH, 2)


def from_plain(text: str, key: str) -> Layout:
    """A layout from `dot -Tplain` output (node centres and sizes, edge spline control
    points, in inches), rounded to 0.01 pt so that the stored file is stable."""
    boxes, routes = [], []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["node"]:
            boxes.append((words[1], Box(*(_pt(w) for w in words[2:6]))))
        elif words[:1] == ["edge"]:
            n = int(words[3])
            flat = [_pt(w) for w in words[4:4 + 2 * n]]
            routes.append(Route(words[1], words[2], tuple(zip(flat[::2], flat[1::2]))))
    return Layout(key, tuple(boxes), tuple(routes))


def to_json(layout: Layout) -> str:
    """The layout as canonical JSON text (the committed cache file): a node or an arrow a line."""
    nodes = ",\n".join(f"  {json.dumps(k)}: {json.dumps([b.x, b.y, b.w, b.h])}"
                        for k, b in layout.boxes)
    edges = ",\n".join(f"  {json.dumps([r.source, r.target, [list(p) for p in r.points]])}"
                        for r in layout.routes)
    return (f'{{\n "dot_sha256": {json.dumps(layout.key)},\n "nodes": {{\n{nodes}\n }},\n'
            f' "edges": [\n{edges}\n ]\n}}\n')


def from_json(text: str) -> Layout:
    data = json.loads(text)
    return Layout(data["dot_sha256"], tuple((k, Box(*v)) for k, v in data["nodes"].items()),
                  tuple(Route(s, t, tuple(tuple(p) for p in pts)) for s, t, pts in data["edges"]))


def sample(route: Route, steps: int = STEPS) -> list[tuple[float, float]]:
    """Points along the arrow's Bezier segments, ends included."""
    p, out = route.points, [route.points[0]]
    for i in range(0, len(p) - 3, 3):
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = p[i:i + 4]
        for n in range(1, steps + 1):
            t = n / steps
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3))
    return out


def collisions(layout: Layout, margin: float = MARGIN) -> list[str]:
    """'a -> b meets c' for every arrow that comes within `margin` of a box (or another
    arrow's label) other than its own two ends and its own label; [] when the figure is clean."""
    found = []
    for n, route in enumerate(layout.routes):
        own = {route.source, route.target}
        obstacles = [(k, b) for k, b in layout.boxes if k not in own]
        obstacles += [(f"label of {r.source} -> {r.target}", r.label)
                      for m, r in enumerate(layout.routes) if r.label and m != n]
        points = sample(route)
        found += [f"{route.source} -> {route.target} meets {k}" for k, box in obstacles
                  if any(box.contains(x, y, margin) for x, y in points)]
    return found


def crossings(layout: Layout) -> int:
    """How many pairs of arrows cross (arrows that share an end are not counted: they meet there)."""
    lines = [list(zip(s[:-1], s[1:])) for s in map(sample, layout.routes)]
    count = 0
    for i, a in enumerate(layout.routes):
        for j in range(i + 1, len(layout.routes)):
            b = layout.routes[j]
            if {a.source, a.target} & {b.source, b.target}:
                continue
            count += any(_cross(p, q) for p in lines[i] for q in lines[j])
    return count


def _cross(p, q) -> bool:
    """Whether segments p and q meet (touching counts: two curves may cross at a sample point)."""
    def side(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    (a, b), (c, d) = p, q
    if max(a[0], b[0]) < min(c[0], d[0]) or max(c[0], d[0]) < min(a[0], b[0]) or \
            max(a[1], b[1]) < min(c[1], d[1]) or max(c[1], d[1]) < min(a[1], b[1]):
        return False   # their bounding boxes are apart (this also settles collinear segments)
    return side(a, b, c) * side(a, b, d) <= 0 and side(c, d, a) * side(c, d, b) <= 0
