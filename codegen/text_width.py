"""How wide a figure's label is, measured from the glyph widths of the fonts it is set in.

`tex_width(formula)` is the width in points that TeX gives `$formula$` in the document
(article, 11 pt: Computer Modern at 10.95 pt, scripts at 8 pt), computed as TeX computes it
(The TeXbook, Appendix G) for the few constructs a label uses: letters, digits, + - / ( ) ,
and \\partial \\ell \\delta \\beta \\gamma \\mu \\times, scripts, groups, \\mathrm{...} and
\\text{...}.  It gets character widths, italic corrections and kerns from
`codegen.font_tables` (read from TeX Live's TFM files), so the build needs no TeX; the tests
compare it with TeX's own widths.  Anything else raises ValueError, so a new construct is
never measured by guess; `tex_width_at_most` gives such a label (a user's name) a generous
estimate instead.

`svg_spans(pieces)` places an SVG label's pieces (text, "" | "sub" | "sup") in DejaVu Sans at
FONT and SCRIPT px, stacking a subscript under a superscript as TeX does; `svg_width` is the
width of the result in px, `svg_advance` how far the pen moves (the SVG's textLength).
Upright when a piece holds a word, oblique otherwise, as drawn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from codegen.font_tables import TFM, TTF

TEXT_PT, SCRIPT_PT = 10.95, 8.0     # \normalsize and \scriptsize of an 11 pt article
SCRIPTSPACE = 0.5                   # pt after every script (\scriptspace)
MU = {"thin": 3, "med": 4, "thick": 5}   # \thinmuskip, \medmuskip, \thickmuskip (natural)
FONT, SCRIPT = 15, 11               # px: the SVG's label and script sizes
PX = 4 / 3                          # CSS pixels per point
SVG_FONT = "DejaVu Sans"
GENEROUS = 1.5                      # em a character, for a label `tex_width` cannot measure

SYMBOL = {r"\partial": ("mi", 0o100, "ord"), r"\ell": ("mi", 0o140, "ord"),
          r"\delta": ("mi", 0o16, "ord"), r"\times": ("sy", 2, "bin"), r"\beta": ("mi", 0o14, "ord"),
          r"\gamma": ("mi", 0o15, "ord"), r"\mu": ("mi", 0o26, "ord")}
CHAR = {"+": ("r", 0o53, "bin"), "-": ("sy", 0, "bin"), "/": ("mi", 0o75, "ord"),
        "(": ("r", 0o50, "open"), ")": ("r", 0o51, "close"), ",": ("mi", 0o73, "punct")}
CLASSES = ("ord", "op", "bin", "rel", "open", "close", "punct", "inner")
# TeX's inter-atom spacing (tex.web, math_spacing): rows left class, columns right class;
# 0 none, 1 thin (not in scripts), 2 thin, 3 medium (not in scripts), 4 thick (not in scripts)
SPACING = ("02340001", "22*40001", "33**3**3", "44*04004", "00*00000", "02340001", "11*11111",
           "12341011")


@dataclass
class Atom:
    kind: str                          # a class of CLASSES
    width: float                       # of the nucleus, pt
    italic: float = 0.0                # italic correction of a one-character nucleus
    char: tuple | None = None          # (font, code) of a one-character nucleus
    sup: float | None = None           # widths of the scripts, pt
    sub: float | None = None


def _font(family: str, script: bool) -> tuple[str, float]:
    return f"cm{family}{8 if script else 10}", SCRIPT_PT if script else TEXT_PT


def tex_width(formula: str) -> float:
    """Width in points of `$formula$` set in the document's text style."""
    return round(_mlist(_tokens(formula), False), 3)


def tex_width_at_most(formula: str) -> float:
    """`tex_width`, or for a formula it cannot measure (a user's name with a script inside a
    script, say) a generous estimate, GENEROUS em per character or command (a glyph is at most
    1.03 em wide; the spaces around a binary operator add 0.44 em to its 0.78)."""
    try:
        return tex_width(formula)
    except ValueError:
        return len(re.findall(r"\\[A-Za-z]+|[^\\{}^_ ]", formula)) * TEXT_PT * GENEROUS


def _tokens(text: str) -> list[str]:
    found = re.findall(r"\\[A-Za-z]+|\\.|[{}^_]|[^\\{}^_]", text)
    if "".join(found) != text:
        raise ValueError(f"cannot measure {text!r}")
    return found


def _group(tokens: list[str], i: int) -> tuple[list[str], int]:
    """The tokens of the argument at tokens[i] (a braced group or one token), and the index after."""
    if tokens[i] != "{":
        return tokens[i:i + 1], i + 1
    depth = 0
    for j in range(i, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[j], 0)
        if depth == 0:
            return tokens[i + 1:j], j + 1
    raise ValueError(f"unbalanced braces in {''.join(tokens)!r}")


def _mlist(tokens: list[str], script: bool, family: str = "mi") -> float:
    """Width of a math list: its atoms, their scripts, kerns and the spaces between them."""
    atoms, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == " ":
            i += 1
        elif tok in "^_":
            if script:
                raise ValueError("a script inside a script is not measured")
            arg, i = _group(tokens, i + 1)
            if not atoms:
                atoms.append(Atom("ord", 0.0))
            width = _mlist(arg, True, family) + SCRIPTSPACE
            setattr(atoms[-1], "sup" if tok == "^" else "sub", width)
        elif tok in ("{", r"\mathrm", r"\text"):
            arg, i = _group(tokens, i + 1 if tok != "{" else i)
            width = (_text(arg, script) if tok == r"\text" else
                     _mlist(arg, script, "r" if tok == r"\mathrm" else family))
            atoms.append(Atom("ord", width))
        else:
            atoms.append(_char_atom(tok, script, family))
            i += 1
    return _hlist(atoms, script)


