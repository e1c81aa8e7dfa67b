"""generated/ is reproducible byte for byte; `lstm-derive build --check` detects drift."""
import difflib
import shutil

from lstm_derive.build import render_all
from conftest import GENERATED
from catalogue.cells import CELLS
from lstm_derive.cli import main

UPDATE = "lstm-derive build"


def test_committed_files_equal_a_fresh_rendering(tmp_path):
    drift = []
    for name in CELLS:
        for file_name, text in render_all(name).items():
            committed = (GENERATED / file_name).read_text(encoding="utf-8")
            if committed != text:
                drift += difflib.unified_diff(committed.splitlines(True), text.splitlines(True),
                                              f"generated/{file_name}", "regenerated")
    assert not drift, "".join(drift) + f"\ngenerated/ is out of date: run `{UPDATE}`"


def test_rendering_twice_gives_identical_bytes():
    assert render_all("lstm") == render_all("lstm")


def test_build_check_exits_nonzero_on_drift(tmp_path, capsys):
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out)
    assert main(["build", "--check", "--out", str(out)]) == 0
    (out / "lstm.py").write_text((out / "lstm.py").read_text().replace("(B3)", "(B33)"))
    assert main(["build", "--check", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "+++" in printed and "(B33)" in printed and f"run `{UPDATE}`" in printed
