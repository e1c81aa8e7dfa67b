"""The HTML page, the figures and the notebook display of a derivation.

The page must be well-formed XML with every equation label of the LaTeX document, its
mathematics as MathML, its figures as inline SVG, and nothing that runs or downloads.
"""
import re
import xml.etree.ElementTree as ET

import pytest

from codegen import drawing, figures
from codegen.emit_html import Reader
from codegen.notation import Notation
from conftest import GENERATED, ROOT
from catalogue import get_cell, get_entry
from derive import derive
from catalogue.cells import CELLS
from derive.errors import DeriveError

XHTML = "{http://www.w3.org/1999/xhtml}"
MATHML = "{http://www.w3.org/1998/Math/MathML}"
SVG = "{http://www.w3.org/2000/svg}"


def _page(name, folder=GENERATED):
    text = (folder / f"{name}.html").read_text(encoding="utf-8")
    return text, ET.fromstring(text.split("\n", 1)[1])   # the line after <!DOCTYPE html>


PAGES = [(name, GENERATED) for name in sorted(CELLS)] + [
    (p.stem, p.parent) for p in sorted((ROOT / "examples").glob("*.html"))]


@pytest.mark.parametrize("name, folder", PAGES, ids=[name for name, _ in PAGES])
def test_html_is_xml_with_every_equation_label_of_the_document(name, folder):
    text, root = _page(name, folder)
    tex = (folder / f"{name}.tex").read_text(encoding="utf-8")
    tags = set(re.findall(r"\\tag\{([^}]*)\}", tex))
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert tags and {f"eq:{t}" for t in tags} <= ids, sorted(tags - {i[3:] for i in ids if i})
    for tag in tags:
        assert f"({tag})" in text
    sections = re.findall(r"\\(?:sub)?section\*?\{", tex)
    sections += re.findall(r"\\begin\{thebibliography\}", tex)   # LaTeX heads it "References"
    assert len([e for e in root.iter() if e.tag in (f"{XHTML}h2", f"{XHTML}h3")]) == len(sections)


@pytest.mark.parametrize("name", ["lstm", "mlp_softmax"])
def test_html_is_self_contained_mathml_and_svg(name):
    text, root = _page(name)
    assert not [e for e in root.iter() if e.tag in (f"{XHTML}script", f"{XHTML}link", f"{XHTML}img")]
    assert not re.search(r"""(src|href)=["']https?:""", text)
    assert len(list(root.iter(f"{MATHML}math"))) > 50
    # stage graph, fork view (the MLPs' graphs have no fork), unrolled steps, gradient flow
    assert len(list(root.iter(f"{SVG}svg"))) == (4 if CELLS[name].cell.recurrent else 1)
    assert "\\" not in "".join(root.itertext()), "LaTeX left in the page"
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"



@pytest.mark.parametrize("name, folder", PAGES, ids=[name for name, _ in PAGES])
def test_every_table_scrolls_inside_its_own_box(name, folder):
    """A table of long equations (the layer-normalised cells' summary) is wider than a narrow
    window: inside a box that scrolls sideways it does not widen the whole page."""
    _, root = _page(name, folder)
    parents = {child: parent for parent in root.iter() for child in parent}
    tables = list(root.iter(f"{XHTML}table"))
    assert tables
    for table in tables:
        box = parents[table]
        assert box.tag == f"{XHTML}div" and box.get("class") == "wide", name
    style = "".join(root.find(f"{XHTML}head").itertext())
    assert re.search(r"\.wide\s*\{[^}]*overflow-x:\s*auto", style)

def test_the_reader_refuses_latex_it_does_not_know():
    with pytest.raises(DeriveError, match="unsupported LaTeX command .hspace"):
        Reader("\\title{t}\\begin{document}\nsome \\hspace{1cm} text\n\\end{document}", {}).body()


