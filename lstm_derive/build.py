"""Render a cell's artefacts and write them safely: never a half-written file.

`render_all(name)` returns {file name: text} for one cell (.py, .tex, .html);
`write_text` writes through a temporary file in the target folder and renames it into
place; `compile_pdf` runs pdflatex in a scratch folder (from a preloaded preamble format,
once when the predicted labels hold, else twice) and moves the PDF into place only when
the log shows no error and no undefined reference.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from codegen.emit_feedforward import emit_feedforward
from codegen.emit_html import emit_html, label_numbers
from codegen.emit_latex import emit_latex
from codegen.emit_numpy import emit_numpy
from catalogue.cells import get_cell
from derive.derivation import derive
from derive.errors import DeriveError

BUILD_COMMAND = "lstm-derive build"
LATEX_ENGINE = "pdflatex"
_UMASK = os.umask(0)   # read the process's umask (the only way) and put it back at once
os.umask(_UMASK)
LATEX_HINT = ("no LaTeX engine found (pdflatex); install one, e.g. `sudo apt-get install "
              "texlive-latex-base texlive-latex-recommended texlive-pictures` (TikZ draws the figures)")


def render_all(name: str, command: str = BUILD_COMMAND) -> dict[str, str]:
    """The artefacts of a built-in cell."""
    return render_cell(get_cell(name), command)


def render_cell(cell, command: str = BUILD_COMMAND, only: str | None = None) -> dict[str, str]:
    """{file name: text} for any cell, built in or from a spec; `only=".py"` (or ".tex",
    ".html") renders just that file (the page is converted from the .tex)."""
    derivation = derive(cell)
    out = {}
    if only in (None, ".py"):
        emit = emit_numpy if cell.recurrent else emit_feedforward
        out[f"{cell.name}.py"] = emit(derivation, command)
    if only in (None, ".tex", ".html"):
        tex = emit_latex(derivation, command)
        if only in (None, ".tex"):
            out[f"{cell.name}.tex"] = tex
        if only in (None, ".html"):
            out[f"{cell.name}.html"] = emit_html(derivation, tex)
    return out


def write_text(path: Path, text: str) -> None:
    """Write atomically; any OS problem becomes a one-line DeriveError naming the path."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary file in the target folder, renamed into place."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes it private; give it a new file's mode
        os.replace(tmp, path)
    except OSError as err:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        raise DeriveError(f"cannot write {path}: {err.strerror or err}") from None


def latex_engine() -> str:
    engine = shutil.which(LATEX_ENGINE)
    if engine is None:
        raise DeriveError(LATEX_HINT)
    return engine


def compile_pdf(tex: str, pdf_path: Path, assets: dict[str, bytes] | None = None) -> list[str]:
    """Compile LaTeX source to `pdf_path`; returns the log's warnings (errors raise).

    `assets` are files the document includes (the gradient-flow plot), by name.
    """
    engine = latex_engine()
    preamble, body = _split_preamble(tex)
    fmt = _preamble_format(engine, preamble) if preamble else None
    with tempfile.TemporaryDirectory(prefix="lstm-derive-") as scratch:
        for name, data in (assets or {}).items():
            (Path(scratch) / name).write_bytes(data)
        # the body keeps its line numbers (the log cites them): one comment line per
        # preamble line; if the format cannot be used, the whole source is compiled
        source = "%\n" * (preamble.count("\n") + 1) + body if fmt else tex
        run, log = _latex_runs(engine, fmt, source, scratch)
        if log is None and fmt:
            run, log = _latex_runs(engine, None, tex, scratch)
        problems = latex_problems(log or "")
        if run.returncode != 0 or problems:
            first = problems[0] if problems else f"{LATEX_ENGINE} exited {run.returncode}"
            raise DeriveError(f"LaTeX failed for {pdf_path}: {first}")
        write_bytes(pdf_path, (Path(scratch) / "doc.pdf").read_bytes())
    warnings = re.findall(r"^LaTeX Warning: .*$", log or "", flags=re.M)
    return warnings + [f"overfull box {width:g}pt too wide at {where}"
                       for width, where in overfull_boxes(log or "") if width > 1.0]


