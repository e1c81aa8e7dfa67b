"""The NumPy backend's passes against strided calls (`codegen/numpy_backend/whole_tanh.py`,
`strided.py`, `widen.py`), checked on the generated modules' text: what they promise shows in
every recurrent cell's loops.  That the modules still compute the derivation's values is
tests/test_generated.py's and tests/test_numeric.py's job (the passes run in every module)."""
import re
from pathlib import Path

import pytest

from catalogue.cells import CELLS

ROOT = Path(__file__).resolve().parent.parent
RECURRENT = [name for name, entry in CELLS.items() if entry.cell.recurrent]


def loops(name):
    """The lines inside the time loops of the module's forward and backward steps."""
    text = (ROOT / "generated" / f"{name}.py").read_text()
    found = []
    for function in ("_forward_steps", "_backward_steps"):
        body = text.split(f"def {function}(")[1].split("\ndef ")[0]
        found += body.split("    for t in ")[1].splitlines()[1:] if "    for t in " in body else []
    return [line.strip() for line in found if line.startswith("        ")]


def widths(name):
    """The last axis of each buffer the module takes from its workspace."""
    text = (ROOT / "generated" / f"{name}.py").read_text()
    return dict(re.findall(r'(\w+) = _take\(ws, "\w+", \([^)]*?, ([^,()]+)\), dtype\)', text))


def short_slice_outputs(lines, widths):
    """The ufunc calls writing into columns short of their buffer's width (`out=d_A[:, 0:H]` of a
    (B, 4H) buffer), strided memory; a step's view `d_A` is as wide as its buffer `d_A_seq`."""
    found = []
    for line in lines:
        out = re.search(r"out=(\w+)\[:, ([^\]]+)\]", line)
        if out and out.group(2) != f"0:{widths.get(out.group(1) + '_seq', widths.get(out.group(1)))}":
            found.append(line)
    return found


@pytest.mark.parametrize("name", RECURRENT)
def test_no_ufunc_in_a_loop_writes_into_a_short_column_slice(name):
    assert short_slice_outputs(loops(name), widths(name)) == []


def test_the_lstm_takes_one_contiguous_tanh_of_its_gates():
    lines = loops("lstm")
    tanhs = [line for line in lines if line.startswith("numpy.tanh(A_h_prev")]
    assert tanhs == [tanhs[0]] and tanhs[0].startswith("numpy.tanh(A_h_prev, out=A_h_prev)")
    assert any(line.startswith("Z_g[...] = A_h_prev[:, 3 * H:4 * H]") for line in lines)


def test_the_gru_adds_its_x_terms_to_the_whole_row_after_copying_a_nh():
    lines = loops("gru_reset_after")
    copy = next(n for n, line in enumerate(lines) if line.startswith("a_nh_seq[t] = A_h_prev[:, 2 * H:3 * H]"))
    add = lines.index("A_h_prev += A_x[t]")
    bias = lines.index("A_h_prev += bcat_h_prev")
    assert bias < copy < add
    assert not any(line.startswith("A_h_prev[:, ") for line in lines)


def test_the_check_for_slice_outputs_can_fail():
    lines = ["numpy.multiply(a, b, out=d_A_x[:, 3 * H:4 * H])", "numpy.square(h, out=d_A_x[:, 0:H])",
             "numpy.multiply(a, b, out=scratch)"]
    assert short_slice_outputs(lines, {"d_A_x_seq": "4 * H"}) == lines[:2]
    assert short_slice_outputs(lines, {"d_A_x_seq": "H"}) == lines[:1]