def _char_atom(tok: str, script: bool, family: str) -> Atom:
    if tok in SYMBOL or tok in CHAR:
        fam, code, kind = SYMBOL.get(tok) or CHAR[tok]
    elif len(tok) == 1 and tok.isalpha():
        fam, code, kind = family, ord(tok), "ord"
    elif len(tok) == 1 and tok.isdigit():
        fam, code, kind = "r", ord(tok), "ord"
    else:
        raise ValueError(f"cannot measure {tok!r} in a label")
    name, size = _font(fam, script)
    font = TFM[name]
    return Atom(kind, font["widths"][code] * size, font["italic"].get(code, 0.0) * size, (name, code))


def _hlist(atoms: list[Atom], script: bool) -> float:
    """TeX's mlist-to-hlist for these atoms: a binary operator with nothing to act on is an
    ordinary atom; a character without scripts takes its italic correction, or its kern with
    the next character of its font; scripts sit after the nucleus (a superscript its italic
    correction further right); the class pairs are spaced as SPACING says."""
    for n, a in enumerate(atoms):
        before = atoms[n - 1].kind if n else None
        after = atoms[n + 1].kind if n + 1 < len(atoms) else None
        if a.kind == "bin" and (before in (None, "bin", "op", "rel", "open", "punct")
                                or after in (None, "rel", "close", "punct")):
            a.kind = "ord"
    total = 0.0
    for n, a in enumerate(atoms):
        nxt = atoms[n + 1] if n + 1 < len(atoms) else None
        total += a.width + _after_nucleus(a, nxt)
        if nxt is not None:
            digit = SPACING[CLASSES.index(a.kind)][CLASSES.index(nxt.kind)]
            space = {"1": "thin", "2": "thin", "3": "med", "4": "thick"}.get(digit)
            if space and (digit == "2" or not script):
                total += MU[space] * TFM[_font("sy", script)[0]]["quad"] * _font("sy", script)[1] / 18
    return total


def _after_nucleus(a: Atom, nxt: Atom | None) -> float:
    """What follows an atom's nucleus: its kern or italic correction, and its scripts."""
    if a.sup is None and a.sub is None:
        if a.char and nxt is not None and nxt.char and nxt.char[0] == a.char[0]:
            kern = TFM[a.char[0]]["kerns"].get((a.char[1], nxt.char[1]), 0.0)
            if kern is None:
                raise ValueError("a ligature in a label is not measured")
            text_font = TFM[a.char[0]]["space"] != 0   # no italic correction inside a word
            return kern * _size(a.char[0]) + (0.0 if text_font else a.italic)
        return a.italic
    if a.sub is None:
        return a.italic + a.sup
    if a.sup is None:
        return a.sub
    return max(a.sup + a.italic, a.sub)


def _size(font: str) -> float:
    return SCRIPT_PT if font.endswith("8") else TEXT_PT


def _text(tokens: list[str], script: bool) -> float:
    """Width of \\text{...}: words in the roman text font, with its kerns and interword spaces."""
    text = "".join(tokens)
    if re.search(r"[\\{}$^_]", text):
        raise ValueError(f"cannot measure \\text{{{text}}}")
    name, size = _font("r", script)
    font, width = TFM[name], 0.0
    for n, ch in enumerate(text):
        if ch == " ":
            width += font["space"] * size
            continue
        width += font["widths"][ord(ch)] * size
        if n + 1 < len(text) and text[n + 1] != " ":
            kern = font["kerns"].get((ord(ch), ord(text[n + 1])), 0.0)
            if kern is None:
                raise ValueError(f"a ligature in \\text{{{text}}} is not measured")
            width += kern * size
    return width


def svg_spans(pieces) -> tuple[list[tuple[str, str, float]], float]:
    """The pieces as (text, kind, dx in px), a script right after a script of the other kind
    moved back under it, and the width of the whole label in px."""
    widths = [_piece_width(t, kind, pieces) for t, kind in pieces]
    spans, total, back = [], 0.0, 0.0
    for n, (text, kind) in enumerate(pieces):
        before = pieces[n - 1] if n else ("", "")
        if kind and before[1] and kind != before[1]:   # stacked: starts where the other did
            spans.append((text, kind, -widths[n - 1]))
            back = widths[n - 1] - widths[n]           # > 0: the other script is longer
            total += widths[n] - widths[n - 1]
        else:
            spans.append((text, kind, max(back, 0.0)))
            total += max(back, 0.0) + widths[n]
            back = 0.0
    return spans, total + max(back, 0.0)


def svg_advance(pieces) -> float:
    """How far the pen moves over the label in px (its width unless it ends on a stacked
    script shorter than the one above it): what SVG's textLength holds it to."""
    spans, _ = svg_spans(pieces)
    return sum(_piece_width(t, k, pieces) + dx for t, k, dx in spans)


def _piece_width(text: str, kind: str, pieces) -> float:
    """Width in px of one piece of `pieces` (a glyph not in the table counts as 1 em, wider
    than any in it)."""
    face = TTF["sans" if any(re.search("[A-Za-z]{2}", t) for t, _ in pieces) else "sans-oblique"]
    return sum(face.get(ord(c), 1.0) for c in text) * (SCRIPT if kind else FONT)


def svg_width(pieces) -> float:
    """Width in px of an SVG label (see `svg_spans`)."""
    return svg_spans(pieces)[1]
