"""The figures read at 100%: no arrow passes through or grazes a box it does not join, every
label is at least 8 pt in the PDF and 11 px in the page, and the stored layouts are current.

Every cell's stage graph (built in, and every example spec) is checked from the coordinates
of its committed layout (made by Graphviz's `dot`), its unrolled figure from the positions
placed by hand; the checker is shown to reject a bad layout, a grazing arrow and a label in
the way.  A build without Graphviz uses the stored layouts and gives the same bytes.
"""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from functools import lru_cache

import pytest

from catalogue.cells import CELLS
from codegen import figures
from codegen.layout import Box, Layout, Route, collisions, crossings, from_json, to_json
from codegen.notation import Notation
from conftest import GENERATED, ROOT
from derive import derive
from derive.errors import DeriveError
from derive.stages import Kind
from lstm_derive import layout as layouts
from lstm_derive.cli import resolve

SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.toml"))
LINE = 470.0                            # points: the document's line is 482 pt wide
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")


@lru_cache(maxsize=None)
def drawn(name: str):
    """(figure, stored layout or None, unrolled figure and layout) of a cell or example spec."""
    entry = resolve(str(ROOT / name) if name.endswith(".toml") else name)
    derivation = derive(entry.cell)
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    graph = figures.stage_graph(derivation, nt)
    stored = layouts.Layouts().stored(entry.name, figures.dot_source(graph))
    return graph, stored, figures.unrolled(derivation, nt) if cell.recurrent else None


@pytest.mark.parametrize("name", [*CELLS, *SPECS])
def test_every_stage_graph_has_a_current_layout_with_no_arrow_through_a_box(name):
    graph, layout, _ = drawn(name)
    assert layout is not None, f"no stored layout of {name} for its current graph: run `lstm-derive build`"
    assert [k for k, _ in layout.boxes] == [n.key for n in graph.nodes]
    assert [(r.source, r.target) for r in layout.routes] == [(e.source, e.target) for e in graph.edges]
    for (key, box), node in zip(layout.boxes, graph.nodes):   # dot kept the sizes we asked for
        assert (box.w, box.h) == pytest.approx(node.size, abs=1.0), key
    for r in layout.routes:   # each arrow starts on its source's box and ends on its target's
        for end, key in ((r.points[0], r.source), (r.points[-1], r.target)):
            assert layout.box(key).contains(*end, margin=1.0), (r.source, r.target)
    assert collisions(layout) == []
    left, _, right, _ = layout.bounds
    assert right - left <= LINE, "the figure would have to be scaled down to fit the line"


@pytest.mark.parametrize("name", [n for n in [*CELLS, *SPECS] if drawn(n)[2]])
def test_the_unrolled_figure_keeps_arrows_off_boxes_and_labels(name):
    figure, layout = drawn(name)[2]
    assert collisions(layout) == [] and crossings(layout) == 0
    left, _, right, _ = layout.bounds
    assert right - left <= LINE


def test_the_stage_graphs_cross_only_where_the_lstm_gates_force_it():
    """x and h_{t-1} both feed the LSTM's four gate stages: drawn in two columns, the arrows of
    K(2,4) cross at least 1 + 2 + 3 = 6 times, and dot's layout has no other crossing."""
    assert crossings(drawn("lstm")[1]) == 6
    assert crossings(drawn("rnn")[1]) == 0 and crossings(drawn("mlp")[1]) == 0


def _line(source, target, a, b, label=None):
    return Route(source, target, (a, a, b, b), label)


def test_the_checker_rejects_an_arrow_through_a_box_a_grazing_arrow_and_a_label_in_the_way():
    boxes = (("a", Box(0, 0, 20, 10)), ("b", Box(100, 0, 20, 10)), ("c", Box(50, 0, 20, 10)))
    through = Layout("", boxes, (_line("a", "b", (10, 0), (90, 0)),))
    assert collisions(through) == ["a -> b meets c"]
    grazing = Layout("", boxes, (_line("a", "b", (10, 6.5), (90, 6.5)),))   # 1.5 pt above c
    assert collisions(grazing) == ["a -> b meets c"]
    clear = Layout("", boxes, (_line("a", "b", (10, 9), (90, 9)),))
    assert collisions(clear) == [] and collisions(grazing, margin=1.0) == []
    label = Box(50, 20, 20, 8)
    lanes = Layout("", boxes[:2], (_line("a", "b", (10, 20), (90, 20), label),
                                   _line("b", "a", (90, 19), (10, 19))))
    assert collisions(lanes) == ["b -> a meets label of a -> b"]   # its own label is allowed


