"""User cells from spec files: parsed safely, broken into stages, checked like built-ins."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from derive import derive
from derive.errors import DeriveError
from checks.gradcheck import check, load_module, worst
from catalogue.spec import load_spec
from lstm_derive.build import render_cell

EXAMPLES = sorted((ROOT / "examples").glob("*.toml")) + [ROOT / "tests" / "specs" / "every_kind.toml"]
HEADER = """
name = "cell"
inputs = ["x"]
state = ["h"]
output = "h"
[params]
W = ["H", "D"]
U = ["H", "H"]
b = ["H"]
"""


LN_HEADER = HEADER + 'g = ["H"]\nk = ["D"]\n'


def spec(tmp_path, body, header=HEADER):
    path = tmp_path / "cell.toml"
    path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return path


def stages(*pairs):
    return "".join(f'[[stages]]\nname = "{n}"\nexpr = "{e}"\n' for n, e in pairs)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_match_finite_differences(path):
    entry, warnings = load_spec(path)
    assert warnings == []
    module = load_module(render_cell(entry)[f"{entry.name}.py"], entry.name)
    errors = check(module, 3, 2, 4, 3, seed=5)
    assert worst(errors.values()) < 1e-6, errors


def test_compound_expressions_become_the_finest_stages(tmp_path):
    entry, _ = load_spec(spec(tmp_path, stages(("h", "tanh(W @ x + U @ h_prev + b) * (1 - h_prev)"))))
    cell = entry.cell
    kinds = [(s.name, s.kind.value) for s in cell.stages]
    assert kinds == [("h_1", "affine"), ("h_2", "tanh"), ("h_3", "one_minus"), ("h", "mul")]
    assert cell.stages[0].weights == ("W", "U") and cell.stages[0].bias == "b"


def test_minimal_gated_unit_matches_a_hand_written_step(tmp_path):
    """The MGU example's first step against the equations written out here."""
    import numpy as np
    entry, _ = load_spec(ROOT / "examples" / "mgu.toml")
    module = load_module(render_cell(entry)["mgu.py"], "mgu")
    p = module.init_params(3, 2, seed=1)
    x = np.random.default_rng(1).normal(size=(1, 1, 3))
    h0 = np.random.default_rng(2).normal(size=(1, 2))
    hs, _, _ = module.forward(p, x, {"h": h0})
    f = 1 / (1 + np.exp(-(x[0] @ p["W_f"].T + h0 @ p["U_f"].T + p["b_f"])))
    n = np.tanh(x[0] @ p["W_n"].T + (f * h0) @ p["U_n"].T + p["b_n"])
    np.testing.assert_allclose(hs[0], (1 - f) * h0 + f * n, rtol=1e-12, equal_nan=False)


BAD = [
    ("name = \n", "TOML syntax error", "line 1"),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b + q)")), "unknown name 'q'", "stage 'h'"),
    (HEADER + stages(("h", "swish(W @ x + U @ h_prev + b)")), "unknown function 'swish'", "stage 'h'"),
    (HEADER + stages(("h", "k * tanh(W @ x + U @ h_prev + b)"), ("k", "sigmoid(h_prev)")),
     "uses stage 'k' before it is defined", "stage 'h'"),
    (HEADER + stages(("k", "tanh(W @ x + U @ h_prev + b)"), ("k", "h_prev"), ("h", "k")),
     "is defined twice", "stage 'k'"),
    (HEADER + stages(("h", "tanh(W @ x + U @ h + b)")), "refers to itself", "h_prev"),
    (HEADER + stages(("k", "tanh(W @ x + U @ h_prev + b)")), "state variable 'h' is never updated", ""),
    (HEADER.replace('output = "h"', 'output = "y"') + stages(("h", "tanh(W @ x + U @ h_prev + b)")),
     "output 'y' is not defined", ""),
    (HEADER + stages(("h", "tanh(W @ h_prev + U @ h_prev + b)")),
     "shape mismatch: W is H x D but 'h_prev' has size H", "stage 'h'"),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b) * x")), "shape mismatch", "stage 'h'"),
    (HEADER + stages(("h", "__import__('os').system('touch PWNED')")), "only plain function calls", ""),
    (HEADER + stages(("h", "__import__('os')")), "unknown function '__import__'", ""),
    (HEADER + stages(("h", "h_prev.__class__")), "attribute access is not allowed", ""),
    (HEADER + stages(("h", "h_prev[0]")), "unsupported syntax: Subscript", ""),
    (HEADER + stages(("h", "(lambda: 0)()")), "only plain function calls", ""),
    (HEADER + stages(("h", "h_prev ** 2")), "operator Pow is not allowed", ""),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b) + 1 +")), "syntax error", "stage 'h'"),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b) + b")), "is used twice", "stage 'h'"),
    ("", "spec is empty", ""),
    ("colour = 'red'\n" + HEADER, "unknown key 'colour'", ""),
    (HEADER.replace('state = ["h"]', "state = []") + stages(("h", "h")), "at least one recurrent state", ""),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b) / 0")), "division by zero", ""),
    (HEADER + stages(("h", "2 * 3")), "is a constant", ""),
    (HEADER + stages(("h", "1e400 * tanh(W @ x + U @ h_prev + b)")), "number 1e400 is out of range", "stage 'h'"),
    (HEADER + stages(("h", "1e10 * 1e10 * tanh(W @ x + U @ h_prev + b)")), "out of range", "stage 'h'"),
    (HEADER + stages(("h", "tanh(W @ x + U @ h_prev + b) / 1e-300")), "out of range", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, g))")), "exactly three arguments", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, W, g))")), "must be a vector parameter", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, g, 2))")), "must be a vector parameter", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, g, k))")), "shape mismatch", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(3, g, b))")), "layer_norm of a constant", "stage 'h'"),
    (LN_HEADER + stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, g, g))")), "is used twice", "stage 'h'"),
]


