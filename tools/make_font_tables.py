"""Write `codegen/font_tables.py`: the glyph widths the figures' labels are measured with.

Run once, by hand, where TeX Live and matplotlib are installed (the build never runs it and
needs neither TeX nor this script):

    PYTHONPATH=$PWD python tools/make_font_tables.py > codegen/font_tables.py

Computer Modern (the PDF): each font's TFM file, found with `kpsewhich`, read as Knuth's
TFM format defines it (TeX: The Program, part 30): per character its width and italic
correction, as fractions of the design size, and the font's kern pairs.  These are the
numbers TeX itself typesets with.  DejaVu Sans (the SVG, which names it): the advance
widths of the TrueType fonts matplotlib ships, in units of the em, read with FreeType.
Only the characters a label can hold are kept.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap

TFM_FONTS = ("cmr10", "cmmi10", "cmsy10", "cmr8", "cmmi8", "cmsy8")
ASCII = range(32, 127)
GREEK = {"cmmi": (0o14, 0o15, 0o16, 0o26, 0o100, 0o140)}   # beta gamma delta mu partial ell
SYMBOLS = {"cmsy": (0o0, 0o2)}               # minus, times
TTF = {"sans": "DejaVuSans.ttf", "sans-oblique": "DejaVuSans-Oblique.ttf"}
UNICODE = [*map(chr, ASCII), "\u03b4", "\u2202", "\u2113", "\u2212", "\u00d7"]


def tfm(name: str) -> dict:
    """{'space', 'quad', 'widths': {code: w}, 'italic': {code: i}, 'kerns': {(a, b): k}}, in
    units of the design size (the interword space, the quad, and per character)."""
    path = subprocess.run(["kpsewhich", f"{name}.tfm"], capture_output=True, text=True,
                          check=True).stdout.strip()
    data = open(path, "rb").read()
    lf, lh, bc, ec, nw, nh, nd, ni, nl, nk, ne, np_ = struct.unpack(">12H", data[:24])
    words = lambda start, n: [struct.unpack(">i", data[4 * (start + k):4 * (start + k) + 4])[0]
                              / 2 ** 20 for k in range(n)]   # noqa: E731 - fix_word values
    info_at = 6 + lh
    width_at = info_at + ec - bc + 1
    widths = words(width_at, nw)
    italics = words(width_at + nw + nh + nd, ni)
    lig_at = width_at + nw + nh + nd + ni
    kerns = words(lig_at + nl, nk)
    keep = set(ASCII) | set(GREEK.get(name.rstrip("0123456789"), ())) | \
        set(SYMBOLS.get(name.rstrip("0123456789"), ()))
    params = words(lig_at + nl + nk + ne, np_)   # slant, space, stretch, shrink, x-height, quad
    out = {"space": round(params[1], 6), "quad": round(params[5], 6),
           "widths": {}, "italic": {}, "kerns": {}}
    for code in range(bc, ec + 1):
        w_i, _, i_t, rem = data[4 * (info_at + code - bc):4 * (info_at + code - bc) + 4]
        if w_i == 0 or code not in keep:
            continue
        out["widths"][code] = round(widths[w_i], 6)
        if italics[i_t >> 2]:
            out["italic"][code] = round(italics[i_t >> 2], 6)
        if i_t & 3 == 1:   # a lig/kern program starts at `rem`
            out["kerns"].update(_kerns(data, lig_at, rem, kerns, code, keep))
    return out


def _kerns(data, lig_at, start, kerns, code, keep):
    """The pairs (code, next) of the lig/kern program at `start`: their kern, or None for a
    ligature (a label that would form one is refused by the measuring code)."""
    found, i = {}, start
    skip, *_ = data[4 * (lig_at + i):4 * (lig_at + i) + 4]
    if skip > 128:   # the program starts elsewhere
        _, _, op, rem = data[4 * (lig_at + i):4 * (lig_at + i) + 4]
        i = 256 * op + rem
    while True:
        skip, nxt, op, rem = data[4 * (lig_at + i):4 * (lig_at + i) + 4]
        if skip <= 128 and nxt in keep:   # a ligature is recorded as None
            found.setdefault((code, nxt), round(kerns[256 * (op - 128) + rem], 6) if op >= 128 else None)
        if skip >= 128:
            return found
        i += skip + 1


def ttf(file: str) -> dict:
    """{character code: advance width in em} of a TrueType font shipped with matplotlib."""
    import matplotlib
    from matplotlib.ft2font import FT2Font, LoadFlags
    font = FT2Font(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", file))
    out = {}
    for ch in UNICODE:
        glyph = font.load_char(ord(ch), flags=LoadFlags.NO_SCALE)
        out[ord(ch)] = round(glyph.horiAdvance / font.units_per_EM, 6)
    return out


def main() -> None:
    print('"""Glyph widths of the fonts the figures\' labels are set in (generated: do not edit).')
    print()
    print("Made by `tools/make_font_tables.py` (see its docstring) from the TFM files of TeX Live")
    print("(Computer Modern: width, italic correction and kern pairs, in units of the design size)")
    print('and from matplotlib\'s DejaVu Sans TrueType files (advance widths, in ems)."""')
    print()
    print("TFM = {")
    for name in TFM_FONTS:
        print(f"    {name!r}: {{")
        for field, value in tfm(name).items():
            print(_wrapped(f"{field!r}: {value!r},"))
        print("    },")
    print("}")
    print()
    print("TTF = {")
    for key, file in TTF.items():
        print(_wrapped(f"{key!r}: {ttf(file)!r},"))
    print("}")


def _wrapped(text: str) -> str:
    """One table entry in lines under 100 characters (it holds no string with a space)."""
    return textwrap.fill(text, 96, initial_indent=" " * 8, subsequent_indent=" " * 12)


if __name__ == "__main__":
    sys.exit(main())
