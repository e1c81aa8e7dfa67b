"""`compare --against` on code written in common styles, through layouts and step contracts.

tests/styles/ holds implementations written for these tests in the styles of published
code (each file's docstring describes its style): course step functions
(course_step_lstm.py, also its sequence functions; course_rnn.py, the plain RNN), a
batched gist with one stacked weight matrix (gist_lstm.py), a GRU as step functions
(step_gru.py, a three-line LAYOUT) and a from-scratch tutorial's one sample in column
vectors with a weight per gate on [h; x] (tutorial_lstm.py, a five-line LAYOUT), and
a vectorised LSTM on (features, batch, time) arrays in columns (columns_lstm.py, three).
Correct versions pass in float64 and float32; each bug class is seeded by one
replacement in a copy, and the test checks the exact line compare prints for it.
"""
import numpy as np
import pytest

from conftest import ROOT
from lstm_derive.cli import main

STYLES = ROOT / "tests" / "styles"
SOURCES = {name: (STYLES / f"{name}.py").read_text()
           for name in ("course_step_lstm", "gist_lstm", "step_gru", "tutorial_lstm", "course_rnn", "columns_lstm")}
# style: (cell, source, --layout)
STYLE = {"course-step": ("lstm", "course_step_lstm", "course-step"),
         "course-seq": ("lstm", "course_step_lstm", "course-seq"),
         "gist": ("lstm", "gist_lstm", "gist"),
         "gru-step": ("gru", "step_gru", None),
         "tutorial": ("lstm", "tutorial_lstm", None),
         "course-rnn-step": ("rnn", "course_rnn", "course-rnn-step"),
         "course-rnn-seq": ("rnn", "course_rnn", "course-rnn-seq"),
         "columns": ("lstm", "columns_lstm", None)}


def run(capsys, tmp_path, style, text, *more):
    cell, _, layout = STYLE[style]
    path = tmp_path / "theirs.py"
    path.write_text(text)
    code = main(["compare", cell, "--against", str(path), *(["--layout", layout] if layout else []), *more])
    out = capsys.readouterr()
    return code, out.out, out.err


def seeded(style, *changes):
    text = SOURCES[STYLE[style][1]]
    for old, new in changes:
        assert text.count(old) == 1, f"mutation site {old!r} not unique"
        text = text.replace(old, new)
    return text


def float32(style):
    """The same code computing in float32 throughout."""
    if style == "gist":
        text = SOURCES["gist_lstm"].replace("np.zeros((", "np.zeros(dtype=np.float32, shape=(")
        for name in ("IFOG", "IFOGf", "WLSTM", "Hin", "C"):
            text = text.replace(f"np.zeros({name}.shape)", f"np.zeros({name}.shape, np.float32)")
        return seeded_text(text, [
            ("        n, b, input_size = X.shape\n",
             "        X, WLSTM = X.astype(np.float32), WLSTM.astype(np.float32)\n"
             "        c0 = None if c0 is None else c0.astype(np.float32)\n"
             "        h0 = None if h0 is None else h0.astype(np.float32)\n        n, b, input_size = X.shape\n"),
            ("        dHout = dHout_in.copy()",
             "        dHout = dHout_in.astype(np.float32)\n        dcn = None if dcn is None else dcn.astype(np.float32)"
             "\n        dhn = None if dhn is None else dhn.astype(np.float32)")])
    name = STYLE[style][1]
    if name == "columns_lstm":
        return seeded_text(SOURCES[name], [
            ("    D, B, T = X.shape\n", "    X, W, b, h0, c0 = (np.float32(v) for v in (X, W, b, h0, c0))\n"
             "    D, B, T = X.shape\n"),
            ("    steps, W, D, H = cache\n", "    steps, W, D, H = cache\n    dhs = np.float32(dhs)\n")])
    if name == "tutorial_lstm":
        return seeded_text(SOURCES[name], [
            ("    z = np.vstack((h_prev, x))\n", "    x, h_prev, c_prev = (np.float32(v) for v in (x, h_prev, c_prev))\n"
             "    p = {k: np.float32(v) for k, v in p.items()}\n    z = np.vstack((h_prev, x))\n"),
            ("    H = c.shape[0]\n", "    H = c.shape[0]\n    dh_next, dc_next = np.float32(dh_next), np.float32(dc_next)\n")])
    forward = {"course_step_lstm": ("lstm_step_forward", "x, prev_h, prev_c, Wx, Wh, b"),
               "step_gru": ("gru_step_forward", "x, prev_h, Wx, Wh, b"),
               "course_rnn": ("rnn_step_forward", "x, prev_h, Wx, Wh, b")}[name]
    backward = {"course_step_lstm": ("lstm_step_backward", "dnext_h, dnext_c"),
                "step_gru": ("gru_step_backward", "dnext_h"),
                "course_rnn": ("rnn_step_backward", "dnext_h")}[name]
    changes = []
    for (fn, args), extra in ((forward, ""), (backward, ", cache")):
        head = f"def {fn}({args}{extra}):\n"
        cast = f"    {args}{',' if ',' not in args else ''} = (np.float32(v) for v in ({args},))\n"
        changes.append((head, head + cast))
    return seeded_text(SOURCES[name], changes)


