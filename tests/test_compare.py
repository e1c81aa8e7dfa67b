"""`lstm-derive compare --against`: seeded bugs in copies of a correct hand-written LSTM.

Each mutant is made from the text of tests/reference_lstm.py by one replacement, written
to a temporary file and compared; the test checks that the comparison fails and that the
diagnosis names the bug.  A correct implementation (the reference, a copied generated
GRU and MLP, a dotted module name, PyTorch) must pass.  Broken modules are one line on
stderr with exit code 2.
"""
import shutil
import sys

import pytest

from conftest import GENERATED, ROOT
from lstm_derive.cli import main

REFERENCE = (ROOT / "tests" / "reference_lstm.py").read_text()

# name: (text in reference_lstm.py, its replacement, phrases the report must contain)
MUTANTS = {
    "missing carried d_c": (
        "dc = dc_next + dh * o", "dc = dh * o",
        ["d_c is missing the branch 'next step' (B3",
         "mishandles the gradient of c carried in from the next step"]),
    "forgotten forget-gate factor": (
        "dc_prev = dc * f ", "dc_prev = dc ",
        ["d_c_prev lacks the factor (f) of its branch 'm' (B14",
         "in the gradient it passes back to the previous step (c_0)"]),
    "missing U_o term in d_h_prev": (
        'dh_prev = dh_prev + da_o @ P["U_o"]', "pass",
        ["d_h_prev is missing the branch 'a_o' (B15: U_o.T @ d_a_o)", "previous step (h_0)"]),
    "missing W_g term in dx": (
        'dx = dx + da_g @ P["W_g"]', "pass",
        ["d_x is missing the branch 'a_g' (B16: W_g.T @ d_a_g)", "gradients that differ: xs\n"]),
    "missing loss term": (
        "dh = dhs[t] + dh_next", "dh = dh_next",
        ["d_h is missing the branch 'loss' (B1"]),
    "transposed dU": (
        'grads["U_" + k] += da[k].T @ h_prev', 'grads["U_" + k] += h_prev.T @ da[k]',
        ["d_U_f is the derived gradient transposed", "gradients that differ: U_f, U_i, U_g, U_o\n"]),
    "transposed dW": (
        "    dstate0 = {", "    grads = {k: v.T if k[0] == 'W' else v for k, v in grads.items()}\n"
        "    dstate0 = {",
        ["d_W_f is the derived gradient transposed", "gradients that differ: W_f, W_i, W_g, W_o\n"]),
    "negated term": (
        "do = dh * tanh_c", "do = -dh * tanh_c",
        ["the branch 'h' of d_o has the wrong sign (B6: d_h*k)", "the bug is inside one step"]),
    "scaled bias gradient": (
        'grads["b_" + k] += da[k].sum(axis=0)', 'grads["b_" + k] += 0.5 * da[k].sum(axis=0)',
        ["d_b_o is the derived gradient scaled by 0.5"]),
    "off-by-one in time": (
        "dh = dhs[t] + dh_next", "dh = dhs[t - 1] + dh_next",
        ["every single step is right, but gradients disagree once 2 steps are chained",
         "T=1                   agree"]),
    "wrong forward": (
        "c = f * c_prev + i * g", "c = f * c_prev + i * g * 0.9",
        ["the forward pass already differs (hs, h_T, c_T)", "hs first differs at step t=0"]),
}