def test_the_checker_rejects_a_real_layout_with_one_box_moved_onto_an_arrow():
    graph, layout, _ = drawn("lstm")
    route = next(r for r in layout.routes if (r.source, r.target) == ("c", "next"))
    (x, y), k = route.points[len(route.points) // 2], layout.box("k")
    moved = replace(layout, boxes=tuple((key, replace(b, x=x, y=y) if key == "k" else b)
                                        for key, b in layout.boxes))
    assert "c -> next meets k" in collisions(moved) and collisions(layout) == []
    assert k != moved.box("k")


def test_crossings_counts_crossing_arrows_but_not_arrows_that_share_an_end():
    boxes = tuple((k, Box(x, y, 4, 4)) for k, x, y in
                  (("a", 0, 0), ("b", 100, 100), ("c", 0, 100), ("d", 100, 0)))
    x = Layout("", boxes, (_line("a", "b", (0, 0), (100, 100)), _line("c", "d", (0, 100), (100, 0))))
    fork = Layout("", boxes, (_line("a", "b", (0, 0), (100, 100)), _line("a", "d", (0, 0), (100, 0))))
    assert crossings(x) == 1 and crossings(fork) == 0


@pytest.mark.parametrize("path", sorted((GENERATED / "layout").glob("*.json")), ids=lambda p: p.name)
def test_a_stored_layout_is_canonical_text(path):
    text = path.read_text(encoding="utf-8")
    assert to_json(from_json(text)) == text


def test_a_build_without_graphviz_reads_the_stored_layouts_and_gives_the_same_bytes(monkeypatch):
    from lstm_derive.build import render_all
    monkeypatch.setattr(layouts.shutil, "which", lambda program: None)
    files = render_all("gru")
    for name in ("gru.tex", "gru.html", "layout/gru.json"):
        assert files[name] == (GENERATED / name).read_text(encoding="utf-8"), name


def test_a_changed_graph_without_graphviz_is_one_line_naming_graphviz(monkeypatch):
    monkeypatch.setattr(layouts.shutil, "which", lambda program: None)
    dot = figures.dot_source(drawn("rnn")[0]).replace("ranksep", "ranksep=0.5, nodesep")
    with pytest.raises(DeriveError) as err:
        layouts.Layouts().get("rnn", dot)
    message = str(err.value)
    assert "\n" not in message and "Graphviz" in message and "install" in message


@needs_dot
def test_dot_is_run_for_a_changed_graph_and_its_errors_are_one_line():
    dot = figures.dot_source(drawn("rnn")[0])
    fresh = layouts.run_dot("rnn", dot)
    assert fresh == drawn("rnn")[1]          # the stored layout is what dot makes of this text
    with pytest.raises(DeriveError, match="^Graphviz's `dot` failed on the stage graph of bad: "):
        layouts.run_dot("bad", "digraph { a -> }")


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_labels_are_legible_at_full_size(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    pictures = re.findall(r"\\begin\{tikzpicture\}.*?\\end\{tikzpicture\}", tex, re.S)
    assert len(pictures) >= 2 and r"\resizebox" not in tex and r"\scalebox" not in tex
    assert not re.search(r"\\(tiny|scriptsize|footnotesize|small)\b|scale=", "".join(pictures))
    page = (GENERATED / f"{name}.html").read_text(encoding="utf-8")
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    for svg in svgs[:3]:   # the stage graph, the fork view, the unrolled figure (not the plot)
        root = ET.fromstring(svg)
        assert float(root.get("width")) <= 800    # the page's column is 832 px: drawn at 100%
        sizes = [float(e.get("font-size")) for e in root.iter() if e.get("font-size")]
        assert sizes and min(sizes) >= 11


def test_the_unrolled_figure_keeps_its_indices_in_the_page():
    page = (GENERATED / "lstm.html").read_text(encoding="utf-8")
    svg = re.search(r'<figure id="fig:unrolled"><svg .*?</svg>', page, re.S).group(0)
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg[svg.index("<svg"):]).iter()
             if t.tag.endswith("}text")]
    for label in ("ht-1", "ct", "\u03b4ht(t+1)", "\u03b4ct-1(t)", "xt+1", "\u2113t-1", "\u2202\u2113t/\u2202ht"):
        assert label in texts, label


TOOL_MODULES = {"subprocess", "shutil", "os"}   # what running a program would need