def seeded_text(text, changes):
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("style", STYLE)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_code_in_every_style_agrees(style, dtype, tmp_path, capsys):
    text = SOURCES[STYLE[style][1]] if dtype == "float64" else float32(style)
    code, out, err = run(capsys, tmp_path, style, text)
    assert code == 0 and not err, out + err
    assert f"(your results are {dtype}, so the {dtype} defaults" in out
    assert "DIFFERS" not in out
    skipped = [line for line in out.splitlines() if line.startswith("not checked: ")]
    last = out.rstrip().splitlines()[-1]
    assert last.endswith(f"agree on everything compared ({len(skipped)} not checked, listed above)"
                         if skipped else "and the derivation agree"), last


def test_a_contract_without_optional_parts_says_what_it_did_not_check(tmp_path, capsys):
    code, out, _ = run(capsys, tmp_path, "course-seq", SOURCES["course_step_lstm"])
    assert code == 0
    for line in ("given as your code takes it: c_0 = 0 (your forward takes no c0)",
                 "given as your code takes it: no gradient of c_T from after the last step (your backward takes no dcT)",
                 "not checked: c_T (your forward returns no cT)",
                 "not checked: c_0 (your backward returns no dc0)"):
        assert line in out.splitlines(), out
    assert "\nc_0 " not in out and "\nh_0 " in out and "\nW_o " in out


