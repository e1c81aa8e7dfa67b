"""`lstm-derive compare --formula`: wrong formulas are reported with their difference,
correct ones written differently are equal, bad formulas are one line with exit code 2."""
import pytest

from lstm_derive.cli import main

PROVED = "equal: proved symbolically"
AT_POINTS = "equal: at 12 random rational points"

EQUAL = [
    ("lstm", "d_c = d_h*o*(1 - k**2) + d_c_next", PROVED),
    ("lstm", "d_c = d_c_next + (dL_dh + d_h_next) * o * (1 - k*k)", PROVED),
    ("lstm", "d_a_f = d_c * c_prev * (f - f**2)", PROVED),
    ("lstm", "d_a_o = d_h * tanh(c) * o * (1 - o)", PROVED),
    ("lstm", "d_a_i = d_c*g*sigmoid(a_i)*(1 - sigmoid(a_i))", PROVED),
    ("lstm", "d_b_f = d_f * f * (1 - f)", PROVED),
    ("lstm", "d_h_prev = U_o.T @ d_a_o + U_f.T @ d_a_f + U_i.T @ d_a_i + U_g.T @ d_a_g", AT_POINTS),
    ("lstm", "d_x = (d_a_f.T @ W_f + d_a_i.T @ W_i + d_a_g.T @ W_g + d_a_o.T @ W_o).T", AT_POINTS),
    ("lstm", "d_W_f = d_a_f @ x.T", AT_POINTS),
    ("gru", "d_z = d_h*(h_prev - h_cand)", PROVED),
    ("gru", "d_r = (U_n.T @ ((1 - h_cand**2) * (1 - z) * d_h)) * h_prev", AT_POINTS),
    ("mlp_softmax", "d_a2 = y*d_y - y*sum(y*d_y)", AT_POINTS),
]

DIFFERENT = [
    ("lstm", "d_c = d_h*o*(1 - k**2)", ["yours - derived = -d_c_next", "counterexample: at d_c_next = "]),
    ("lstm", "d_c_prev = d_c", ["derived (B14): d_c_prev = d_m*f", "yours - derived = d_c*(1 - f)"]),
    ("lstm", "d_a_g = d_g*(1 - g**2)/2", ["yours - derived = d_g*(g**2 - 1)/2",
                                         "hint: yours is the derived gradient scaled by 0.5"]),
    ("lstm", "d_h_prev = U_f.T @ d_a_f + U_i.T @ d_a_i + U_g.T @ d_a_g",
     ["yours - derived = - U_o.T @ d_a_o\n", "missing from yours: U_o.T @ d_a_o\n",
      "counterexample: entry ("]),
    ("lstm", "d_h_prev = U_f @ d_a_f + U_i.T @ d_a_i + U_g.T @ d_a_g + U_o.T @ d_a_o",
     ["yours - derived = U_f @ d_a_f - U_f.T @ d_a_f\n", "missing from yours: U_f.T @ d_a_f",
      "in yours but not in the derivation: U_f @ d_a_f"]),
    ("lstm", "d_x = W_f.T @ d_a_f - W_i.T @ d_a_i + W_g.T @ d_a_g + W_o.T @ d_a_o",
     ["yours - derived = - 2*(W_i.T @ d_a_i)\n", "negated in yours: W_i.T @ d_a_i"]),
    ("lstm", "d_W_f = x @ d_a_f.T", ["different: yours has shape (3, 2), d_W_f has (2, 3) (its transpose is right)"]),
    ("mlp_softmax", "d_a2 = y*d_y", ["yours - derived = y * d_y - y*(d_y - sum(d_y*y))\n"]),
]


