"""The section on how a cell differs from the cell it is compared with: its equations come from
the two derivations (`derive.compare`), its prose cites equations by value, and every letter
it uses is defined in the document."""
import dataclasses
import re

import pytest
import sympy as sp

from conftest import GENERATED
from catalogue.cells import CELLS, get_entry
from codegen.latex_compare import CITE, cite_equations
from derive.compare import compare
from derive.derivation import derive
from derive.stages import Kind
from derive.terms import WT, Outer, adjoint, value

COMPARED = [n for n, e in CELLS.items() if e.compare not in (None, n)]


def _changes(name):
    entry = get_entry(name)
    found = compare(derive(entry.cell), derive(get_entry(entry.compare).cell))
    return found, {c.target: c for c in found.changes}


def _same(a, b):
    return sp.expand(a - b) == 0


def test_the_reset_gate_after_the_product_sees_the_whole_recurrent_term():
    """gru_reset_after against the GRU as published (Cho et al.): dr = d_a_n * (U_n h + b_hn)
    there, (U_n^T d_a_n) * h_prev here; the reset factor moves across U_n^T."""
    _, ch = _changes("gru_reset_after")
    d_an, h_prev, r = adjoint("a_n"), value("h_prev"), value("r")
    assert _same(ch["r"].mine, d_an * value("a_nh"))
    assert _same(ch["r"].theirs, h_prev * WT(value("U_n"), d_an))
    assert WT(value("U_n"), d_an * r) in ch["h_prev"].mine.args
    assert r * WT(value("U_n"), d_an) in ch["h_prev"].theirs.args
    assert ch["U_n"].param and ch["U_n"].mine == Outer(d_an * r, h_prev)
    assert ch["U_n"].theirs == Outer(d_an, value("s"))


def test_coupled_gates_give_the_forget_gate_a_second_branch():
    _, ch = _changes("cifg_lstm")
    assert _same(ch["f"].mine - ch["f"].theirs, -adjoint("i"))


def test_peepholes_add_branches_to_the_cell_state_gradients():
    _, ch = _changes("peephole_lstm")
    f, i, o = value("f"), value("i"), value("o")
    assert _same(ch["c_prev"].mine - ch["c_prev"].theirs,
                 value("p_f") * adjoint("f") * f * (1 - f) + value("p_i") * adjoint("i") * i * (1 - i))
    assert _same(ch["c"].mine - ch["c"].theirs, value("p_o") * adjoint("o") * o * (1 - o))


def test_the_comparison_can_fail():
    """A cell compared with itself has no change; an LSTM whose squashing of the cell is a
    sigmoid shows that stage and the change in the cell state's gradient."""
    lstm = derive(CELLS["lstm"].cell)
    same = compare(lstm, lstm)
    assert same.mine == same.theirs == same.changes == ()
    cell = lstm.cell
    stages = tuple(dataclasses.replace(s, kind=Kind.SIGMOID) if s.name == "k" else s for s in cell.stages)
    other = compare(derive(dataclasses.replace(cell, stages=stages)), lstm)
    assert [s.name for s in other.mine] == [s.name for s in other.theirs] == ["k"]
    assert "c" in {c.target for c in other.changes}


@pytest.mark.parametrize("name", COMPARED)
def test_the_document_shows_the_other_cell_s_stages_and_the_changed_gradients(name):
    tex = (GENERATED / f"{name}.tex").read_text()
    section = tex[tex.index(r"\label{sec:differences}"):]
    section = section[:section.index(r"\section")]
    found, _ = _changes(name)
    assert section.count(r"\text{") >= len(found.theirs)
    for note in CELLS[name].notes:   # the prose, with its citations resolved
        assert cite_equations(note, derive(CELLS[name].cell), CELLS[name].cites)[:40] in section
    assert "forks here that" not in section   # the old list of differences, read as a machine diff


def test_mlp_has_no_comparison_and_the_softmax_network_compares_with_it():
    assert r"\label{sec:differences}" not in (GENERATED / "mlp.tex").read_text()
    assert r"differs from the MLP}" in (GENERATED / "mlp_softmax.tex").read_text()


def test_a_note_citing_an_equation_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match=r"cites \[\[B:nothing\]\]"):
        cite_equations("see [[B:nothing]]", derive(CELLS["gru"].cell))
    assert cite_equations("see [[B:h_prev]].", derive(CELLS["gru"].cell)).startswith(r"see (\ref{eq:B")