EXACTLY = "  hint: yours matches the derivation exactly when "
# name: (style, [(old, new), ...], the exact lines compare must print)
BUGS = {
    "1 carried d_c dropped, final-state gradient added separately": (
        "gist", [("                dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]\n", "                pass\n")],
        [EXACTLY + "d_c drops the gradient carried back from step t+1 (B3: d_c_prev[t+1]) at every step "
         "but the last (only the final-state gradient reaches it)"]),
    "1 carried d_h dropped": (
        "gist", [("                dHout[t - 1, :] += dHin[t, :, input_size + 1:]", "                pass")],
        [EXACTLY + "d_h drops the gradient carried back from step t+1 (B1: d_h_prev[t+1]) at every step "
         "but the last (only the final-state gradient reaches it)"]),
    "2 sigmoid derivative of an activated gate": (
        "course-step", [("dao = do * o * (1 - o)", "dao = do * sigmoid(o) * (1 - sigmoid(o))")],
        [EXACTLY + "the factor o*(1 - o) of d_a_o (B10: d_o*o*(1 - o)) is evaluated at sigmoid(o), the "
         "activation applied twice, instead of at o"]),
    "2 a(1-a) of the pre-activation": (
        "course-step", [("daf = df * f * (1 - f)", "af = np.log(f / (1 - f))\n    daf = df * af * (1 - af)")],
        [EXACTLY + "the factor f*(1 - f) of d_a_f (B13: d_f*f*(1 - f)) is evaluated at a_f, the "
         "pre-activation, instead of at f"]),
    "2 1 - tanh^2 of tanh c": (
        "course-step", [("(1 - tanh_c ** 2)", "(1 - np.tanh(tanh_c) ** 2)")],
        [EXACTLY + "the factor 1 - k**2 of d_c (B3: d_k*(1 - k**2)) is evaluated at tanh(k), the "
         "activation applied twice, instead of at k"]),
    "2 1 - c^2 where 1 - tanh(c)^2 belongs": (
        "course-step", [("(1 - tanh_c ** 2)", "(1 - next_c ** 2)")],
        [EXACTLY + "the factor 1 - k**2 of d_c (B3: d_k*(1 - k**2)) is evaluated at c, the pre-activation, "
         "instead of at k"]),
    "2 dh where dc belongs": (
        "course-step", [("di, df, dg = dc * g, dc * prev_c, dc * i", "di, df, dg = dnext_h * g, dc * prev_c, dc * i")],
        [EXACTLY + "d_i reads d_h where d_n belongs (B8: d_n*g)"]),
    "2 the carried gradient counted twice": (
        "course-step", [("dc = dnext_c + dnext_h", "dc = 2 * dnext_c + dnext_h")],
        [EXACTLY + "d_c counts its branch 'next step' twice (B3: d_c_prev[t+1])"]),
    "2 GRU: 1 - z where z belongs in dh_prev": (
        "gru-step", [("dprev_h = dnext_h * z + ds * r", "dprev_h = dnext_h * (1 - z) + ds * r")],
        [EXACTLY + "d_h_prev reads v = one_minus(z) where z belongs (B12: d_h_kept*z)"]),
    "2 part of a sigmoid derivative left out": (
        "tutorial", [('"o": do * o * (1 - o)', '"o": do * (1 - o)')],
        [EXACTLY + "the factor o*(1 - o) of d_a_o lacks its part o, leaving 1 - o (B10: d_o*o*(1 - o))"]),
    "2 the forget factor left out of dc_prev": (
        "tutorial", [("return dz[:H], dc * f, grads", "return dz[:H], dc, grads")],
        [EXACTLY + "d_c_prev lacks the factor (f) of its branch 'm' (B14: d_m*f)"]),
    "3 c_t where c_t-1 belongs, one sample in columns": (
        "tutorial", [("df = dc * c_prev", "df = dc * c")],
        [EXACTLY + "d_f reads c, this step's new value, where c_prev belongs (B9: c_prev*d_m)"]),
    "2 a plain RNN's 1 - tanh^2 of tanh": (
        "course-rnn-seq", [("da = dnext_h * (1 - next_h ** 2)", "da = dnext_h * (1 - np.tanh(next_h) ** 2)")],
        [EXACTLY + "the factor 1 - h**2 of d_a (B2: d_h*(1 - h**2)) is evaluated at tanh(h), the activation "
         "applied twice, instead of at h"]),
    "3 c_t where c_t-1 belongs": (
        "course-step", [("di, df, dg = dc * g, dc * prev_c, dc * i", "di, df, dg = dc * g, dc * next_c, dc * i")],
        [EXACTLY + "d_f reads c, this step's new value, where c_prev belongs (B9: c_prev*d_m)"]),
    "3 the weight gradient reads the cache of step t-1": (
        "gist", [("            dWLSTM += np.dot(Hin[t].transpose(), dIFOG[t])",
                  "            dWLSTM += np.dot(Hin[t - 1].transpose(), dIFOG[t])")],
        [EXACTLY + "the weight gradients read x, h_prev of step t-1 instead of step t's (the cache of the "
         "wrong step)"]),
    "3 the output gate reads only this step's loss gradient": (
        "gist", [("            dIFOGf[t, :, 2 * d:3 * d] = tanhCt * dHout[t]",
                  "            dIFOGf[t, :, 2 * d:3 * d] = tanhCt * dHout_in[t]")],
        [EXACTLY + "d_o reads only this step's loss gradient dl_t/dh (dhs[t]) where the whole d_h belongs "
         "(B6: d_h*k)"]),
    "5 g and o blocks swapped, features first in columns": (
        "columns", [("dc * i * (1 - g ** 2),\n                        dh * tc * o * (1 - o)))",
                     "dh * tc * o * (1 - o),\n                        dc * i * (1 - g ** 2)))")],
        [EXACTLY + "the gradients d_a_g and d_a_o are swapped where they are used (their blocks exchanged)"]),
    "4 GRU: z where 1 - z belongs": (
        "gru-step", [("dn = dnext_h * (1 - z)", "dn = dnext_h * z")],
        [EXACTLY + "d_h_cand reads z where v = one_minus(z) belongs (B5: d_h_new*v)"]),
    "4 b_i given the forget gate's delta": (
        "course-step", [("db = da.sum(axis=0)", "db = da.sum(axis=0)\n    db[:len(daf[0])] = daf.sum(axis=0)")],
        [EXACTLY + "d_b_i is computed from d_a_f instead of d_a_i (P10: sum d_a_i)"]),
    "5 o and g blocks swapped in the backward": (
        "course-step", [("da = np.hstack((dai, daf, dao, dag))", "da = np.hstack((dai, daf, dag, dao))")],
        [EXACTLY + "the gradients d_a_g and d_a_o are swapped where they are used (their blocks exchanged)"]),
    "5 i and f mixed up in the forward": (
        "gist", [("C[t] = IFOGf[t, :, d:2 * d] * prevc + IFOGf[t, :, :d] * IFOGf[t, :, 3 * d:]",
                  "C[t] = IFOGf[t, :, :d] * prevc + IFOGf[t, :, d:2 * d] * IFOGf[t, :, 3 * d:]")],
        ["the forward pass already differs (hs, h_T, c_T): fix the forward first; gradients of a different "
         "function cannot be compared",
         "  hint: your forward computes a_f with a_i's parameters, a_i with a_f's parameters (the gate blocks "
         "of a_f, a_i, a_g, a_o in another order)"]),
    "6 parameter gradients of one step (= for +=)": (
        "gist", [("            dWLSTM += np.dot(Hin[t].transpose(), dIFOG[t])",
                  "            dWLSTM = np.dot(Hin[t].transpose(), dIFOG[t])")],
        [EXACTLY + "the parameter gradients are taken from the first step (t=0) only, not summed over time steps",
         "  => every single step is right, but gradients disagree once 2 steps are chained"]),
    "6 sequence functions keep the last step's gradients": (
        "course-seq", [("dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t", "dWx, dWh, db = dWx_t, dWh_t, db_t")],
        [EXACTLY + "the parameter gradients are taken from the first step (t=0) only, not summed over time steps"]),
    "6 only the bias gradient of one step": (
        "course-seq", [("dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t", "dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db_t")],
        [EXACTLY + "the gradients of b_f, b_i, b_g, b_o are taken from the first step (t=0) only, not summed over "
         "time steps"]),
    "7 no tanh on the cell output": (
        "course-step", [("tanh_c = np.tanh(next_c)", "tanh_c = next_c")],
        ["  hint: your forward leaves out tanh in k = tanh(c) (F12): k = c"]),
    "7 the cell output from the previous step's cell state": (
        "course-step", [("tanh_c = np.tanh(next_c)", "tanh_c = np.tanh(prev_c)")],
        ["  hint: your forward reads c_prev where c belongs in k = tanh(c) (F12)"]),
    "7 GRU whose z gates the other side": (
        "gru-step", [("next_h = (1 - z) * n + z * prev_h", "next_h = z * n + (1 - z) * prev_h")],
        ["  hint: your forward exchanges z and v = one_minus(z) where they are used (z gates the other side)"]),
    "8 two bugs": (
        "course-step", [("dao = do * o * (1 - o)", "dao = do * sigmoid(o) * (1 - sigmoid(o))"),
                        ("di, df, dg = dc * g, dc * prev_c, dc * i", "di, df, dg = dc * g, dc * next_c, dc * i")],
        ["  hint: 2 separate bugs together reproduce all of your numbers:",
         "  hint: (1) the factor o*(1 - o) of d_a_o (B10: d_o*o*(1 - o)) is evaluated at sigmoid(o), the "
         "activation applied twice, instead of at o",
         "  hint: (2) d_f reads c, this step's new value, where c_prev belongs (B9: c_prev*d_m)"]),
    "8 a bug and a scaled stacked bias gradient": (
        "course-step", [("dao = do * o * (1 - o)", "dao = do * sigmoid(o) * (1 - sigmoid(o))"),
                        ("db = da.sum(axis=0)", "db = 0.5 * da.sum(axis=0)")],
        ["  hint: 2 separate bugs together reproduce all of your numbers:",
         "  hint: (2) d_b_f, d_b_i, d_b_g, d_b_o each is the derived gradient scaled by 0.5 (on top of that)"]),
}