@pytest.mark.parametrize("name", ["lstm", "gru", "mlp"])
def test_stage_graph_has_every_value_and_marks_exactly_the_forks(name):
    derivation = derive(get_cell(name))
    cell = derivation.cell
    graph = figures.stage_graph(derivation, Notation(cell.recurrent, cell.vector_param_names))
    keys = {n.key for n in graph.nodes}
    assert {s.name for s in cell.stages} | set(cell.input_names) <= keys
    forks = {n.key for n in graph.nodes if n.style == "fork"}
    assert forks == {a.target for a in derivation.adjoints if a.is_fork}
    arrows = [(e.source, e.target) for e in graph.edges]
    assert len(arrows) == len(set(arrows)) and {e.style for e in graph.edges} == {"forward"}
    for stage in cell.stages:   # one arrow per (value, reader), and no other
        assert all((x, stage.name) in arrows for x in stage.inputs if x in keys)
    assert {t for _, t in arrows} <= {s.name for s in cell.stages} | {"loss", "next"}


def test_tikz_and_svg_draw_the_same_nodes():
    from lstm_derive.layout import Layouts
    graph = figures.stage_graph(derive(get_cell("lstm")), Notation(True))
    layout = Layouts().get("lstm", figures.dot_source(graph))
    tikz, svg = drawing.tikz(graph, layout), drawing.svg(graph, layout, "lstm")
    assert tikz.count("\\node[") == len(graph.nodes) and tikz.count("\\draw[") == len(graph.edges)
    root = ET.fromstring(svg)
    boxes = [r for r in root.iter(f"{SVG}rect") if r.get("rx")]        # legend swatches have none
    assert len(boxes) + len(list(root.iter(f"{SVG}circle"))) == len(graph.nodes)
    assert len([p for p in root.iter(f"{SVG}path") if p.get("marker-end")]) == len(graph.edges)


def test_a_derivation_displays_itself_in_a_notebook():
    from lstm_derive.notebook import Page
    derivation = Page(derive(get_cell("rnn")))
    latex = derivation._repr_latex_()
    assert latex.startswith("$$\\begin{aligned}") and latex.endswith("\\end{aligned}$$")
    assert all(f"({label})" in latex for label in ("F1", "F2", "B1", "B2", "B3", "P1", "P3"))
    html = derivation._repr_html_()
    root = ET.fromstring(html)
    assert root.get("class") == "lstm-derive" and list(root.iter(f"{MATHML}math"))
    with pytest.raises(ValueError, match="not the derivation's cell"):   # words of another cell
        Page(derive(get_cell("rnn")), get_entry("gru"))


def test_without_matplotlib_the_page_says_the_plot_was_not_drawn(monkeypatch):
    import codegen.flow_plot
    from lstm_derive.build import Build

    def no_matplotlib(flow):
        raise ImportError("No module named 'matplotlib'")
    monkeypatch.setattr(codegen.flow_plot, "_figure", no_matplotlib)
    codegen.flow_plot.draw.cache_clear()          # drawn plots are cached by their numbers
    try:
        rendered = Build().render(get_entry("rnn"))
    finally:
        codegen.flow_plot.draw.cache_clear()
    assert rendered.assets == {}                  # no plot for the PDF either
    page = rendered.files["rnn.html"]
    assert "matplotlib, which was not installed" in page
    root = ET.fromstring(page.split("\n", 1)[1])
    assert len(list(root.iter(f"{SVG}svg"))) == 3      # the three drawn figures remain


def test_notes_with_special_characters_reach_the_page_intact(tmp_path):
    """`&`, `_`, `%` in a spec's notes are LaTeX-escaped in the .tex and plain in the page."""
    from lstm_derive.build import render_cell
    from catalogue.spec import load_spec
    spec = (ROOT / "examples" / "mgu.toml").read_text(encoding="utf-8")
    spec = spec.replace('name = "mgu"', 'name = "odd"').replace(
        'description = "', 'description = "50% of W_f & U_f: ', 1).replace(
        'note = "forget gate"', 'note = "forget & reset_gate, 50% open"', 1)
    (tmp_path / "odd.toml").write_text(spec, encoding="utf-8")
    entry, _ = load_spec(tmp_path / "odd.toml")
    page = render_cell(entry)["odd.html"]
    root = ET.fromstring(page.split("\n", 1)[1])
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "50% of W_f & U_f: " in text and "forget & reset_gate, 50% open" in text


