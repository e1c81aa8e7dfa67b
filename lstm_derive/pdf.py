"""Compile a LaTeX document to PDF, moving the PDF into place only when the log is clean.

`compile_pdf(tex, pdf_path, assets)` runs pdflatex in a scratch folder (from a preloaded
preamble format, once when the predicted labels hold, else twice) and writes the PDF only
when the log shows no error and no undefined reference; it returns the log's warnings.
This step knows LaTeX and our labels (`codegen.labels`), no renderer.
"""
from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from codegen.labels import citation_numbers, label_numbers
from derive.errors import DeriveError
from lstm_derive.files import write_bytes

LATEX_ENGINE = "pdflatex"
LATEX_HINT = ("no LaTeX engine found (pdflatex); install one, e.g. `sudo apt-get install "
              "texlive-latex-base texlive-latex-recommended texlive-pictures` (TikZ draws the figures)")


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


def _latex_runs(engine, fmt, source, scratch):
    """pdflatex on doc.tex: (last run, log or None).

    References usually need a second run, which reads the labels the first one wrote.  We
    know what they will be (equation tags are literal, section and figure numbers are
    counted from the source), so the first run starts from an .aux holding them; a second
    run follows only if the labels LaTeX wrote differ from those (never silently wrong).
    """
    Path(scratch, "doc.tex").write_text(source, encoding="utf-8")
    seeded = label_numbers(source.split("\n"))
    cited = citation_numbers(source.split("\n"))   # \bibcite lines seed the citations likewise
    Path(scratch, "doc.aux").write_text("\\relax\n" + "".join(
        f"\\newlabel{{{label}}}{{{{{number}}}{{0}}}}\n" for label, number in seeded.items())
        + "".join(f"\\bibcite{{{key}}}{{{number}}}\n" for key, number in cited.items()))
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