def tool_imports(source: str) -> set[str]:
    """The modules of TOOL_MODULES that a source imports (anywhere in it)."""
    import ast
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found & TOOL_MODULES


def test_renderers_run_no_program_dot_runs_in_the_build():
    """Only lstm_derive runs Graphviz; the figure code under codegen/ draws what it is handed."""
    for path in ("codegen/figures.py", "codegen/layout.py", "codegen/drawing.py"):
        assert tool_imports((ROOT / path).read_text(encoding="utf-8")) == set(), path
    assert "subprocess" in tool_imports((ROOT / "lstm_derive/layout.py").read_text(encoding="utf-8"))
    assert tool_imports("def f():\n    from subprocess import run\n") == {"subprocess"}


@pytest.mark.parametrize("name", ["layernorm_lstm", "layernorm_gru", "examples/layernorm_rnn.toml"])
def test_a_layer_normalisation_is_one_ln_box_between_its_blocks_and_their_readers(name):
    """Each normalisation's mean, squared deviations, variance, inverse deviation and normalised
    blocks are drawn as one LN box: an arrow from each block it normalises, one to each stage
    reading a normalised block, and the legend says what the box stands for."""
    graph = drawn(name)[0]
    cell = resolve(str(ROOT / name) if name.endswith(".toml") else name).cell
    keys = {n.key for n in graph.nodes}
    drawn_in_box = figures.STATISTICS + (Kind.NORMALISED,)
    internal = {s.name for s in cell.stages if s.kind in drawn_in_box}
    assert not keys & internal
    boxes = [n for n in graph.nodes if n.style == "box"]
    means = [s for s in cell.stages if s.kind is Kind.MEAN and not set(s.inputs) & internal]
    assert len(boxes) == len(means) >= 1 and all(n.tex == r"\mathrm{LN}" for n in boxes)
    edges = {(e.source, e.target) for e in graph.edges}
    ln_inputs = {v for s in means for v in s.inputs}
    assert ln_inputs == {e.source for e in graph.edges if e.target in {b.key for b in boxes}}
    readers = {r.name for r in cell.stages if r.name not in internal
               for v in r.inputs if v in internal}
    assert readers == {t for s, t in edges if s in {b.key for b in boxes}}
    assert any(style == "box" and "layer normalisation" in words for style, words in graph.legend)
    plain = drawn("lstm")[0]
    assert not [n for n in plain.nodes if n.style == "box"] and len(plain.legend) == 2


def _figures_of(name):
    graph, layout, unrolled = drawn(name)
    return [(graph, layout)] + ([unrolled] if unrolled else [])


@pytest.mark.parametrize("name", [*CELLS, *SPECS])
def test_every_label_measured_in_both_fonts_fits_inside_its_box(name):
    """Each node's label, measured in Computer Modern (the PDF) and DejaVu Sans (the page),
    leaves figures.INSET points free on both sides of its box; arrow labels fit their boxes."""
    for figure, layout in _figures_of(name):
        assert figures.crowded(figure, layout) == []


def test_the_fit_check_rejects_a_box_narrower_than_its_measured_label():
    graph, layout = drawn("lstm")[:2]
    node = max(graph.nodes, key=lambda n: figures.label_width(n.note, n.note_text))
    need = figures.label_width(node.note, node.note_text) + 2 * figures.INSET
    narrow = lambda w: replace(layout, boxes=tuple(   # noqa: E731
        (k, replace(b, w=w) if k == node.key else b) for k, b in layout.boxes))
    assert figures.crowded(graph, narrow(need - 0.5)) == [node.key]
    assert figures.crowded(graph, narrow(need + 0.5)) == []
    figure, hand = drawn("lstm")[2]
    route = next(r for r in hand.routes if r.label)
    squeezed = replace(hand, routes=tuple(replace(r, label=replace(r.label, w=r.label.w - 5))
                                           if r is route else r for r in hand.routes))
    assert figures.crowded(figure, squeezed) == [f"label of {route.source} -> {route.target}"]


needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="LaTeX is not installed")


