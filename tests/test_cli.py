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


def test_an_existing_device_or_pipe_is_not_replaced_by_a_file(tmp_path):
    # `--out /dev/stdout` or a FIFO: renaming a file over it would replace the node itself
    # (as root, /dev/null), so it is refused and left as it was.
    os.mkfifo(tmp_path / "pipe")
    result = lstm_derive("code", "lstm", "--out", "pipe", cwd=tmp_path)
    assert_one_line_error(result, "cannot write pipe", "not a regular file")
    assert (tmp_path / "pipe").is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_missing_latex_engine_is_one_line_and_writes_nothing(tmp_path):
    result = lstm_derive("latex", "lstm", "--pdf", "--out", "doc/lstm.tex", cwd=tmp_path, path="")
    assert_one_line_error(result, "no LaTeX engine found", "apt-get install", "texlive-pictures")
    assert not (tmp_path / "doc").exists()


def test_build_without_latex_writes_code_and_document_and_says_how_to_get_pdfs(tmp_path):
    """(Nor Graphviz on the PATH: the stage graphs' layouts are the committed ones.)"""
    result = lstm_derive("build", "--out", "gen", cwd=tmp_path, path="")
    assert result.returncode == 0, result.stderr
    from catalogue.cells import CELLS
    written = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert written == sorted([f"{name}.{ext}" for name in CELLS for ext in ("py", "tex", "html")]
                             + ["jax", "layout", "torch"])
    layouts = sorted(p.name for p in (tmp_path / "gen" / "layout").iterdir())
    assert layouts == sorted(f"{name}.json" for name in CELLS)
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


LOG_CELL = """
name = "logcell"
inputs = ["x"]
state = ["h"]
output = "h"
[params]
W = ["H", "D"]
U = ["H", "H"]
b = ["H"]
[[stages]]
name = "h"
expr = "log(W @ x + U @ h_prev + b)"
"""


def test_check_fails_when_a_gradient_is_not_finite(tmp_path, capsys):
    from lstm_derive.cli import main
    path = tmp_path / "logcell.toml"
    path.write_text(LOG_CELL)
    assert main(["check", str(path)]) == 1   # log of a negative number: NaN, never "agree"
    lines = capsys.readouterr().out.strip().splitlines()
    assert "not finite" in lines[1]
    assert "DISAGREE" in lines[-1] and "not finite" in lines[-1] and "at T,B,D,H = " in lines[-1]


def test_the_worst_error_is_nan_when_any_error_is():
    import math
    from checks.gradcheck import worst
    assert max(0.0, float("nan")) == 0.0                    # the trap
    assert math.isnan(worst([0.0, float("nan"), 1.0])) and worst([0.5, 2.0]) == 2.0
    assert worst([]) == 0.0


def test_version(capsys):
    from lstm_derive.cli import main
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("lstm-derive ")


@pytest.mark.parametrize("args, words", [
    (["check", "lstm", "--tol", "-1"], "argument --tol: must be >= 0, got -1"),
    (["check", "lstm", "--seed", "-1"], "argument --seed: must be >= 0"),
    (["compare", "lstm", "--rtol", "-1", "--formula", "d_h = d_h"], "argument --rtol: must be >= 0"),
    (["compare", "lstm", "--atol", "nan", "--formula", "d_h = d_h"], "argument --atol: must be >= 0, got nan"),
    (["compare", "lstm", "--against", "x.py", "--timeout", "0"], "argument --timeout: must be > 0"),
    (["build", "--examples", "/nonexistent", "--check"], "--examples /nonexistent: no such folder"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_nonsense_options_are_refused(args, words, capsys):
    from lstm_derive.cli import main
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err


def test_build_into_another_folder_leaves_the_examples_alone_and_skips_unchanged_files(
        tmp_path, capsys, monkeypatch):
    from catalogue.cells import CELLS
    from lstm_derive import rebuild
    from lstm_derive.cli import main
    monkeypatch.setattr(rebuild, "CELLS", {"rnn": CELLS["rnn"]})   # one small cell is enough here
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    spec = (ROOT / "examples" / "mgu.toml").read_text()
    (tmp_path / "examples" / "mgu.toml").write_text(spec)
    assert main(["build", "--out", "out", "--no-pdf"]) == 0
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["mgu.toml"]
    assert (tmp_path / "out" / "rnn.py").exists() and not (tmp_path / "out" / "examples").exists()
    assert main(["build", "--out", "out", "--no-pdf", "--examples", "examples"]) == 0
    assert sorted(p.name for p in (tmp_path / "examples").iterdir()) == ["mgu.toml"]
    assert (tmp_path / "out" / "examples" / "mgu.py").exists()
    stamp = (tmp_path / "out" / "rnn.py").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["build", "--out", "out", "--no-pdf"]) == 0
    assert (tmp_path / "out" / "rnn.py").stat().st_mtime_ns == stamp
    out = capsys.readouterr().out
    assert "unchanged out/rnn.py" in out and "wrote" not in out


def test_long_work_says_what_it_is_doing_on_a_terminal(tmp_path, capsys, monkeypatch):
    import sys
    from lstm_derive.cli import main
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["code", "lstm", "--out", str(tmp_path / "lstm.py")]) == 0
    err = capsys.readouterr().err
    assert "lstm-derive: deriving lstm (13 stages) ..." in err and "rendering lstm.py" in err


def test_a_bug_of_ours_is_one_line_for_the_program_and_a_traceback_for_callers(capsys, monkeypatch):
    import sys
    from lstm_derive import cli

    def broken(args):
        raise RuntimeError("deliberate\nsecond line")
    monkeypatch.setattr(cli, "_list", broken)
    with pytest.raises(RuntimeError):
        cli.main(["list"])
    monkeypatch.setattr(sys, "argv", ["lstm-derive", "list"])
    monkeypatch.delenv("LSTM_DERIVE_DEBUG", raising=False)
    assert cli.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lstm-derive: internal error") and "deliberate" in err[0]


def test_a_missing_dependency_is_named_in_one_line_not_called_a_bug(capsys, monkeypatch):
    import sys
    from lstm_derive import cli

    def missing(args):
        raise ModuleNotFoundError("No module named 'latex2mathml'", name="latex2mathml")
    monkeypatch.setattr(cli, "_list", missing)
    monkeypatch.setattr(sys, "argv", ["lstm-derive", "list"])
    monkeypatch.delenv("LSTM_DERIVE_DEBUG", raising=False)
    assert cli.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'latex2mathml' is not installed" in err[0] and "internal error" not in err[0]