def compare(capsys, cell, *args):
    code = main(["compare", cell, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("cell, formula, how", EQUAL, ids=[f for _, f, _ in EQUAL])
def test_correct_formula_written_differently_is_equal(cell, formula, how, capsys):
    code, out, err = compare(capsys, cell, "--formula", formula)
    assert code == 0 and not err, out + err
    assert how in out, out


@pytest.mark.parametrize("cell, formula, phrases", DIFFERENT, ids=[f for _, f, _ in DIFFERENT])
def test_wrong_formula_is_different_with_its_difference(cell, formula, phrases, capsys):
    code, out, err = compare(capsys, cell, "--formula", formula)
    assert code == 1 and not err, out + err
    assert "  different: " in out and "derived (" in out
    for phrase in phrases:
        assert phrase in out, out


def test_formulas_file_with_comments(tmp_path, capsys):
    path = tmp_path / "mine.txt"
    path.write_text("# my LSTM backward\n\nd_c = d_h*o*(1 - k**2) + d_c_next  # with the carry\n"
                    "d_c_prev = d_c * f\n")
    code, out, _ = compare(capsys, "lstm", "--formulas", str(path))
    assert code == 0 and out.count("equal: proved") == 2, out
    path.write_text("d_c_prev = d_c * f\nd_c_prev = d_c\n")
    code, out, _ = compare(capsys, "lstm", "--formulas", str(path), "--formula", "d_m = d_c")
    assert code == 1 and out.count("  equal") == 2 and out.count("  different") == 1, out


BAD = [
    ("d_c = d_h * o * zz", "unknown name 'zz'"),
    ("d_q = d_h", "'d_q' is not a backward quantity of this cell"),
    ("d_c = __import__('os').system('true')", "unknown function"),
    ("d_c = d_h.__class__", "attribute .__class__ is not allowed"),
    ("d_c = W_f @ d_h", "shape mismatch in W_f @ d_h: cannot multiply (2, 3) by (2, 1)"),
    ("d_c = d_h * x", "elementwise operands of shapes (2, 1) and (3, 1)"),
    ("d_c = (d_h", "syntax error"),
    ("d_c d_h", "write NAME = EXPRESSION"),
    ("d_c = [d_h]", "unsupported syntax: List"),
    ("d_c = d_h // 2", "operator FloorDiv is not allowed"),
    ("d_c = tanh(d_h, k)", "tanh takes exactly one argument"),
]


@pytest.mark.parametrize("formula, words", BAD, ids=[f for f, _ in BAD])
def test_bad_formula_is_one_line_with_exit_2(formula, words, capsys):
    code, out, err = compare(capsys, "lstm", "--formula", formula)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and not out, err
    assert lines[0].startswith("lstm-derive: error: --formula: ") and words in lines[0], lines[0]


def test_bad_line_in_a_formulas_file_names_the_line(tmp_path, capsys):
    path = tmp_path / "mine.txt"
    path.write_text("d_c = d_h*o*(1 - k**2) + d_c_next\n# fine so far\nd_c = d_h +\n")
    code, out, err = compare(capsys, "lstm", "--formulas", str(path))
    assert code == 2 and f"{path}:3: " in err and out.count("equal: proved") == 1
    code, _, err = compare(capsys, "lstm", "--formulas", str(tmp_path / "none.txt"))
    assert code == 2 and "cannot read formulas" in err


@pytest.mark.parametrize("lines, code", [
    (["d_c = d_h*o*(1 - k**2) + d_c_next", "d_c_prev = d_c", "d_a_f = d_c * (c_prev"], 2),
    (["d_a_f = d_c * (c_prev", "d_c_prev = d_c", "d_c = d_h*o*(1 - k**2) + d_c_next"], 2),
    (["d_c = d_h*o*(1 - k**2) + d_c_next", "d_c_prev = d_c"], 1),
])
def test_one_bad_formula_does_not_stop_the_others(lines, code, tmp_path, capsys):
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(lines) + "\n")
    got, out, err = compare(capsys, "lstm", "--formulas", str(path))
    assert got == code, (out, err)
    assert out.count("  equal: proved") == 1 and out.count("  different: ") == 1, out
    errors = err.strip().splitlines()
    if code == 2:
        bad = lines.index("d_a_f = d_c * (c_prev") + 1
        assert len(errors) == 1 and errors[0].startswith(f"lstm-derive: error: {path}:{bad}: "), err
        assert "syntax error" in errors[0]
    else:
        assert not errors, err


def test_show_lists_the_names_a_formula_may_use(capsys):
    assert main(["show", "lstm"]) == 0
    out = capsys.readouterr().out
    assert "names for `compare --formula" in out
    for name in ("c_prev", "d_a_f", "d_W_f", "dL_dh", "d_c_next", "d_h_next", "U_o"):
        assert name in out


# (formula, exit code, words of the answer): each answered within a few seconds, never a traceback
HOSTILE = [
    ("d_h = 2**10**10", 2, "must be a number"),
    ("d_h = d_h * 10**100000", 2, "exponent 100000 is too large"),
    ("d_h = d_h ** 10**10", 2, "must be a number"),
    ("d_h = 1e400*d_h", 2, "number 1e400 is out of range"),
    ("d_h = 9**9**9", 2, "must be a number"),
    ("d_h = ((d_h**9)**9)**9", 2, "exponents multiply to more than"),
    ("d_h = d_h**0.5", 2, "is not real"),
    ("d_h = " + "+".join(["d_h"] * 400), 2, "expression is too large"),
    ("d_h = exp(exp(exp(exp(d_h))))", 1, "different"),
    ("d_h = d_h * d_h / d_h", 0, "equal: proved"),   # d_h = 0 at one point: another is drawn
]


@pytest.mark.parametrize("formula, code, words", HOSTILE, ids=[f[:30] for f, _, _ in HOSTILE])
def test_hostile_formulas_are_answered_in_seconds(formula, code, words, capsys):
    import time
    start = time.monotonic()
    got, out, err = compare(capsys, "lstm", "--formula", formula)
    assert time.monotonic() - start < 15, formula
    assert got == code and "Traceback" not in err, out + err
    assert words in (err if code == 2 else out), out + err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and not out


def test_slow_sympy_is_stopped_and_the_verdict_rests_on_the_points(capsys, monkeypatch):
    import time
    from checks import formulacheck
    monkeypatch.setattr(formulacheck, "PROOF_SECONDS", 0.5)
    start = time.monotonic()
    code, out, _ = compare(capsys, "lstm", "--formula",
                           "d_c = (d_h + o + k + c + f + i + g + a_f)**16*(d_h - o)**16 + d_c_next")
    assert time.monotonic() - start < 10
    assert code == 1 and "SymPy took longer than 0.5 s" in out and "missing from yours: d_k*(1 - k**2)" in out


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp / "big.txt", "is too large"),
    (lambda tmp: "/dev/null", "no formulas in /dev/null"),
    (lambda tmp: "/dev/zero", "is too large"),
    (lambda tmp: tmp, "Is a directory"),
], ids=["20 MB", "/dev/null", "/dev/zero", "a folder"])
def test_formulas_files_are_read_within_bounds(make, words, tmp_path, capsys):
    (tmp_path / "big.txt").write_text("d_h = d_h\n" * 2_000_000)
    code, out, err = compare(capsys, "lstm", "--formulas", str(make(tmp_path)))
    assert code == 2 and not out and len(err.strip().splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("formula, hint", [
    ("d_c = d_h*o*(1 - k**2)", "  hint: missing the term d_c_next (the gradient carried back from step t+1)"),
    ("d_a_g = d_h*o*(1-k**2)*i*(1-g**2) + d_c_next*i",
     "  hint: (1 - g**2) must multiply the whole sum: it is missing from d_c_next*i"),
    ("d_c = d_h*o*(1 - k**2) + d_c_next + d_h", "  hint: the term d_h should not be there"),
    ("d_a_o = d_h*k*o*(1 - o)", None),   # right: no hint, no difference
    ("d_a_o = d_h*k*o", None),            # wrong, but no missing term or whole-sum factor explains it
])
def test_elementwise_formula_hints(formula, hint, capsys):
    from lstm_derive.cli import main
    code = main(["compare", "lstm", "--formula", formula])
    lines = capsys.readouterr().out.splitlines()
    hints = [line for line in lines if line.startswith("  hint: ")]
    assert hints == ([hint] if hint else []), lines
    assert code == (1 if "(1 - o)" not in formula else 0)