def _letters(tex: str) -> set[str]:
    """Time-indexed letters in LaTeX mathematics (x_t, h_{t-1}, a^{\\mathrm{nh}}_t), braces dropped."""
    found = re.findall(r"(?<![A-Za-z\\])([A-Za-z](?:\^(?:\{(?:[^{}]|\{[^{}]*\})*\}|[A-Za-z]))?_(?:\{t(?:-1)?\}|t))", tex)
    return {re.sub(r"[{}]", "", f) for f in found}


@pytest.mark.parametrize("name", [n for n in COMPARED if CELLS[n].cell.recurrent])
def test_every_letter_the_comparison_uses_is_defined_before_it(name):
    """The notes' letters are this cell's values (its forward pass, above the section) or the
    other cell's, shown in the section before the notes."""
    tex = (GENERATED / f"{name}.tex").read_text()
    derivation = derive(CELLS[name].cell)
    notes = [cite_equations(n, derivation, CELLS[name].cites) for n in CELLS[name].notes]
    first = tex.index(notes[0])
    defined = _letters(tex[tex.index(r"\section{Notation"):first])
    used = set().union(*(_letters(" ".join(n.split("$")[1::2])) for n in notes))
    assert used and used <= defined, sorted(used - defined)


def test_the_letter_check_can_fail():
    assert _letters(r"$q^{f}_{t} = p_f \odot c_{t-1}$ and $h^{\mathrm{kept}}_t$") == {
        "q^f_t", "c_t-1", r"h^\mathrmkept_t"}


def test_a_letter_the_other_cell_means_otherwise_is_qualified():
    """The sLSTM's m is its stabiliser; the LSTM's m (the kept part) is shown as m^LSTM."""
    tex = (GENERATED / "slstm.tex").read_text()
    section = tex[tex.index(r"\label{sec:differences}"):]
    assert r"m^{\mathrm{LSTM}}_{t} &= f_{t} \odot c_{t-1}" in section
    assert not re.search(r"(?<![\\a-z])m_\{t\} &= f_\{t\}", section)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_citation_in_the_catalogue_s_notes_resolves(name):
    cell = derive(CELLS[name].cell)
    works = ("kang2019", *CELLS[name].cites, "cs231n")
    for note in CELLS[name].notes + CELLS[name].intuition:
        assert "[[" not in cite_equations(note, cell, works)
        assert all(m[0] in "FBSC" for m in CITE.findall(note))
    with pytest.raises(ValueError, match="C:olah2015"):   # a work the document does not list
        cite_equations("as Olah[[C:olah2015]] draws it", cell, ())


@pytest.mark.parametrize("path", sorted(GENERATED.glob("*.tex")), ids=lambda p: p.stem)
def test_steps_back_are_tau_everywhere(path):
    """k is the LSTM's squashed cell state (and K the class count): a number of steps back is
    tau in every document, prose included."""
    tex = path.read_text()
    assert not re.search(r"\$k\$ steps|\^\{?k\}?\$|_\{t-k\}|\(k = |k = \d", tex), path.stem


@pytest.mark.parametrize("name", COMPARED)
def test_the_page_sets_each_changed_gradient_on_rows_of_its_own(name):
    """Every 'here:' row of the comparison is a row of the page's table (a LaTeX row spacing
    such as \\\\[4pt] would leave '[4pt]' in the mathematics and join two rows)."""
    page = (GENERATED / f"{name}.html").read_text()
    tex = (GENERATED / f"{name}.tex").read_text()
    assert not re.search(r"<mn>\d+pt</mn>", page)
    assert page.count("<mtext>here:</mtext>") == tex.count(r"\text{here:}")
    rows = re.findall(r"<mtr>(?:(?!</mtr>).)*</mtr>", page)
    assert sum("<mtext>here:</mtext>" in row for row in rows) == tex.count(r"\text{here:}")
    assert not any(row.count("<mtext>here:</mtext>") + row.count("<mtext>GRU:</mtext>") > 1 for row in rows)


@pytest.mark.parametrize("name", ["gru", "gru_reset_after"])
def test_the_update_gate_gradient_the_gru_notes_state(name):
    """The GRU's notes say dz = dh * (h_prev - h_cand) once its two branches are written out."""
    from derive.compare import written_out
    d = derive(CELLS[name].cell)
    got = written_out(d, d.adjoint("z").expr, {"h"})
    assert _same(got, adjoint("h") * (value("h_prev") - value("h_cand")))
    assert r"\delta h_t \odot (h_{t-1} - h^{\mathrm{cand}}_t)" in " ".join(CELLS["gru"].notes)