def overfull_boxes(log: str) -> list[tuple[float, str]]:
    """(width in pt, where) of every overfull box a LaTeX log reports."""
    return [(float(width), where.strip()) for width, where in
            re.findall(r"^Overfull \\[hv]box \(([\d.]+)pt too \w+\) (.*)$", log, flags=re.M)]


def pdf_assets(cell) -> dict[str, bytes]:
    """Files a cell's document includes: its gradient-flow plot when matplotlib is there."""
    if not cell.recurrent:
        return {}
    from codegen.flow import plot_pdf
    data = plot_pdf(cell)
    return {f"{cell.name}-flow.pdf": data} if data else {}


def _latex_runs(engine, fmt, source, scratch):
    """pdflatex on doc.tex: (last run, log or None).

    References usually need a second run, which reads the labels the first one wrote.  We
    know what they will be (equation tags are literal, section and figure numbers are
    counted from the source), so the first run starts from an .aux holding them; a second
    run follows only if the labels LaTeX wrote differ from those (never silently wrong).
    """
    Path(scratch, "doc.tex").write_text(source, encoding="utf-8")
    seeded = label_numbers(source.split("\n"))
    Path(scratch, "doc.aux").write_text("\\relax\n" + "".join(
        f"\\newlabel{{{label}}}{{{{{number}}}{{0}}}}\n" for label, number in seeded.items()))
    command = [engine] + ([f"-fmt={fmt}"] if fmt else []) + [
        "-interaction=nonstopmode", "-halt-on-error", "doc.tex"]
    try:
        run = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=300)
        if run.returncode == 0 and _written_labels(scratch) != seeded:
            run = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        raise DeriveError(f"{LATEX_ENGINE} took longer than 300 s") from None
    log = Path(scratch, "doc.log")
    return run, log.read_text(encoding="latin-1") if log.exists() else None


def _written_labels(scratch) -> dict[str, str]:
    """label -> number, as the last pdflatex run wrote them to doc.aux."""
    aux = Path(scratch, "doc.aux")
    text = aux.read_text(encoding="latin-1") if aux.exists() else ""
    return {label: number for label, number in
            re.findall(r"^\\newlabel\{([^}]*)\}\{\{\{?([^{}]*)\}?\}\{", text, flags=re.M)}


def _split_preamble(tex: str) -> tuple[str, str]:
    """(document class and packages, the rest); ("", tex) when there are no packages."""
    lines = tex.split("\n")
    loads = [n for n, line in enumerate(lines) if line.startswith("\\usepackage")]
    if not loads or not lines[0].startswith(("%", "\\documentclass")):
        return "", tex
    return "\n".join(lines[:loads[-1] + 1]), "\n".join(lines[loads[-1] + 1:])


_FORMATS: dict[str, str | None] = {}
_FORMAT_LOCK = threading.Lock()


def _preamble_format(engine: str, preamble: str) -> str | None:
    """A LaTeX format with the packages already loaded, made once per preamble and process.

    Loading the packages (TikZ above all) is half of each pdflatex run; every document of a
    build shares the same preamble.  None (compile the usual way) if dumping fails.
    """
    with _FORMAT_LOCK:
        if preamble not in _FORMATS:
            folder = tempfile.mkdtemp(prefix="lstm-derive-format-")
            atexit.register(shutil.rmtree, folder, True)
            Path(folder, "preamble.tex").write_text(preamble + "\n\\dump\n", encoding="utf-8")
            run = subprocess.run([engine, "-ini", "-jobname=preamble", "-interaction=nonstopmode",
                                  "&pdflatex", "preamble.tex"],
                                 cwd=folder, capture_output=True, text=True, timeout=300)
            made = run.returncode == 0 and Path(folder, "preamble.fmt").exists()
            _FORMATS[preamble] = str(Path(folder, "preamble")) if made else None
        return _FORMATS[preamble]


def latex_problems(log: str) -> list[str]:
    """Errors and undefined references reported in a LaTeX log, one line each."""
    patterns = [r"^! .*$", r"^LaTeX Warning: (Reference|Citation) .* undefined.*$",
                r"^LaTeX Warning: There were undefined references.*$"]
    found = []
    for pattern in patterns:
        found += re.findall(pattern, log, flags=re.M)
    return found