@needs_tex
def test_measured_label_widths_are_the_widths_latex_sets(tmp_path):
    """Every label of every figure, typeset by pdflatex in the document's class and size: its
    box is as wide as codegen.text_width computed from the font tables (to 0.01 pt)."""
    import subprocess
    from codegen.text_width import tex_width
    labels = sorted({t for name in [*CELLS, *SPECS] for figure, _ in _figures_of(name)
                     for t in [*(n.tex for n in figure.nodes), *(n.note for n in figure.nodes),
                               *(e.label for e in figure.edges)] if t} |
                    {r"\mu^{x}_{t}", r"\gamma_{x,f} \times \beta", r"-x+(y-1)/2", r"\mathrm{AV}^{Wa}"})
    body = "".join(rf"\sbox\lbox{{${t}$}}\typeout{{WIDTH:\the\wd\lbox}}" + "\n" for t in labels)
    (tmp_path / "w.tex").write_text(r"\documentclass[11pt]{article}\usepackage{amsmath,amssymb}"
                                    "\n" r"\newsavebox\lbox\begin{document}" "\n" + body +
                                    r"\end{document}" "\n", encoding="utf-8")
    subprocess.run(["pdflatex", "-interaction=batchmode", "w.tex"], cwd=tmp_path,
                   capture_output=True, timeout=120, check=False)
    widths = re.findall(r"WIDTH:([\d.]+)pt", (tmp_path / "w.log").read_text(encoding="latin-1"))
    assert len(widths) == len(labels) > 100
    for label, width in zip(labels, widths):
        assert tex_width(label) == pytest.approx(float(width), abs=0.01), label


def test_a_label_the_measure_does_not_know_is_refused_and_a_box_gets_a_generous_width():
    from codegen.text_width import tex_width, tex_width_at_most
    for label in (r"\sqrt{x}", r"x^{a^{b}}", r"\text{fish}"):   # \text{fi} would be a ligature
        with pytest.raises(ValueError):
            tex_width(label)
    assert tex_width_at_most(r"x^{a^{b}}") == pytest.approx(3 * 1.5 * 10.95)   # 3 letters
    assert tex_width_at_most(r"x^{a}") == tex_width(r"x^{a}") < 2 * 10.95


@pytest.mark.parametrize("name", [*CELLS, *SPECS])
def test_the_caption_says_what_the_stage_graph_draws(name):
    """The caption's counts are those of the cell (stages, layer normalisations, arrows between
    distinct drawn nodes), counted here from the cell, and it never claims a node per value
    where a layer normalisation is drawn as one box."""
    graph = drawn(name)[0]
    cell = resolve(str(ROOT / name) if name.endswith(".toml") else name).cell
    inside = [s for s in cell.stages if s.kind in figures.STATISTICS + (Kind.NORMALISED,)]
    norms = [s for s in cell.stages if s.kind is Kind.MEAN and not
             set(s.inputs) & {t.name for t in inside}]
    caption = graph.caption
    assert f"each of the {len(cell.stages) - len(inside)} stages" in caption
    assert "one node per value" not in caption
    if norms:
        assert f"{len(norms)} layer normalisation" in caption and f"{len(inside)} stages in all" in caption
    else:   # one node per value: an arrow per (value, reader), the loss's and the next step's
        assert "LN" not in caption and "layer normalisation" not in caption
        values = {*cell.input_names, *(f"{s}_prev" for s in cell.state_names),
                  *(s.name for s in cell.stages)}   # not the parameters
        arrows = {(v, s.name) for s in cell.stages for v in s.inputs if v in values}
        arrows |= {(cell.output, "loss")}
        arrows |= {(s, "next") for s in cell.state_names}
        assert f"({len(arrows)} arrows)" in caption
    assert f"({len(graph.edges)} arrows)" in caption
    assert ("next step" in caption) == cell.recurrent
    tex = (GENERATED / f"{name}.tex") if name in CELLS else ROOT / name.replace(".toml", ".tex")
    assert rf"\caption{{{caption}}}\label{{fig:graph}}" in tex.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [*CELLS, *SPECS])