@pytest.mark.parametrize("name", BUGS)
def test_each_bug_class_is_named_in_one_line(name, tmp_path, capsys):
    style, changes, lines = BUGS[name]
    code, out, err = run(capsys, tmp_path, style, seeded(style, *changes))
    assert code == 1 and not err, out + err
    assert "DISAGREE" in out
    for line in lines:
        assert line in out.splitlines(), f"{name}: {line!r} not in\n{out}"


def test_a_bug_in_float32_code_is_still_named(tmp_path, capsys):
    text = float32("course-step").replace("da = np.hstack((dai, daf, dao, dag))", "da = np.hstack((dai, daf, dag, dao))")
    code, out, _ = run(capsys, tmp_path, "course-step", text)
    assert code == 1 and "your results are float32" in out
    assert EXACTLY + "the gradients d_a_g and d_a_o are swapped where they are used (their blocks exchanged)" \
        in out.splitlines(), out


def test_a_consistent_code_under_a_wrong_gate_order_is_told_apart(tmp_path, capsys):
    text = SOURCES["course_step_lstm"] + '\nLAYOUT = {"preset": "course-step", "gates": "ifgo"}\n'
    path = tmp_path / "theirs.py"
    path.write_text(text)
    code = main(["compare", "lstm", "--against", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert ("  hint: your forward computes a_g with a_o's parameters, a_o with a_g's parameters (the gate "
            "blocks of a_f, a_i, a_g, a_o in another order); its gradients are right for that forward: the "
            "code is consistent, and the layout's gate order is not your code's") in out.splitlines(), out


@pytest.mark.parametrize("layout, words", [
    ("'nope'", "layout: LAYOUT names no preset 'nope'"),
    ("{'preset': 'course-step', 'gates': 'ifxg'}", "needs W_x, which lstm does not have"),
    ("{'preset': 'course-step', 'colour': 1}", "layout: unknown key 'colour'"),
    ("{'preset': 'course-step', 'forward': 'f(x) ->'}", "has no function f() (named by its layout)"),
    ("{'preset': 'course-step', 'forward': 'lstm_step_forward(x, q) -> h, c, cache'}",
     "lstm_step_forward() has the argument 'q', which is none of"),
    ("{'preset': 'course-step', 'forward': 'lstm_step_forward x'}", "forward must look like"),
    ("{'preset': 'course-step', 'batch': 'diagonal'}", "layout: batch must be one of"),
])
def test_a_bad_layout_is_one_line(layout, words, tmp_path, capsys):
    path = tmp_path / "theirs.py"
    path.write_text(SOURCES["course_step_lstm"] + f"\nLAYOUT = {layout}\n")
    code = main(["compare", "lstm", "--against", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_a_wrongly_shaped_step_result_names_the_function(tmp_path, capsys):
    text = seeded("course-step", ("return dx, dprev_h, dprev_c, dWx, dWh, db", "return dx, dprev_h, dprev_c, dWx.T, dWh, db"))
    code, _, err = run(capsys, tmp_path, "course-step", text)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "theirs.py: lstm_step_backward() returned dWx of shape (8, 3), expected (3, 8)" in err, err


def test_layouts_pack_and_unpack_are_inverse():
    from checks.layout import PRESETS, pack, unpack
    rng = np.random.default_rng(0)
    params = {f"{p}_{g}": rng.normal(size=s) for g in "fiog" for p, s in (("W", (2, 3)), ("U", (2, 2)), ("b", (2,)))}
    shapes = {k: v.shape for k, v in params.items()}
    for name in ("course-step", "gist", "torch"):
        packed = pack(PRESETS[name], params)
        back = unpack(PRESETS[name], packed, shapes)
        assert set(back) == set(params) and all(np.array_equal(back[k], params[k]) for k in params)
    gist = pack(PRESETS["gist"], params)["WLSTM"]   # rows [1, x, h], columns i, f, o, g
    assert gist.shape == (6, 8) and np.array_equal(gist[0, 2:4], params["b_f"])
    assert np.array_equal(gist[1:4, 4:6], params["W_o"].T) and np.array_equal(gist[4:, 6:], params["U_g"].T)


README_RUNS = {   # the README's two examples: the file, its style and the bug it describes
    "rnn_layers.py": ("course-step", [("dao = do * o * (1 - o)", "dao = do * sigmoid(o) * (1 - sigmoid(o))")]),
    "lstm_gist.py": ("gist", [("                dC[t - 1] += IFOGf[t, :, d:2 * d] * dC[t]\n", "                pass\n")]),
}


@pytest.mark.parametrize("file_name", README_RUNS)
def test_the_readme_shows_what_compare_prints(file_name, tmp_path, capsys, monkeypatch):
    """Every line of the README's example output (but '...') is printed by that run."""
    import re
    readme = (ROOT / "README.md").read_text()
    style, changes = README_RUNS[file_name]
    command = f"$ lstm-derive compare lstm --against {file_name} --layout {style}"
    block = re.search(re.escape(command) + r"\n(.*?)```", readme, flags=re.S).group(1)
    (tmp_path / file_name).write_text(seeded(style, *changes))
    monkeypatch.chdir(tmp_path)
    code = main(["compare", "lstm", "--against", file_name, "--layout", style])
    printed = capsys.readouterr().out.splitlines()
    shown = [line for line in block.splitlines() if line != "..."]
    assert code == 1 and len(shown) > 8
    assert [line for line in shown if line not in printed] == []


LOSS_IN_BACKWARD = {   # extra functions in the user's file, and what its LAYOUT says about them
    "sum": ("""
def lstm_backward_sum(caches):
    N, H = caches[0][1].shape
    return lstm_backward(np.ones((N, len(caches), H)) * SCALE, caches)
""", '{"preset": "course-seq", "loss": "sum", "backward": "lstm_backward_sum(cache) -> dxs, dh0, dWx, dWh, db"}',
        "given as your code takes it: your backward's own loss, sum of every h_t"),
    "last": ("""
def lstm_backward_last(dh_last, caches):
    N, H = dh_last.shape
    dh = np.zeros((N, len(caches), H))
    dh[:, -1] = dh_last * SCALE
    return lstm_backward(dh, caches)
""", '{"preset": "course-seq", "backward": "lstm_backward_last(dh_last, cache) -> dxs, dh0, dWx, dWh, db"}',
        "given as your code takes it: dL/dh at the last step only"),
}


@pytest.mark.parametrize("kind", LOSS_IN_BACKWARD)
@pytest.mark.parametrize("scale", [1, 2])
def test_a_loss_built_into_backward_or_a_gradient_at_the_last_step_only(kind, scale, tmp_path, capsys):
    extra, layout, note = LOSS_IN_BACKWARD[kind]
    path = tmp_path / "theirs.py"
    path.write_text(SOURCES["course_step_lstm"] + f"\nSCALE = {scale}\n" + extra + f"\nLAYOUT = {layout}\n")
    code = main(["compare", "lstm", "--against", str(path)])
    out = capsys.readouterr().out
    assert code == (0 if scale == 1 else 1), out
    assert note in out.splitlines(), out


TORCH_LAYOUT_STEP = '''
import numpy as np

def step_forward(x, h, c, p):
    """PyTorch's nn.LSTM layout, i, f, g, o blocks of weight_ih (4H, D) and weight_hh (4H, H)."""
    a = x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"]
    i, f, g, o = np.split(a, 4, axis=1)
    i, f, o, g = 1 / (1 + np.exp(-i)), 1 / (1 + np.exp(-f)), 1 / (1 + np.exp(-o)), np.tanh(g)
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new, (x, h, c, i, f, g, o, c_new, p)

def step_backward(dh, dc, cache):
    x, h, c, i, f, g, o, c_new, p = cache
    t = np.tanh(c_new)
    dc = dc + dh * o * (1 - t ** 2)
    da = np.hstack((dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g ** 2), dh * t * o * (1 - o)))
    grads = {"weight_ih": da.T @ x, "weight_hh": da.T @ h, "bias": da.sum(axis=0)}
    return da @ p["weight_ih"], da @ p["weight_hh"], dc * f, grads
'''


@pytest.mark.parametrize("bug", [None, ("dc * c * f * (1 - f)", "dc * c_new * f * (1 - f)")])
def test_the_torch_preset(bug, tmp_path, capsys):
    path = tmp_path / "torch_layout.py"
    path.write_text(TORCH_LAYOUT_STEP if bug is None else seeded_text(TORCH_LAYOUT_STEP, [bug]))
    code = main(["compare", "lstm", "--against", str(path), "--layout", "torch"])
    out = capsys.readouterr().out
    assert code == (0 if bug is None else 1), out
    assert "your weight_ih holds, block by block: W_i | W_f | W_g | W_o (gates by in)" in out.splitlines()
    if bug:
        assert EXACTLY + "d_f reads c, this step's new value, where c_prev belongs (B9: c_prev*d_m)" \
            in out.splitlines(), out


def test_a_layout_for_a_network_without_state_is_refused(capsys):
    code = main(["compare", "mlp", "--against", "x.py", "--layout", "gist"])
    err = capsys.readouterr().err
    assert code == 2 and "--layout describes recurrent code; mlp is not recurrent" in err