@pytest.mark.parametrize("text, message, where", BAD, ids=[b[1][:30] for b in BAD])
def test_mistakes_are_named_with_file_and_stage(tmp_path, text, message, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DeriveError) as err:
        load_spec(path)
    assert message in str(err.value) and where in str(err.value)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_absurdly_large_and_deeply_nested_specs(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(HEADER + "# " + "x" * 70000 + "\n")
    with pytest.raises(DeriveError, match="too large"):
        load_spec(path)
    deep = "tanh(" * 60 + "h_prev" + ")" * 60
    with pytest.raises(DeriveError, match="nested"):
        load_spec(spec(tmp_path, stages(("h", deep))))


def test_unused_parameters_are_a_warning(tmp_path):
    body = HEADER + 'V = ["H", "H"]\n' + stages(("h", "tanh(W @ x + U @ h_prev + b)"))
    path = tmp_path / "warn.toml"
    path.write_text(body)
    entry, warnings = load_spec(path)
    assert warnings == [f"{path}: parameter 'V' is never used"]
    assert "V" not in dict(entry.cell.params())


def test_spec_code_is_never_run_from_the_command_line(tmp_path):
    path = spec(tmp_path, stages(("h", "__import__('os').system('touch PWNED')")))
    result = subprocess.run([sys.executable, "-m", "derive", "code", str(path), "--out", "out.py"],
                            cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out.py").exists()


def test_every_command_takes_a_spec_path(tmp_path):
    path = str(ROOT / "examples" / "mgu.toml")
    for args in (["show", path], ["check", path], ["code", path, "--out", str(tmp_path / "m.py")]):
        result = subprocess.run([sys.executable, "-m", "derive", *args], capture_output=True,
                                text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, cwd=tmp_path)
        assert result.returncode == 0, result.stderr


EXAMPLE_TEXT = (ROOT / "examples" / "mgu.toml").read_text()


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=400),
    st.tuples(st.integers(0, len(EXAMPLE_TEXT)), st.integers(0, 40), st.text(max_size=20)).map(
        lambda m: EXAMPLE_TEXT[:m[0]] + m[2] + EXAMPLE_TEXT[m[0] + m[1]:]),
))
def test_random_and_mutated_specs_never_crash(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "spec.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if False else \
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        entry, _ = load_spec(path)
    except DeriveError as err:
        assert "\n" not in str(err)
        return
    derive(entry.cell)   # a spec that loads must also derive


def chain_spec(tmp_path, n, stage, extra_params=""):
    """A spec whose stages a1..an each apply `stage` (formatted with i and i-1) to a0."""
    body = HEADER + extra_params + stages(("a0", "sigmoid(W @ x + U @ h_prev + b)"))
    body += stages(*((f"a{i}", stage.format(i=i, j=i - 1)) for i in range(1, n + 1)))
    path = tmp_path / f"chain{n}.toml"
    path.write_text(body + stages(("h", f"tanh(a{n}) * h_prev")))
    return path


def test_specs_whose_jacobian_paths_multiply_are_refused_at_once(tmp_path):
    import time
    weights = "".join(f'U{i} = ["H", "H"]\nV{i} = ["H", "H"]\n' for i in range(1, 13))
    start = time.monotonic()
    for path in (chain_spec(tmp_path, 12, "tanh(U{i} @ a{j} + V{i} @ a{j})", weights),  # 2**12 paths
                 chain_spec(tmp_path, 14, "a{j} + tanh(a{j})")):                       # 2**14 terms
        with pytest.raises(DeriveError, match=r"dh\[t\]/dh\[t-1\] has \d+ paths through the stages"):
            load_spec(path)
    assert time.monotonic() - start < 5


@pytest.mark.skipif(shutil.which("dot") is None, reason="a new spec's stage graph needs Graphviz")
def test_a_long_chain_renders_in_polynomial_time(tmp_path):
    """The issue's chain: 5 s at 8 stages, minutes at 16 when gate detection multiplied
    out the whole Jacobian; now bounded (long chains are limited by MAX_STAGES alone).
    On the PATH only Graphviz, which lays out the new spec's stage graph."""
    path = chain_spec(tmp_path, 16, "sigmoid(a{j}*a{j} + h_prev*a0)")
    result = subprocess.run([sys.executable, "-m", "derive", "latex", str(path), "--out", "c.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": str(Path(shutil.which("dot")).parent)})
    assert result.returncode == 0, result.stderr
    assert r"\operatorname{diag}" in (tmp_path / "c.tex").read_text()


def test_an_endless_file_is_read_only_up_to_the_size_limit():
    with pytest.raises(DeriveError, match="spec is too large"):
        load_spec("/dev/zero")   # read_bytes() would never return


def test_layer_norm_in_a_spec_is_the_layer_norm(tmp_path):
    """tanh(LN(W x + U h; g, b)) from a spec: its module against the equations written out here
    (mean and biased variance over the row, eps 1e-5), and finite differences."""
    import numpy as np
    entry, warnings = load_spec(spec(tmp_path, stages(("h", "tanh(layer_norm(W @ x + U @ h_prev, g, b))")),
                                     header=HEADER + 'g = ["H"]\n'))
    assert warnings == [] and {s.kind.value for s in entry.cell.stages} >= {"mean", "rsqrt", "normalised"}
    module = load_module(render_cell(entry)[f"{entry.name}.py"], entry.name)
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=v.shape) for k, v in module.init_params(3, 4).items()}
    xs, h = rng.normal(size=(2, 2, 3)), np.zeros((2, 4))
    for x, got in zip(xs, module.forward(params, xs)[0]):
        a = x @ params["W"].T + h @ params["U"].T
        mean, var = a.mean(-1, keepdims=True), a.var(-1, keepdims=True)
        h = np.tanh(params["g"] * (a - mean) / np.sqrt(var + 1e-5) + params["b"])
        assert np.max(np.abs(got - h)) < 1e-12
    assert worst(check(module, 3, 2, 4, 3, seed=5).values()) < 1e-6