def test_every_citation_has_its_reference_in_the_page():
    """\\cite becomes numbered links to the list of references, in the .tex and the page."""
    for name, folder in PAGES:
        tex = (folder / f"{name}.tex").read_text(encoding="utf-8")
        cited = {k.strip() for group in re.findall(r"\\cite\{([^}]*)\}", tex) for k in group.split(",")}
        listed = set(re.findall(r"\\bibitem\{([^}]*)\}", tex))
        assert cited and cited <= listed, (name, cited - listed)
        text, root = _page(name, folder)
        ids = {e.get("id") for e in root.iter() if e.get("id")}
        assert {f"bib-{k}" for k in listed} <= ids, name


@pytest.mark.parametrize("name, folder", PAGES)
def test_the_page_has_a_table_of_contents_linking_every_numbered_heading(name, folder):
    text, root = _page(name, folder)
    nav = next(root.iter(f"{XHTML}nav"))
    links = [a.get("href")[1:] for a in nav.iter(f"{XHTML}a")]
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert set(links) <= ids and "references" in links
    numbered = [e for e in root.iter() if e.tag in (f"{XHTML}h2", f"{XHTML}h3")
                and re.match(r"\d", "".join(e.itertext()))]
    assert [e.get("id") for e in numbered] == links[:-1]


def test_mathml_is_spaced_as_latex_spaces_it():
    """A sign is no binary minus, (a) has no stretched fences around one line, dl/dh no gaps;
    a fraction keeps its stretchy parentheses, and so does a pair around it."""
    from codegen.emit_html import mathml
    sign = mathml("(-1, 1)", "inline")
    assert '<mo form="prefix" lspace="0" rspace="0">&#x02212;</mo>' in sign
    assert '<mo form="prefix"' not in mathml("a - b", "inline")
    assert 'stretchy="true"' not in mathml(r"\sigma\left(a^{f}_{t}\right)", "inline")
    tall = mathml(r"\left(1 + \left(\frac{1}{x}\right)\right)", "inline")
    assert tall.count('stretchy="true"') == 4
    assert '<mo lspace="0" rspace="0">&#x02202;</mo>' in mathml(r"\partial L / \partial h", "inline")
    text, _ = _page("lstm")
    assert "&#x00028;</mo><mo>&#x02212;</mo>" not in text   # the candidate's range (-1, 1)
    assert ('&#x00028;</mo><mo form="prefix" lspace="0" rspace="0">&#x02212;</mo><mn>1</mn>'
            '<mo>&#x0002C;</mo><mn>1</mn>') in text


def _touching(root):
    """Inline formulas with a character touching them (no space between) that are not held
    together with it in one unbreakable span: where a browser could break the line."""
    found = []
    for parent in root.iter():
        if parent.get("class") == "nobr":
            continue
        children = list(parent)
        for n, child in enumerate(children):
            if child.tag != f"{MATHML}math" or child.get("display") != "inline":
                continue
            before = (children[n - 1].tail if n else parent.text) or ""
            after = child.tail or ""
            if (before and not before[-1].isspace()) or (after and not after[0].isspace()):
                found.append((before[-10:], after[:10]))
    return found


@pytest.mark.parametrize("name, folder", PAGES, ids=[name for name, _ in PAGES])
def test_no_line_break_between_a_formula_and_the_parenthesis_or_punctuation_touching_it(name, folder):
    """The parameter list "W_f (H x D), ...": an opening "(" stays on the line of its formula
    (and ")," too), as everywhere a formula touches text; the check finds such a place when
    the page is written without the spans."""
    text, root = _page(name, folder)
    assert _touching(root) == []
    spans = re.findall(r'<span class="nobr">\((<math .*?</math>)\)', text)
    tex = (folder / f"{name}.tex").read_text(encoding="utf-8")
    params = re.search(r"noindent Parameters[^:]*: (.*)", tex).group(1)
    assert len(spans) >= params.count("~($") == params.count("($") > 0   # name~(shape)
    unglued = ET.fromstring(re.sub(r'<span class="nobr">(.*?)</span>', r"\1",
                                   text.split("\n", 1)[1], flags=re.S))
    assert len(_touching(unglued)) >= params.count("~($")
    assert ".nobr { white-space: nowrap; }" in text
