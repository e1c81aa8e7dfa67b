"""The command line: every command works, every bad input is one line and a non-zero exit."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def lstm_derive(*args, cwd, path=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "derive", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstm-derive: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("command", ["list", "show", "build", "latex", "code", "check"])
def test_every_command_has_help(command, tmp_path):
    result = lstm_derive(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: lstm-derive" in result.stdout


def test_list_and_show(tmp_path):
    listed = lstm_derive("list", cwd=tmp_path)
    assert listed.returncode == 0 and "lstm" in listed.stdout and "W_f (HxD)" in listed.stdout
    shown = lstm_derive("show", "lstm", cwd=tmp_path)
    assert shown.returncode == 0 and "(B15) d_h_prev = U_f.T @ d_a_f" in shown.stdout


def test_check_command_passes_on_the_lstm(tmp_path):
    result = lstm_derive("check", "lstm", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree" in result.stdout.splitlines()[-1]


def test_code_command_writes_a_module(tmp_path):
    result = lstm_derive("code", "lstm", "--out", "out/lstm.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "def backward(" in (tmp_path / "out" / "lstm.py").read_text()


def test_unknown_cell(tmp_path):
    assert_one_line_error(lstm_derive("code", "lstn", cwd=tmp_path), "unknown cell 'lstn'", "lstm")


def test_unknown_command(tmp_path):
    assert_one_line_error(lstm_derive("derive-everything", cwd=tmp_path), "invalid choice")


@pytest.mark.parametrize("target", ["torch", "jax"])
def test_code_for_a_framework_writes_what_build_writes(tmp_path, target):
    result = lstm_derive("code", "gru", "--target", target, "--out", "gru.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = (tmp_path / "gru.py").read_text().split("GENERATED FILE", 1)[1].split("\n", 1)[1]
    assert body == (ROOT / "generated" / target / "gru.py").read_text().split("GENERATED FILE", 1)[1].split("\n", 1)[1]


def test_unwritable_output_path_writes_nothing(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = lstm_derive("code", "lstm", "--out", "file/lstm.py", cwd=tmp_path)
    assert_one_line_error(result, "cannot write file/lstm.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_missing_latex_engine_is_one_line_and_writes_nothing(tmp_path):
    result = lstm_derive("latex", "lstm", "--pdf", "--out", "doc/lstm.tex", cwd=tmp_path, path="")
    assert_one_line_error(result, "no LaTeX engine found", "apt-get install")
    assert not (tmp_path / "doc").exists()


def test_build_without_latex_writes_code_and_document_and_says_how_to_get_pdfs(tmp_path):
    result = lstm_derive("build", "--out", "gen", cwd=tmp_path, path="")
    assert result.returncode == 0, result.stderr
    from catalogue.cells import CELLS
    written = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert written == sorted([f"{name}.{ext}" for name in CELLS for ext in ("py", "tex", "html")]
                             + ["jax", "torch"])
    for target in ("torch", "jax"):
        files = sorted(p.name for p in (tmp_path / "gen" / target).iterdir())
        assert files == sorted(f"{name}.py" for name, entry in CELLS.items() if entry.cell.recurrent)
    assert "PDFs skipped: no LaTeX engine found" in result.stdout


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    from lstm_derive.files import write_text
    write_text(tmp_path / "a.txt", "text")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