def test_stage_names_with_several_underscores_render(tmp_path):
    """`n_a_b` is n^{a,b}: a second underscore inside a superscript is a double subscript,
    which LaTeX rejects and the HTML's MathML conversion raises on (it did before)."""
    body = stages(("n_a_b", "tanh(W @ x + U @ (h_prev * h_prev) + b)"), ("h", "n_a_b * h_prev"))
    entry, _ = load_spec(spec(tmp_path, body))
    files = render_cell(entry)
    tex, html = files["cell.tex"], files["cell.html"]
    assert r"n^{a,b}_{t}" in tex and "n^{a_b" not in tex and "a^{n_a" not in tex
    assert "<math" in html


MGU = """
name = "mgu_probe"
inputs = ["{x}"]
state = ["{h}"]
output = "{h}"
[params]
{W} = ["H", "D"]
U = ["H", "H"]
b = ["H"]
[[stages]]
name = "{n}"
expr = "tanh({W} @ {x} + U @ {h}_prev + b)"
[[stages]]
name = "{h}"
expr = "0.5 * {h}_prev + 0.5 * {n}"
"""
NAMES = dict(x="x", h="h", W="W", n="n")


@pytest.mark.parametrize("role, name", [
    ("n", "lambda"), ("n", "None"), ("n", "B"), ("n", "d_h"), ("n", "Z_f"), ("n", "f_seq"), ("n", "dxs"),
    ("n", "range"), ("n", "numpy"), ("n", "MgU_Probe"), ("W", "xs"), ("W", "np"), ("h", "params"),
    ("h", "t"), ("x", "cache"), ("x", "u"),
    # printed as n^{,,x,} in the document: one part per underscore
    ("n", "n__x"), ("n", "n_"), ("W", "W__f"), ("h", "h_1_")])
