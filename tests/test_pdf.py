"""Every document compiles as the build compiles it, and reads well on paper.

For every built-in cell and every example spec: pdflatex gives no error and no undefined
reference (`compile_pdf` raises on both), no overfull box over 1 pt (read off the log), and
no page break inside one backward step: each step's heading and the tag of its equation,
which closes the step, are on the same page of the PDF (read per page with pdftotext).
Needs pdflatex and pdftotext; skipped, saying so, where they are absent (CI has them).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from catalogue.cells import CELLS
from catalogue.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "examples").glob("*.toml"))
TOOLS = [tool for tool in ("pdflatex", "pdftotext") if shutil.which(tool) is None]
pytestmark = pytest.mark.skipif(bool(TOOLS), reason=f"needs {' and '.join(TOOLS)} (CI has them)")


@pytest.fixture(scope="module")
def builder():
    from lstm_derive.build import Build
    return Build()


def _entry(name):
    return CELLS[name] if name in CELLS else load_spec(ROOT / "examples" / f"{name}.toml")[0]


def pages(pdf: Path) -> list[str]:
    """The text of each page, laid out as printed."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    return text.split("\f")


def split_steps(texts: list[str], labels) -> dict[str, tuple[int, int | None]]:
    """label -> (page of the step's heading, page of its equation's tag after the heading).

    A tag is printed at the end of its line, "(B3)"; the heading is "Step (B3): ..." or
    "Step (B3), a plain copy."  None when no tag follows the heading on the same or the
    next page."""
    found = {}
    for label in labels:
        heading = re.compile(rf"Step \({label}\)[:,]")
        tag = re.compile(rf"\({label}\)\s*$", re.M)
        for n, text in enumerate(texts):
            start = heading.search(text)
            if start:
                rest = [(n, text[start.end():])] + [(n + 1, t) for t in texts[n + 1:n + 2]]
                found[label] = (n, next((m for m, t in rest if tag.search(t)), None))
                break
    return found


def test_the_step_reader_sees_a_step_split_over_two_pages():
    texts = ["...\nStep (B3): the gradient of c\n  • branch\n", "Summing:\n  dc = x      (B3)\n"]
    assert split_steps(texts, ["B3"]) == {"B3": (0, 1)}
    texts = ["Step (B3): the gradient of c\n  dc = x      (B3)\nsee (B3) above\n", "(B3)\n"]
    assert split_steps(texts, ["B3"]) == {"B3": (0, 0)}


@pytest.mark.parametrize("name", [*CELLS, *(spec.stem for spec in SPECS)])
def test_every_document_compiles_clean_and_keeps_each_backward_step_on_one_page(
        name, builder, tmp_path):
    from lstm_derive.pdf import compile_pdf
    entry = _entry(name)
    rendered = builder.render(entry, ".tex")
    pdf = tmp_path / f"{name}.pdf"
    warnings = compile_pdf(rendered.files[f"{name}.tex"], pdf, rendered.assets)
    assert not [w for w in warnings if w.startswith("overfull")], warnings
    labels = [a.label for a in builder.derivation(entry.cell).adjoints]
    steps = split_steps(pages(pdf), labels)
    assert sorted(steps) == sorted(labels), "a backward step's heading is missing from the PDF"
    split = {label: where for label, where in steps.items() if where[0] != where[1]}
    assert not split, f"{name}: backward steps broken over a page (heading page, tag page): {split}"
