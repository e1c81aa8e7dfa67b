"""What the document teaches must be true: every displayed step, every quoted number, every name.

- each displayed line of an activation's derivation equals the line before it at random real
  points, and no subexpression of any line is complex there (no log of a negative number);
- the direct per-step loss gradient and the final-state gradient have names of their own,
  never the total gradient's;
- every number the gradient-flow text quotes is read off the measured curves.
"""
import random
import re

import mpmath
import pytest
import sympy as sp

from codegen.emit_latex import emit_latex
from derive.ops import OPS, X
from derive.rules import OUT, derivative

ACTIVATIONS = [op for op in OPS if op.activation]


def _real_everywhere(expr, x):
    """Every subexpression of `expr` evaluated at x (50 digits) is real."""
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Basic) and node.free_symbols <= {X}:
            value = sp.N(node.subs(X, x), 50)
            if value.has(sp.zoo, sp.nan):
                continue
            assert abs(sp.im(value)) < sp.Float("1e-40"), (node, x, value)


def _points(op, n=12, seed=0):
    rng = random.Random(seed)
    lo = 0.05 if op.name == "log" else -4.0   # the domain of the definition
    return [sp.Rational(round(rng.uniform(lo, 4.0), 6)).limit_denominator(10**6) for _ in range(n)]


@pytest.mark.parametrize("op", ACTIVATIONS, ids=[op.name for op in ACTIVATIONS])
def test_every_displayed_step_of_an_activation_is_true_on_the_reals(op):
    steps = derivative(op, 0).steps
    names = [name for name, _ in steps]
    assert names[:2] == ["definition", "derivative"]
    assert "inverse" not in names   # solving s = def(x) for x picks complex branches
    lines = [expr.doit().subs(OUT, op.expr) for _, expr in steps[1:]]   # the ds/dx lines
    for x in _points(op):
        for (_, expr) in steps:
            _real_everywhere(sp.sympify(expr).subs(OUT, sp.UnevaluatedExpr(op.expr)).doit(), x)
        first = sp.N(lines[0].subs(X, x), 50)
        for line in lines[1:]:
            assert abs(sp.N(line.subs(X, x), 50) - first) < sp.Float("1e-40"), (op.name, line, x)
    # the derivative line really is the derivative of the definition
    x = _points(op)[0]
    with mpmath.workdps(40):
        numeric = mpmath.diff(sp.lambdify(X, op.expr, "mpmath"), mpmath.mpf(sp.N(x, 40)))
    assert abs(sp.N(lines[0].subs(X, x), 30) - numeric) < 1e-12


def test_the_step_check_can_fail():
    """The old display (solve for x: a complex branch for tanh) is rejected."""
    from derive.ops import Kind
    s = OUT
    inverse = sp.log(-sp.sqrt(-(s + 1) / (s - 1)))
    with pytest.raises(AssertionError):
        _real_everywhere(inverse.subs(s, sp.UnevaluatedExpr(Kind.TANH.expr)).doit(), sp.Rational(1, 3))


# ----- names: the direct per-step loss gradient and the final-state gradient -------------

from catalogue import get_cell   # noqa: E402
from catalogue.cells import CELLS   # noqa: E402
from conftest import GENERATED   # noqa: E402
from derive import derive   # noqa: E402

RECURRENT = sorted(name for name in CELLS if get_cell(name).recurrent)


