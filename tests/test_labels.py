"""Every equation label a generated module cites, e.g. (F3), (B7) or (P2), is one of its
derivation's labels: the code and the document speak of the same equations."""
import re

import pytest

from conftest import GENERATED
from catalogue.cells import CELLS
from derive import derive


def derivation_labels(name):
    d = derive(CELLS[name].cell)
    return {eq.label for eq in d.forward} | {a.label for a in d.adjoints} | \
        {g.label for g in d.param_grads}


def cited(text):
    found = set()
    for first, last in re.findall(r"\(([FBP]\d+)\)(?:-\(([FBP]\d+)\))?", text):
        found.add(first)
        if last:
            found.update(f"{first[0]}{n}" for n in range(int(first[1:]), int(last[1:]) + 1))
    return found


@pytest.mark.parametrize("name", sorted(CELLS))
def test_each_cited_label_exists(name):
    known = derivation_labels(name)
    paths = [GENERATED / f"{name}.py"] + sorted(GENERATED.glob(f"*/{name}.py"))
    for path in paths:
        labels = cited(path.read_text(encoding="utf-8"))
        assert labels, f"{path} cites no label"
        assert labels <= known, f"{path} cites {sorted(labels - known)}, not in the derivation"


def test_the_check_rejects_an_unknown_label():
    assert cited("x = y  # (B99)") - derivation_labels("lstm") == {"B99"}