def test_names_the_generated_code_uses_itself_are_refused(tmp_path, role, name):
    # Each of these once generated a module that crashed (NameError on 'us', a stage 'B'
    # overwriting the batch size) or, worse, ran and returned wrong gradients (a stage
    # 'd_h' read as the adjoint of h).
    path = tmp_path / "cell.toml"
    path.write_text(MGU.format(**{**NAMES, role: name}))
    with pytest.raises(DeriveError, match=f"{name!r}|'x'"):
        load_spec(path)


def _identifiers(text, own):
    """Names a module binds or reads, leaving out what cannot meet a cell's names: a
    comprehension's or lambda's own variables, and helper functions (such as `_sigmoid(z)`)
    that read none of the cell's names (a built-in cell's name that is reserved, slstm's
    `w`, counts as the template's)."""
    import ast
    from catalogue.spec import reserved
    own = {o for o in own if not reserved(o)}
    tree = ast.parse(text)

    def names(node):
        return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                | {n.arg for n in ast.walk(node) if isinstance(n, ast.arg)})
    local = {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension)
             for n in ast.walk(c.target) if isinstance(n, ast.Name)}
    local |= {a.arg for f in ast.walk(tree) if isinstance(f, ast.Lambda) for a in f.args.args}
    for f in ast.walk(tree):
        if isinstance(f, ast.FunctionDef) and not (names(f) - local) & own:
            local |= names(f)
    # a module's own constants (KEPT, DERIVED) are no helper's locals, wherever they are read
    constants = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
    return (names(tree) - local) | constants


def test_every_name_in_a_generated_module_is_reserved_or_its_cells_own():
    # What makes the refusal above complete: a cell's own names (values, parameters, their
    # _prev) are the only unreserved names a generated module may use.
    from catalogue.cells import CELLS
    from catalogue.spec import reserved
    entries = {**{n: e for n, e in CELLS.items()}, **{p.stem: load_spec(p)[0] for p in EXAMPLES[:-1]}}
    for name, entry in entries.items():
        cell = entry.cell
        own = ({s.name for s in cell.stages} | {p for p, _ in cell.params()} | set(cell.input_names)
               | set(cell.state_names) | {f"{s}_prev" for s in cell.state_names})
        folder = ROOT / ("generated" if name in CELLS else "examples")
        for sub in ("", "torch/", "jax/"):
            path = folder / f"{sub}{name}.py"
            if path.exists():
                stray = {i for i in _identifiers(path.read_text(), own) - own
                         if not reserved(i) and not i.startswith("_")}
                assert not stray, (path, sorted(stray))


@pytest.mark.parametrize("math", [
    r"$\input{/etc/hostname}$", r"$^^5cinput{/etc/hostname}$", r"$\csname input\endcsname{/etc/hostname}$",
    r"$\catcode`\^^M=13$", r"$x % comment$", r"$x}\input{/etc/hostname}{$", "costs $5",
    # malformed: the HTML page's converter failed on these, an 'internal error'
    r"$\left( x$", "$x^$", r"$\sqrt$"])
def test_spec_prose_cannot_reach_tex_beyond_mathematics(tmp_path, math):
    # The description and intuition go into the .tex as written between $...$; before this
    # check `$\input{/etc/hostname}$` put the machine's file into the PDF.
    path = spec(tmp_path, f'''
        [[stages]]
        name = "h"
        expr = "tanh(W @ x + U @ h_prev + b)"
        ''', header=HEADER.replace('name = "cell"', f"name = \"cell\"\nintuition = '''{math}'''"))
    with pytest.raises(DeriveError, match="intuition"):
        load_spec(path)


def test_spec_prose_keeps_ordinary_mathematics(tmp_path):
    math = r"$h_t = (1 - f_t) \odot h_{t-1} + f_t n_t$, $\sigma'(a) = \sigma(a)\,(1 - \sigma(a))$, $\{W, U\}$"
    path = spec(tmp_path, '''
        [[stages]]
        name = "h"
        expr = "tanh(W @ x + U @ h_prev + b)"
        ''', header=HEADER.replace('name = "cell"', f"name = \"cell\"\nintuition = '''{math}'''"))
    assert load_spec(path)[0].intuition == (math,)