@pytest.mark.parametrize("name", RECURRENT)
def test_the_direct_loss_gradient_is_never_written_as_the_total_one(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    output = get_cell(name).output
    # dL/dv is the total gradient delta v: no backward term, figure or sentence may use
    # it for the direct term of a step's loss or for the final-state term
    assert not re.search(r"\\partial L\}?\s*/?\s*\{?\\partial " + output + r"_\{[tT]\}", tex), name
    assert r"\frac{\partial \ell_{t}}{\partial " in tex
    assert r"\partial \ell_{\mathrm{fin}}" in tex
    assert r"L = \sum_{t=1}^{T} \ell_t + \ell_{\mathrm{fin}}" in tex
    code = (GENERATED / f"{name}.py").read_text(encoding="utf-8")
    assert f"dl_t/d{output}_t" in code and "dl_fin/dstate_T" in code
    shown = str(derive(get_cell(name)))
    assert f"dl_t/d{output}" in shown and "dL/d" not in shown.split("names for")[0].replace("dL/dv", "")


# ----- the gradient-flow text states what the measured curves show ----------------------

from catalogue import get_entry   # noqa: E402
from codegen.latex_sections import flow_words, number   # noqa: E402
from lstm_derive.build import Build   # noqa: E402


@pytest.fixture(scope="module")
def flows():
    build = Build()
    return {name: build.document(get_entry(name)).flow for name in RECURRENT}


def _flow_section_without_figure(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    return tex[tex.index(r"\section{Gradient flow"):tex.index(r"\section{Parameter gradients")]


def _flow_section(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    section = tex[tex.index(r"\section{Gradient flow"):tex.index(r"\section{Parameter gradients")]
    prose = section[section.index("Figure~"):section.index(r"\begin{figure}")]
    return re.sub(r"\\begin\{equation\*?\}.*?\\end\{equation\*?\}", "", prose, flags=re.S)


@pytest.mark.parametrize("name", RECURRENT)
def test_every_number_the_flow_text_quotes_is_read_off_the_measured_curves(name, flows):
    flow = flows[name]
    if flow is None:   # no path form of its Jacobians (a layer norm): the text says so, no numbers
        section = _flow_section_without_figure(name)
        assert "no such form" in section and not re.findall(r"\d", section)
        return
    curves = dict(flow.curves + flow.paths)
    claims = []
    words = flow_words(flow, claims)
    assert claims, "the text quotes no measured number"
    for claim in claims:   # each quoted value is the curve's value at the k it names
        assert claim["printed"] == number(curves[claim["curve"]][flow.steps.index(claim["k"])]), claim
    prose = _flow_section(name)
    assert all(sentence in prose for sentence in words)    # the document says exactly these
    # no other number in the prose: only the measurement's constants and the k's
    for claim in sorted(claims, key=lambda c: -len(c["printed"])):
        prose = prose.replace(claim["printed"], "")
    s = flow.setting
    constants = {"0", "1", "2", "3", str(s.hidden), str(s.input), str(s.batch), f"{s.open_bias:g}",
                 f"{s.open_gate:.2f}", number(s.open_gate ** flow.steps[-1]), "0.95",
                 *map(str, flow.steps)}
    left = set(re.findall(r"\d+(?:\.\d+)?", prose)) - constants
    assert not left, left
    if flow.biases:   # the plot shows the weight-free path alone, and the text says so
        assert len(flow.paths) == 2 and "weight-free path alone" in prose


def test_the_flow_text_does_not_overclaim():
    lstm = _flow_section("lstm")
    assert "however large" not in lstm and "over all 50 steps" not in lstm
    assert "paths through the recurrent weights" in lstm   # what the numbers show
    assert "exploding" in lstm                            # the rising tail is named


def test_the_flow_check_can_fail(flows):
    """A text quoting the whole gradient where it means the path alone is caught."""
    flow = flows["lstm"]
    claims = []
    flow_words(flow, claims)
    wrong = dict(claims[1], curve="lstm")   # claim 1 is the path alone; read the whole curve
    curves = dict(flow.curves + flow.paths)
    assert wrong["printed"] != number(curves["lstm"][flow.steps.index(wrong["k"])])


CODE_NAME = re.compile(r"_")   # an underscore outside $...$ is a code name (b_f, rnn_cell)


def _outside_math(text):
    return re.sub(r"\$[^$]*\$", "", text)


@pytest.mark.parametrize("name", RECURRENT)
def test_the_flow_plot_speaks_words_and_mathematics_not_code(name, flows):
    """The plot's legend and axis labels: no code identifier (a curve's key such as
    "lstm, b_f = 3", a cell's name such as "rnn"), every subscript set as mathematics."""
    pytest.importorskip("matplotlib")
    from codegen.flow_plot import _figure
    flow = flows[name]
    if flow is None:
        return
    ax = _figure(flow).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    labels += [ax.get_xlabel(), ax.get_ylabel()]
    cells = {key.split(",")[0].split(":")[0] for key, _ in flow.curves}
    for label in labels:
        assert not CODE_NAME.search(_outside_math(label)), label
        assert not set(re.findall(r"[a-z_]+", _outside_math(label))) & cells, label
    if flow.biases:
        assert any("$b_{" in label for label in labels), labels


def test_the_flow_text_names_no_module():
    assert r"\code{" not in _flow_section("lstm")   # "the plain RNN", not its module's name


def _worked_section(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    return tex[tex.index(r"\section{A worked example}"):tex.index(r"\section{Summary")]


def test_a_published_number_the_table_rounds_differently_is_explained():
    """Gomez cuts c_1 = 0.785726 to 0.78572 where the table rounds it to 0.78573: the text
    that says his number is ours must say why the table shows another last digit."""
    from codegen.latex_worked import number as table_number
    worked = Build().document(get_entry("lstm")).worked
    section = _worked_section("lstm")
    shown = [p for p in worked.published if p.agrees and table_number(p.ours) != p.printed]
    assert shown, "Gomez's c_1 is cut, not rounded: the case this test is about is gone"
    for p in shown:
        assert f"$c_{{{p.step + 1}}}$ after his last digit" in section
        assert f"rounds it, to {table_number(p.ours)}." in section
        assert f"${table_number(p.ours)}$" in section      # the table does show that value


@pytest.mark.parametrize("name", sorted(CELLS))
def test_no_worked_example_leaves_published_numbers_unchecked(name):
    """The numbers a post prints and a test checks are said to agree, not offered "for comparison"."""
    assert "for comparison" not in _worked_section(name)


def test_the_mlp_example_names_every_number_of_mazur_that_a_test_checks():
    section = _worked_section("mlp")
    for printed in ("0.75136507", "0.772928465", "0.298371109", "0.082167041", "0.000438568"):
        assert f"${printed}$" in section, printed
    assert "tests/" not in section   # the prose names no test file


@pytest.mark.parametrize("name", sorted(CELLS))
def test_code_names_appear_only_where_the_code_is_explained(name):
    """An identifier with an underscore (init_params, b_f) is code: only the subsection
    "From equation to code" names the module's variables."""
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    body = tex[tex.index(r"\begin{document}"):].split(r"\begin{thebibliography}")[0]   # a source's file path is its name
    start = body.find(r"\subsection*{From equation to code}")
    if start >= 0:   # the subsection ends at the next section
        body = body[:start] + body[body.index(r"\section", start):]
    body = re.sub(r"\\code\{[\w/\\]*\.py\}", "", body)   # a module's file name is a name, not code
    assert r"\_" not in body, body[max(0, body.index(r"\_") - 80):body.index(r"\_") + 40]


@pytest.mark.parametrize("name", RECURRENT)
def test_one_carried_gradient_is_spoken_of_in_the_singular(name):
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    assert not re.search(r"Equations \(\\ref\{eq:\w+\}\) compute", tex)
    assert re.search(r"Equations? \(\\ref\{eq:\w+\}\)( and \(\\ref\{eq:\w+\}\))* computes?, at step", tex)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_code_paragraph_explains_only_what_the_excerpt_has(name):
    """"a line naming several ..." only where a line names several equations, and "a line
    without a name ..." only where one has none (the MLP's excerpt has neither)."""
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    start = tex.index(r"\subsection*{From equation to code}")
    paragraph = tex[start:tex.index(r"\begingroup", start)]
    lines = Build().document(get_entry(name)).code
    several = any(len(re.findall(r"\([A-Z]\d+\)", line)) > 1 for line in lines)
    unnamed = any("# (" not in line for line in lines)
    assert ("a line naming several" in paragraph) == several
    assert ("a line without a\nname continues" in paragraph) == unnamed


def test_gomez_s_names_are_mapped_to_ours_as_his_equations_define_them():
    """Gomez writes delta out_t = Delta_t + Delta out_t, Delta out_{t-1} = U^T delta gates_t:
    his Delta out is the part sent back by the next step, his delta out the whole gradient."""
    text = " ".join(_worked_section("lstm").split())
    assert r"his $\Delta \mathrm{out}_t$ (sent back by step $t+1$) our ${\delta h_{t}}^{(t+1)}$" in text
    assert r"his $\delta \mathrm{out}_t = \Delta_t + \Delta \mathrm{out}_t$ and $\delta \mathrm{state}_t$ our $\delta h_t$ and $\delta c_t$" in text
    assert r"$\Delta \mathrm{out}$ and $\delta \mathrm{state}$ are our $\delta h_t$" not in text


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_worked_table_names_each_gradient_as_its_equation_does(name):
    """A worked row (B14) shows the value the summary's (B14) defines, under the same name:
    the part of the previous state's gradient sent back by step t keeps its superscript."""
    tex = (GENERATED / f"{name}.tex").read_text(encoding="utf-8")
    worked = dict(re.findall(r"^\{\}\(\\ref\{eq:(B\d+)\}\) & \$(.+?)\$ &", _worked_section(name), re.M))
    summary = tex[tex.index(r"\section{Summary"):]
    defined = dict(re.findall(r"^\{\}\((B\d+)\) & \$(.+?) = ", summary, re.M))
    assert worked and set(worked) <= set(defined)
    for label, shown in worked.items():
        assert shown == defined[label], (label, shown, defined[label])
