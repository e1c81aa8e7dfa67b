"""The `build` command: which files go where, and writing only what changed.

Every built-in cell renders into OUT (default `generated/`).  The example specs render
next to themselves (`examples/`); with `--out` they render only when `--examples` is given,
and then into OUT/examples, so a build into another folder never touches the working tree.  A file whose text is unchanged is
not rewritten (its time stamp stays), and its PDF is not recompiled while it is newer
than the .tex.  `--check` writes nothing and reports the drift as a unified diff.
"""
from __future__ import annotations

import difflib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from catalogue.cells import CELLS
from derive.errors import DeriveError

DEFAULT_OUT = Path("generated")
DEFAULT_EXAMPLES = Path("examples")


def targets(out: Path | None, examples: Path | None, resolve) -> list[tuple[object, Path]]:
    """(entry, folder) for every cell and example spec; `resolve` loads a spec path.

    Without --out the examples (`examples/` when it exists) render next to their specs;
    with --out only the built-in cells do, unless --examples is given: then into OUT/examples.
    """
    if examples is not None and not examples.is_dir():
        raise DeriveError(f"--examples {examples}: no such folder")
    found = [(entry, out or DEFAULT_OUT) for entry in CELLS.values()]
    if out is None:
        examples = examples or (DEFAULT_EXAMPLES if DEFAULT_EXAMPLES.is_dir() else None)
    if examples is not None:
        into = examples if out is None else out / "examples"
        found += [(resolve(str(spec)), into) for spec in sorted(examples.glob("*.toml"))]
    return found


def _builder(found):
    """One build for all targets; each target folder's stored layouts are looked up first."""
    from lstm_derive.build import Build
    return Build(layout_folders=[folder / "layout" for _, folder in found])


def build(found, pdfs: bool, progress) -> int:
    """Render and write every target; PDFs compile while the next cell renders."""
    from lstm_derive.pdf import compile_pdf
    builder = _builder(found)   # one build: each cell derived once, its module rendered once
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:   # pdflatex runs apart
        pending = []
        for entry, folder in found:
            progress(f"rendering {entry.name}")
            rendered = builder.render(entry)
            files = rendered.files
            changed = {name: _write_changed(folder / name, text) for name, text in files.items()}
            pdf = folder / f"{entry.name}.pdf"
            if pdfs and not changed[f"{entry.name}.tex"] and _newer(pdf, folder / f"{entry.name}.tex"):
                print(f"unchanged {pdf}")
            elif pdfs:
                pending.append((pdf, pool.submit(compile_pdf, files[f"{entry.name}.tex"], pdf,
                                                 rendered.assets)))
        for pdf, done in pending:
            done.result()
            print(f"wrote {pdf}")
    return 0


def _write_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds it; True if it was written."""
    from lstm_derive.files import write_text
    try:
        same = path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        write_text(path, text)
    print(f"{'unchanged' if same else 'wrote'} {path}")
    return not same


def _newer(path: Path, than: Path) -> bool:
    try:
        return path.stat().st_mtime >= than.stat().st_mtime
    except OSError:
        return False


def report_drift(found) -> int:
    """--check: 0 when every file is up to date, else 1 after a unified diff of each."""
    builder = _builder(found)
    drift, folders = 0, ", ".join(sorted({str(folder) for _, folder in found}))
    for entry, folder in found:
        for file_name, text in builder.render(entry).files.items():
            path = folder / file_name
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            if old != text:
                drift += 1
                sys.stdout.writelines(difflib.unified_diff(
                    old.splitlines(True), text.splitlines(True), str(path), f"{path} (regenerated)"))
    if drift:
        print(f"{drift} generated file(s) out of date; run `lstm-derive build` to update them")
        return 1
    print(f"generated files in {folders} are up to date")
    return 0