def compare(capsys, *args):
    code = main(["compare", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", MUTANTS)
def test_seeded_bug_is_detected_and_named(name, tmp_path, capsys):
    old, new, phrases = MUTANTS[name]
    assert REFERENCE.count(old) == 1, f"mutation site for {name!r} not unique"
    path = tmp_path / "mutant.py"
    path.write_text(REFERENCE.replace(old, new))
    code, out, err = compare(capsys, "lstm", "--against", str(path))
    assert code == 1 and not err, err
    assert "DISAGREE" in out and "DIFFERS" in out
    for phrase in phrases:
        assert phrase in out, f"{name}: {phrase!r} not in\n{out}"


def test_correct_lstm_passes(capsys):
    code, out, _ = compare(capsys, "lstm", "--against", str(ROOT / "tests" / "reference_lstm.py"))
    assert code == 0, out
    assert "DIFFERS" not in out and out.rstrip().endswith("and the derivation agree")
    for row in ("hs (fwd)", "c_T (fwd)", "xs", "h_0", "c_0", "W_f", "U_o", "b_g"):
        assert f"\n{row} " in out


@pytest.mark.parametrize("cell", ["gru", "mlp_softmax", "peephole_lstm"])
def test_correct_copies_of_other_cells_pass(cell, tmp_path, capsys):
    path = tmp_path / f"my_{cell}.py"
    shutil.copy(GENERATED / f"{cell}.py", path)
    code, out, _ = compare(capsys, cell, "--against", str(path))
    assert code == 0, out


def test_a_dotted_module_name_is_imported_from_the_working_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "handwritten_lstm.py").write_text(REFERENCE)
    monkeypatch.chdir(tmp_path)
    code, out, _ = compare(capsys, "lstm", "--against", "handwritten_lstm")
    sys.modules.pop("handwritten_lstm", None)
    assert code == 0, out


def test_tolerance_is_adjustable(tmp_path, capsys):
    old, new, _ = MUTANTS["scaled bias gradient"]
    path = tmp_path / "mutant.py"
    path.write_text(REFERENCE.replace(old, new.replace("0.5", "(1 + 1e-5)")))
    assert compare(capsys, "lstm", "--against", str(path))[0] == 1
    assert compare(capsys, "lstm", "--against", str(path), "--rtol", "1e-4")[0] == 0


FLOAT32 = "    return np.result_type(np.float64, *[np.asarray(a).dtype for a in arrays])"


@pytest.mark.parametrize("bug", [None, "scaled bias gradient", "missing carried d_c"])
def test_float32_code_gets_float32_tolerances(bug, tmp_path, capsys):
    """The reference computing in float32: correct is agreement, a real bug still differs."""
    assert REFERENCE.count(FLOAT32) == 1
    text = REFERENCE.replace(FLOAT32, "    return np.dtype(np.float32)")
    if bug:
        old, new, _ = MUTANTS[bug]
        text = text.replace(old, new)
    path = tmp_path / "my_lstm32.py"
    path.write_text(text)
    code, out, err = compare(capsys, "lstm", "--against", str(path))
    assert code == (1 if bug else 0) and not err, out + err
    assert "tolerances: rtol 0.0001, atol 1e-05 (your results are float32, so the float32 " \
           "defaults; --rtol/--atol override)\n" in out, out
    if not bug:   # the float64 defaults, given explicitly, are too tight for float32
        code, out, _ = compare(capsys, "lstm", "--against", str(path), "--rtol", "1e-6", "--atol", "1e-9")
        assert code == 1 and "(given by --rtol and --atol)" in out, out
        assert "the forward pass already differs" in out, out


def test_float64_code_keeps_the_float64_tolerances(capsys):
    code, out, _ = compare(capsys, "lstm", "--against", str(ROOT / "tests" / "reference_lstm.py"),
                           "--rtol", "1e-5")
    assert code == 0 and "tolerances: rtol 1e-05, atol 1e-09 (your results are float64, so the " \
        "float64 defaults; --rtol as given)\n" in out, out


BROKEN = {
    "syntax.py": ("def forward(:\n", "cannot import", "SyntaxError"),
    "raises_on_import.py": ("raise RuntimeError('no GPU here')\n", "cannot import", "no GPU here"),
    "no_backward.py": ("def forward(params, xs, state0=None):\n    pass\n", "has no function backward()"),
    "crash.py": (REFERENCE.replace("dh = dhs[t] + dh_next", "dh = dhs[t] + undefined_name"),
                 "backward() raised NameError"),
    "two_values.py": (REFERENCE.replace("return grads, dxs, dstate0", "return grads, dxs"),
                      "backward() must return 3 values, returned 2 values"),
    "nan.py": (REFERENCE.replace("return grads, dxs, dstate0",
                                 "grads['b_f'] = grads['b_f'] * float('nan')\n    return grads, dxs, dstate0"),
               "backward() returned NaN in grads['b_f']"),
    "shape.py": (REFERENCE.replace("return grads, dxs, dstate0", "return grads, dxs[0], dstate0"),
                 "backward() returned dxs of shape"),
    "missing_key.py": (REFERENCE.replace("return grads, dxs, dstate0",
                                         "del grads['U_g']\n    return grads, dxs, dstate0"),
                       "backward() returned grads without 'U_g'"),
    "exits.py": (REFERENCE.replace("return grads, dxs, dstate0", "import sys; sys.exit(0)"),
                 "backward() called sys.exit(0)"),
    "os_exit.py": (REFERENCE.replace("return grads, dxs, dstate0", "import os; os._exit(0)"),
                   "ended with exit code 0 while running forward() and backward()"),
    "killed.py": (REFERENCE.replace("return grads, dxs, dstate0",
                                    "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
                  "was killed by SIGKILL"),
    "exits_on_import.py": ("import sys\nsys.exit(3)\n", "cannot import", "called sys.exit(3)"),
    "subverts.py": ("import numpy\nnumpy.isfinite = lambda a: numpy.ones(numpy.shape(a), bool)\n"
                    + REFERENCE.replace("return grads, dxs, dstate0", "return grads, dxs * numpy.nan, dstate0"),
                    "sent a reply that is incomplete or not finite"),
    "complex.py": (REFERENCE.replace("return grads, dxs, dstate0", "return grads, dxs + 0j, dstate0"),
                   "backward() returned dxs that is complex numbers"),
}


@pytest.mark.parametrize("file_name", BROKEN)
def test_broken_module_is_one_line_with_exit_2(file_name, tmp_path, capsys):
    text, *words = BROKEN[file_name]
    path = tmp_path / file_name
    path.write_text(text)
    code, out, err = compare(capsys, "lstm", "--against", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lstm-derive: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


def test_an_exception_in_your_code_names_your_file_and_line(tmp_path, capsys):
    """The innermost frame in the user's file, even when numpy raised below it."""
    text = REFERENCE.replace("    dstate0 = {", "    _squash(dxs)\n    dstate0 = {")
    text += "\n\ndef _squash(a):\n    return np.reshape(a, (7, 7))   # not 49 numbers\n"
    path = tmp_path / "my_lstm.py"
    path.write_text(text)
    line = text.splitlines().index("    return np.reshape(a, (7, 7))   # not 49 numbers") + 1
    code, _, err = compare(capsys, "lstm", "--against", str(path))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "backward() raised ValueError: cannot reshape" in lines[0], lines[0]
    assert lines[0].endswith(f"(at {path}:{line})"), lines[0]
    path.write_text(BROKEN["crash.py"][0])
    line = BROKEN["crash.py"][0].splitlines().index("        dh = dhs[t] + undefined_name") + 1
    code, _, err = compare(capsys, "lstm", "--against", str(path))
    assert code == 2 and "backward() raised NameError" in err and f"(at {path}:{line})" in err, err


@pytest.mark.parametrize("target, words", [("nowhere/missing.py", "no such file"),
                                           ("no_such_module_xyz", "No module named"),
                                           ("bad name!", "not a .py path or a dotted module name")])
def test_unimportable_target_is_one_line(target, words, capsys):
    code, _, err = compare(capsys, "lstm", "--against", target)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err


def test_compare_needs_something_to_compare(capsys):
    code, _, err = compare(capsys, "lstm")
    assert code == 2 and "--against" in err


def test_against_torch(capsys):
    pytest.importorskip("torch")
    code, out, _ = compare(capsys, "gru_reset_after", "--against", "torch")
    assert code == 0, out
    code, _, err = compare(capsys, "gru", "--against", "torch")
    assert code == 2 and "PyTorch has no cell like 'gru'" in err and "gru_reset_after" in err


HAND_GRU = '''
import numpy as np

def sigmoid(a):
    return 1 / (1 + np.exp(-a))

def forward(p, xs, state0=None):
    h = state0["h"]
    hs, steps = [], []
    for x in xs:
        z = sigmoid(x @ p["W_z"].T + h @ p["U_z"].T + p["b_z"])
        r = sigmoid(x @ p["W_r"].T + h @ p["U_r"].T + p["b_r"])
        s = r * h
        n = np.tanh(x @ p["W_n"].T + s @ p["U_n"].T + p["b_n"])
        steps.append((x, h, z, r, s, n))
        h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs), {"h": h}, steps

def backward(p, steps, dhs, dstateT=None):
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dxs, dh_next = [], dstateT["h"]
    for t in reversed(range(len(steps))):
        x, h_prev, z, r, s, n = steps[t]
        dh = dhs[t] + dh_next
        dh_prev = dh * z
        da_n = dh * (1 - z) * (1 - n ** 2)
        ds = da_n @ p["U_n"]
        da_r = ds * h_prev * r * (1 - r)
        da_z = dh * (h_prev - n) * z * (1 - z)
        dh_prev = dh_prev + ds * r + da_z @ p["U_z"] + da_r @ p["U_r"]
        for g, da, inp in (("z", da_z, h_prev), ("r", da_r, h_prev), ("n", da_n, s)):
            grads["W_" + g] += da.T @ x
            grads["U_" + g] += da.T @ inp
            grads["b_" + g] += da.sum(axis=0)
        dxs.insert(0, da_z @ p["W_z"] + da_r @ p["W_r"] + da_n @ p["W_n"])
        dh_next = dh_prev
    return grads, np.stack(dxs), {"h": dh_next}
'''


@pytest.mark.parametrize("old, new, phrase", [
    (None, None, None),
    ("dh_prev = dh * z", "dh_prev = 0 * dh", "d_h_prev is missing the branch 'h_kept' (B12: d_h_kept*z)"),
    ("ds * h_prev * r", "ds * r * r", None),
], ids=["correct", "missing kept-state branch", "wrong factor"])
def test_a_hand_written_gru(old, new, phrase, tmp_path, capsys):
    path = tmp_path / "hand_gru.py"
    path.write_text(HAND_GRU if old is None else HAND_GRU.replace(old, new))
    code, out, _ = compare(capsys, "gru", "--against", str(path))
    assert code == (0 if old is None else 1), out
    if phrase:
        assert phrase in out, out
    if old == "ds * h_prev * r":
        assert "the bug is inside one step" in out and "U_r" in out.split("gradients that differ:")[1]


def test_the_installed_command_line(tmp_path):
    from test_cli import assert_one_line_error, lstm_derive
    helped = lstm_derive("compare", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "forward(params, xs, state0=None)" in helped.stdout
    assert_one_line_error(lstm_derive("compare", "lstm", "--against", "gone.py", cwd=tmp_path),
                          "cannot import gone.py: no such file")


ZEROS = '''
import numpy as np

def forward(params, xs, state0=None):
    T, B, _ = xs.shape
    H = params["U"].shape[0]
    return np.zeros((T, B, H)), {"h": np.zeros((B, H))}, (xs.shape, H)

def backward(params, cache, dhs, dstateT=None):
    (T, B, D), H = cache
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    return grads, np.zeros((T, B, D)), {"h": np.zeros((B, H))}
'''


def test_a_derivation_that_is_not_finite_cannot_be_compared(tmp_path, capsys):
    from test_cli import LOG_CELL
    (tmp_path / "logcell.toml").write_text(LOG_CELL)
    (tmp_path / "zeros.py").write_text(ZEROS)
    code, out, err = compare(capsys, str(tmp_path / "logcell.toml"), "--against", str(tmp_path / "zeros.py"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the derivation itself is not finite" in err and "DIFFERS" not in out


def test_code_that_never_returns_is_stopped_after_the_timeout(tmp_path, capsys):
    import time
    path = tmp_path / "loops.py"
    path.write_text(REFERENCE.replace("return grads, dxs, dstate0", "while True:\n        pass"))
    start = time.monotonic()
    code, out, err = compare(capsys, "lstm", "--against", str(path), "--timeout", "2")
    assert time.monotonic() - start < 20
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "did not finish within 2 s (--timeout) while running forward() and backward()" in err


def test_changed_inputs_are_a_warning_and_prints_do_not_disturb(tmp_path, capsys):
    path = tmp_path / "scribbles.py"
    path.write_text(REFERENCE.replace("return grads, dxs, dstate0",
                                      "print('debug output'); dhs *= 0\n    return grads, dxs, dstate0"))
    code, out, err = compare(capsys, "lstm", "--against", str(path))
    assert code == 0, out + err
    assert "lstm-derive: warning: " in err and "backward() changed its input dhs in place" in err
    assert err.count("changed its input") == 1   # said once, not once per run


def test_a_compiled_file_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pyc").write_bytes(b"\x00")
    code, _, err = compare(capsys, "lstm", "--against", "x.pyc")
    assert code == 2 and "cannot import x.pyc: not a .py source file" in err, err