def test_the_fork_view_shows_each_readers_gradient_term_without_a_knot(name):
    """The backward view of the graph's largest fork: one forward and one dashed gradient line
    per reader, the readers those of the fork's backward equation (whose label the caption
    cites); straight lines whose ends keep one top-to-bottom order on both sides (so none
    crosses another), clear of every box, each label inside its box."""
    from codegen.fork_view import fork_view
    graph = drawn(name)[0]
    entry = resolve(str(ROOT / name) if name.endswith(".toml") else name)
    derivation = derive(entry.cell)
    view = fork_view(graph, derivation, Notation(entry.cell.recurrent, entry.cell.vector_param_names))
    if not any(n.style == "fork" for n in graph.nodes):
        assert view is None
        return
    figure, layout = view
    fork, readers = figure.nodes[0].key, [n.key for n in figure.nodes[1:]]
    adjoint = derivation.adjoint(fork)
    assert sorted(t.branch.replace("next step", "next") for t in adjoint.terms) == sorted(readers)
    assert rf"\ref{{eq:{adjoint.label}}}" in figure.caption and f"{len(readers)} readers" in figure.caption
    assert [(e.source, e.target, e.style) for e in figure.edges] == [
        x for r in readers for x in ((fork, r, "forward"), (r, fork, "gradient"))]
    assert collisions(layout) == [] and figures.crowded(figure, layout) == []
    ends = [(r.points[0], r.points[-1]) if r.source == fork else (r.points[-1], r.points[0])
            for r in layout.routes]   # (end at the fork, end at the reader) of each line
    assert all(len(set(r.points)) == 2 for r in layout.routes)   # straight
    at_fork, at_reader = [a[1] for a, _ in ends], [b[1] for _, b in ends]
    assert at_fork == sorted(at_fork, reverse=True) and len(set(at_fork)) == len(at_fork)
    assert at_reader == sorted(at_reader, reverse=True) and len(set(at_reader)) == len(at_reader)
    assert min(a - b for a, b in zip(at_fork, at_fork[1:])) >= 7.0 - 0.01
    left, _, right, _ = layout.bounds
    assert right - left <= LINE


def _lines_meeting(layout):
    """Pairs of routes that meet anywhere, their ends included (unlike `crossings`, which lets
    arrows of one node meet at it: a fork view's lines must not even touch)."""
    from codegen.layout import _cross, sample
    segments = [list(zip(s[:-1], s[1:])) for s in map(sample, layout.routes)]
    return [(i, j) for i in range(len(segments)) for j in range(i + 1, len(segments))
            if any(_cross(p, q) for p in segments[i] for q in segments[j])]


def test_no_two_lines_of_a_fork_view_meet_and_the_check_sees_two_that_do():
    from codegen.fork_view import fork_view
    for name in [*CELLS, *SPECS]:
        entry = resolve(str(ROOT / name) if name.endswith(".toml") else name)
        view = fork_view(drawn(name)[0], derive(entry.cell),
                         Notation(entry.cell.recurrent, entry.cell.vector_param_names))
        assert view is None or _lines_meeting(view[1]) == [], name
    layout = fork_view(drawn("lstm")[0], derive(CELLS["lstm"].cell), Notation(True))[1]
    first, second = layout.routes[0], layout.routes[2]   # forward lines to the first two readers
    swapped = (replace(first, points=(second.points[0],) * 2 + first.points[2:]),
               replace(second, points=(first.points[0],) * 2 + second.points[2:]))
    crossed = replace(layout, routes=(swapped[0], layout.routes[1], swapped[1], *layout.routes[3:]))
    assert (0, 2) in _lines_meeting(crossed)


@pytest.mark.parametrize("name", ["lstm", "layernorm_gru", "mlp"])
def test_each_svg_label_is_held_to_its_measured_width_inside_its_box(name):
    """In the page, a box's label texts carry textLength (so a browser that lacks DejaVu Sans
    spaces its own font to that width) and it leaves figures.INSET points free on each side."""
    from codegen.text_width import PX
    page = (GENERATED / f"{name}.html").read_text(encoding="utf-8")
    svg = re.search(r'<figure id="fig:graph"><svg .*?</svg>', page, re.S).group(0)
    root = ET.fromstring(svg[svg.index("<svg"):])
    box, checked = None, 0
    for element in root:
        tag = element.tag.split("}")[1]
        if tag == "path":
            break                            # the arrows and the legend follow the nodes
        if tag in ("rect", "circle"):
            box = float(element.get("width") or 2 * float(element.get("r")))
        elif tag == "text" and box is not None:
            assert float(element.get("textLength")) + 2 * figures.INSET * PX <= box + 0.1
            checked += 1
    assert checked >= len(drawn(name)[0].nodes)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_stage_graph_explains_forks_only_where_it_draws_one(name):
    """A legend entry and a caption sentence for a thick-outlined fork, only where a node has
    that outline (the MLP's graph has none: every value there is read once)."""
    graph = drawn(name)[0]
    thick = any(n.style == "fork" for n in graph.nodes)
    assert any(style == "fork" for style, _ in graph.legend) == thick
    assert ("thick outline is a fork" in graph.caption) == thick
    assert thick or "no value is read twice" in graph.caption
