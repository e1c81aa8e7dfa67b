"""Emit a cell's HTML page (`generated/<cell>.html`) from its `Document` and its LaTeX text.

The page is the .tex document converted, so the two cannot say different things: prose
and structure are translated by a small reader that knows exactly the constructs our
template writes (and raises on anything else, so a template change cannot silently drop
content); every formula becomes MathML through latex2mathml; the TikZ figures are drawn
again as inline SVG from the same layouts (`codegen.drawing`; the stage graph's comes with the document),
and the gradient-flow plot is the SVG the document carries.  No JavaScript, nothing
fetched: one self-contained file.  `html_fragment(page)` is a page's body for embedding.
"""
from __future__ import annotations

import re
from functools import lru_cache
from html import escape

from latex2mathml.converter import convert

from codegen import drawing, figures
from codegen.document import Document
from codegen.labels import citation_numbers, heading_numbers, label_numbers
from codegen.notation import Notation
from codegen.templates import render
from derive.errors import DeriveError

SIMPLE = {r"\_": "_", r"\&": "&amp;", r"\%": "%", r"\#": "#", r"\$": "$", r"\{": "{",
          r"\}": "}", r"\ ": " ", r"\,": "&#8201;", "~": "&#160;", "``": "&#8220;",
          "''": "&#8221;", "---": "&#8212;", "--": "&#8211;", r"\\": "<br/>"}
WRAP = {"emph": "em", "textbf": "strong", "code": "code", "fbox": None}
COLUMN = re.compile(r"(?<!\\)&")          # an alignment mark, not an escaped ampersand
TEXT_ESCAPES = {r"\&": "&amp;", r"\_": "_", r"\%": "%", r"\#": "#", r"\$": "$"}
DROP = ("noindent", "centering", "small", "maketitle")
TEXT_COMMANDS = {"textbackslash": "\\", "textasciitilde": "~", "textasciicircum": "^"}


def emit_html(document: Document, tex: str) -> str:
    """The page of `document`, whose LaTeX text (`emit_latex`) is `tex`."""
    derivation = document.derivation
    cell = derivation.cell
    nt = Notation(cell.recurrent, cell.vector_param_names)
    svgs = {"fig:graph": drawing.svg(*document.graph, "stage graph")}
    if document.fork:
        svgs["fig:fork"] = drawing.svg(*document.fork, "the backward pass at one fork")
    if cell.recurrent:
        svgs["fig:unrolled"] = drawing.svg(*figures.unrolled(derivation, nt), "three steps unrolled")
        svgs["fig:flow"] = document.plot.svg if document.plot else None
    reader = Reader(tex, svgs)
    body = reader.body()
    return render("document.html.j2", title=reader.title, contents=reader.contents(), body=body,
                  cell=cell.name)


def html_fragment(page: str) -> str:
    """A page's body for embedding (a notebook cell): its style, scoped, title and content."""
    style = page[page.index("<style>"):page.index("</style>") + len("</style>")]
    body = page[page.index("<body>") + len("<body>"):page.index("</body>")]
    scoped = re.sub(r"^([^{}\n]+)\{", lambda m: ", ".join(
        f".lstm-derive {sel.strip()}" for sel in m.group(1).split(",")).replace(
        ".lstm-derive body", ".lstm-derive") + " {", style, flags=re.M)
    return f'<div class="lstm-derive">{scoped}{body}</div>'


class Reader:
    """Converts the body of one of our LaTeX documents, block by block."""

    def __init__(self, tex: str, svgs: dict):
        preamble, _, rest = tex.partition(r"\begin{document}")
        self.lines = rest.partition(r"\end{document}")[0].strip("\n").split("\n")
        self.svgs = svgs
        self.labels = label_numbers(self.lines)
        self.numbers = heading_numbers(self.lines)
        self.bib = citation_numbers(self.lines)
        self.title = self.prose(_argument(preamble, r"\title"))
        self.toc = []   # (level, anchor, number, title) of every numbered heading, in order

    def body(self) -> str:
        out, paragraph, n = [], [], 0
        while n < len(self.lines):
            line = self.lines[n].strip()
            block = re.match(r"\\(?:begin\{([\w*]+)\}|(?:sub)?section|paragraph\{|\[)", line)
            if not line or block or _is_wrapper(line):
                if paragraph:
                    out.append(f"<p>{self.prose(' '.join(paragraph))}</p>")
                    paragraph = []
            if block and block.group(1):
                end = self._end_of(n, block.group(1))
                out.append(self.environment(block.group(1), self.lines[n + 1:end]))
                n = end
            elif line.startswith(("\\section", "\\subsection")):
                out.append(self.heading(line, self.numbers.get(n)))
            elif line.startswith("\\paragraph{"):
                title, rest = _split_group(line[len("\\paragraph"):])
                paragraph = [f"\\textbf{{{title}}} {rest}"]
            elif line.startswith("\\["):
                out.append(self.display(line[2:line.rindex("\\]")]))
            elif line and not _is_wrapper(line):
                paragraph.append(line)
            n += 1
        if paragraph:
            out.append(f"<p>{self.prose(' '.join(paragraph))}</p>")
        return "\n".join(out)

    def _end_of(self, start, name):
        for n in range(start + 1, len(self.lines)):
            if self.lines[n].strip().startswith(f"\\end{{{name}}}"):
                return n
        raise DeriveError(f"HTML: \\begin{{{name}}} without \\end")

    def heading(self, line, number):
        """A section or subsection; `number` is None for a starred one."""
        level = 0 if line.startswith("\\section") else 1
        title, rest = _split_group(line[line.index("{"):])
        label = _argument(rest, r"\label") if r"\label" in rest else None
        label = label or (f"sec-{number}" if number else None)
        anchor = f' id="{escape(label)}"' if label else ""
        shown = f"{number} " if number else ""
        if number:
            self.toc.append((level, label, number, self.prose(title)))
        return f"<h{level + 2}{anchor}>{shown}{self.prose(title)}</h{level + 2}>"

    def contents(self) -> str:
        """The table of contents: the numbered sections, their subsections nested, and the
        references (call after `body`, which finds the headings)."""
        out, previous = ['<nav class="toc"><p class="toc-title">Contents</p><ol>'], None
        for level, anchor, number, title in self.toc:
            link = f'<a href="#{escape(anchor)}">{f"{number} " if number else ""}{title}</a>'
            if level == 0:
                out.append({None: "", 0: "</li>", 1: "</ol></li>"}[previous] + f"<li>{link}")
            else:
                out.append({None: "<li><ol>", 0: "<ol>", 1: ""}[previous] + f"<li>{link}</li>")
            previous = level
        out.append({None: "", 0: "</li>", 1: "</ol></li>"}[previous] + "</ol></nav>")
        return "".join(out)

    def environment(self, name, lines):
        if name in ("itemize", "enumerate"):
            tag = "ul" if name == "itemize" else "ol"
            items = " ".join(line.strip() for line in lines).split("\\item")[1:]
            return f"<{tag}>" + "".join(f"<li>{self.prose(i.strip())}</li>" for i in items) + f"</{tag}>"
        if name in ("equation", "equation*"):
            return self.display(" ".join(lines))
        if name in ("align", "align*"):
            rows = [r for r in re.split(r"\\\\\s*(?:\n|$)", "\n".join(lines)) if r.strip()]
            return self.aligned(rows)
        if name == "longtable":
            return self.table(lines)
        if name == "figure":
            return self.figure_block("\n".join(lines))
        if name == "thebibliography":
            return self.bibliography(lines)
        if name == "verbatim":
            return "<pre><code>" + escape("\n".join(lines)) + "</code></pre>"
        raise DeriveError(f"HTML: unsupported LaTeX environment {name}")

    def display(self, tex):
        """One displayed equation (its \\tag becomes the anchor and the number)."""
        tag = _argument(tex, r"\tag") if r"\tag" in tex else None
        tex = re.sub(r"\\(tag|label)\{[^}]*\}", "", tex)
        tex = re.sub(r"\\(begin|end)\{split\}", "", tex).strip()
        anchor = f' id="eq:{escape(tag)}"' if tag else ""
        number = f'<span class="tag">({escape(tag)})</span>' if tag else ""
        return f'<div class="eq"{anchor}>{mathml_table(tex)}{number}</div>'

    def aligned(self, rows):
        """An align environment: one MathML table, its tags in a last column."""
        out = []
        for row in rows:
            tag = _argument(row, r"\tag") if r"\tag" in row else None
            row = re.sub(r"\\(tag|label)\{[^}]*\}", "", row).strip()
            cells = "".join(f"<mtd>{_inner(p.strip())}</mtd>" for p in COLUMN.split(row))
            if tag:
                cells += f'<mtd><mtext>({escape(tag)})</mtext></mtd>'
            out.append(f'<mtr id="eq:{escape(tag)}">{cells}</mtr>' if tag else f"<mtr>{cells}</mtr>")
        return ('<div class="eq"><math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'
                '<mtable columnalign="right left left left left" columnspacing="0.3em 1.5em">'
                + "".join(out) + "</mtable></math></div>")

    def table(self, lines):
        rows = []
        for line in lines:
            line = line.strip()
            if line.startswith(("\\toprule", "\\midrule", "\\bottomrule")) or not line:
                continue
            cells = [c.strip() for c in re.sub(r"\\\\\s*$", "", line).split(" & ")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{self.prose(c)}</{tag}>" for c in cells) + "</tr>")
        # in a scrolling box: a table of long equations is wider than a narrow window
        return "<div class=\"wide\"><table>" + "".join(rows) + "</table></div>"

    def bibliography(self, lines):
        """The references, numbered as \\cite shows them, each an anchor `bib-<key>`."""
        items = " ".join(line.strip() for line in lines).split("\\bibitem")[1:]
        out = []
        for item in items:
            key, text = _split_group(item)
            out.append(f'<li id="bib-{escape(key)}">{self.prose(text.strip())}</li>')
        self.toc.append((0, "references", "", "References"))
        return '<h2 id="references">References</h2><ol class="references">' + "".join(out) + "</ol>"

    def figure_block(self, text):
        label = _argument(text, r"\label")
        caption = self.prose(_argument(text, r"\caption"))
        drawing = self.svgs.get(label)
        if drawing is None and r"\IfFileExists" in text:
            fallback = _arguments(text, r"\IfFileExists", 3)[2]
            drawing = f"<p>{self.prose(fallback)}</p>"
        if drawing is None:
            raise DeriveError(f"HTML: no drawing for figure {label}")
        return (f'<figure id="{escape(label)}">{drawing}<figcaption>Figure {self.labels[label]}: '
                f"{caption}</figcaption></figure>")

    def prose(self, text: str) -> str:
        """Words, inline mathematics and the few text commands our template uses."""
        out, i = [], 0
        while i < len(text):
            ch = text[i]
            if ch == "$":
                end = text.index("$", i + 1)
                while text[end - 1] == "\\":
                    end = text.index("$", end + 1)
                i = _glued(out, mathml(text[i + 1:end], "inline"), text, end + 1)
            elif ch == "\\" and (text[i:i + 2] in SIMPLE):
                out.append(SIMPLE[text[i:i + 2]])
                i += 2
            elif ch == "\\":
                i = self._command(text, i, out)
            elif ch == "{":
                inner, end = _group(text, i)
                out.append(self.prose(inner))
                i = end
            elif text[i:i + 3] in SIMPLE or text[i:i + 2] in SIMPLE or ch in SIMPLE:
                key = next(k for k in (text[i:i + 3], text[i:i + 2], ch) if k in SIMPLE)
                out.append(SIMPLE[key])
                i += len(key)
            else:
                out.append(escape(ch))
                i += 1
        return "".join(out)

    def _command(self, text, i, out):
        name = re.match(r"\\([A-Za-z]+)", text[i:]).group(1)
        i += len(name) + 1
        if name in DROP:
            return i
        if name in TEXT_COMMANDS:
            out.append(escape(TEXT_COMMANDS[name]))
            return i + 2 if text[i:i + 2] == "{}" else i
        if name == "ref":
            label, i = _group(text, i)
            out.append(f'<a href="#{escape(label)}">{escape(self.labels.get(label, label))}</a>')
            return i
        if name == "cite":
            keys, i = _group(text, i)
            links = ", ".join(f'<a href="#bib-{escape(k.strip())}">{self.bib[k.strip()]}</a>'
                              for k in keys.split(","))
            out.append(f"[{links}]")
            return i
        if name in ("parbox", "label"):
            _, i = _group(text, i)
            if name == "label":
                return i
            inner, i = _group(text, i)
            out.append(self.prose(inner))
            return i
        if name in WRAP:
            inner, i = _group(text, i)
            tag = WRAP[name]
            out.append(f"<{tag}>{self.prose(inner)}</{tag}>" if tag else self.prose(inner))
            return i
        raise DeriveError(f"HTML: unsupported LaTeX command \\{name}")


GLUE = re.compile(r"(?:[^\s$\\{}~<&`'-]|'(?!')|-(?!-))+")   # touching a formula (not -- '' ~)


def _glued(out: list, formula: str, text: str, i: int) -> int:
    """Append `formula` to `out`; when characters touch it without a space (the "(" of
    "($H$)", a following ")," or "."), they and it become one unbreakable span, as TeX never
    breaks there but a browser would (a line may otherwise start with the formula and leave
    its "(" behind).  Returns the index in `text` after the characters taken from it."""
    before = []
    while out and len(out[-1]) == 1 and GLUE.fullmatch(out[-1]):
        before.insert(0, out.pop())
    after = GLUE.match(text, i)
    tail = after.group(0) if after else ""
    if not before and not tail:
        out.append(formula)
        return i
    out.append(f'<span class="nobr">{"".join(before)}{formula}{escape(tail)}</span>')
    return i + len(tail)


@lru_cache(maxsize=None)
def mathml(tex: str, display: str) -> str:
    """latex2mathml's MathML for one formula, without the & column marks of LaTeX."""
    return _tidy(convert(_text_math(COLUMN.sub(" ", tex).strip()), display=display))


UNARY_MINUS = re.compile(r"(<mo[^>]*>[^<]*</mo>|<mrow>|<mstyle[^>]*>|<math[^>]*>)<mo>&#x02212;</mo>")
ORDINARY = ("&#x0002F;", "&#x02202;")   # / and the partial-derivative sign
STRETCHY_PAIR = re.compile(
    r'<mrow><mo stretchy="true" fence="true" form="prefix">([^<]*)</mo>'
    r'((?:(?!stretchy="true").)*?)<mo stretchy="true" fence="true" form="postfix">([^<]*)</mo></mrow>')
TALL = ("<mfrac", "<munder", "<mover", "<mtable", "<msqrt")


def _fence(match) -> str:
    """A \\left( \\right) pair around content no taller than a line: plain fences (a
    browser stretches them anyway, and its stretched glyphs stand apart from what they hold)."""
    opening, inner, closing = match.groups()
    if any(tall in inner for tall in TALL):
        return match.group(0).replace('stretchy="true"', 'stretchy="kept"')
    return f'<mrow><mo stretchy="false">{opening}</mo>{inner}<mo stretchy="false">{closing}</mo></mrow>'


def _tidy(mathml_text: str) -> str:
    """latex2mathml's MathML, spaced as LaTeX spaces it: a minus after an operator, an opening
    fence or a comma is a sign, not a binary operator (no space around it: (-1, 1)), / and
    the partial sign are ordinary symbols (dl/dh), and parentheses around one line of content are not stretched (no space inside: sigma(a));
    escaped text characters unescaped."""
    mathml_text = UNARY_MINUS.sub(r'\1<mo form="prefix" lspace="0" rspace="0">&#x02212;</mo>', mathml_text)
    for ordinary in ORDINARY:   # symbols TeX sets without space, latex2mathml as operators
        mathml_text = mathml_text.replace(f"<mo>{ordinary}</mo>", f'<mo lspace="0" rspace="0">{ordinary}</mo>')
    while True:   # innermost pairs first: a tall pair keeps every pair around it stretchy
        tidied = STRETCHY_PAIR.sub(_fence, mathml_text)
        if tidied == mathml_text:
            break
        mathml_text = tidied
    return _unescape(mathml_text.replace('stretchy="kept"', 'stretchy="true"'))


def _unescape(mathml_text: str) -> str:
    """latex2mathml keeps escaped characters of `\\text{}` literally (`\\&` would even be
    invalid XML): write them as the characters they stand for."""
    for escaped, char in TEXT_ESCAPES.items():
        mathml_text = mathml_text.replace(escaped, char)
    return mathml_text


def _text_math(tex: str) -> str:
    """`\\text{words $x$ words}` (mathematics inside text) as text, formula, text."""
    out, i = [], 0
    while (j := tex.find(r"\text{", i)) >= 0:
        inner, end = _group(tex, j + len(r"\text"))
        parts = inner.split("$")
        out.append(tex[i:j] + "".join(p if n % 2 else rf"\text{{{p}}}" for n, p in enumerate(parts)))
        i = end
    return "".join(out) + tex[i:]


def mathml_table(tex: str) -> str:
    """A displayed formula; rows (\\\\) and & columns become a MathML table."""
    rows = [r for r in re.split(r"\\\\(?!\[)", tex) if r.strip()]
    if len(rows) == 1 and "&" not in tex:
        return mathml(tex, "block")
    cells = []
    for row in rows:
        parts = [p.strip() for p in COLUMN.split(row)]
        cells.append("<mtr>" + "".join(f"<mtd>{_inner(p)}</mtd>" for p in parts) + "</mtr>")
    return ('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">'
            '<mtable columnalign="right left left left">' + "".join(cells) + "</mtable></math>")


@lru_cache(maxsize=None)
def _inner(tex: str) -> str:
    if not tex:
        return "<mrow/>"
    text = _tidy(convert(_text_math(tex)))
    inner = text[text.index(">") + 1:text.rindex("</math>")]
    return f'<mstyle displaystyle="true">{inner}</mstyle>'


def _is_wrapper(line: str) -> bool:
    """Lines of the template that carry no content of their own (page-layout commands too)."""
    return (line.startswith(("{\\renewcommand", "\\needroom{")) or
            line in ("}", "\\maketitle", "\\stepopen", "\\stepclose", "\\endgroup") or
            re.fullmatch(r"\\begingroup\\(small|footnotesize|scriptsize)", line) is not None)


def _group(text: str, i: int) -> tuple[str, int]:
    """The brace group starting at text[i] == '{': (its inside, index after it)."""
    if text[i] != "{":
        raise DeriveError(f"HTML: expected '{{' in {text[i:i + 30]!r}")
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0) if text[j - 1] != "\\" or j == i else 0
        if depth == 0:
            return text[i + 1:j], j + 1
    raise DeriveError(f"HTML: unbalanced braces in {text[i:i + 30]!r}")


def _split_group(text: str) -> tuple[str, str]:
    inner, end = _group(text, text.index("{"))
    return inner, text[end:]


def _argument(text: str, command: str) -> str:
    return _arguments(text, command, 1)[0]


def _arguments(text: str, command: str, count: int) -> list[str]:
    i = text.index(command + "{") + len(command)
    found = []
    for _ in range(count):
        inner, i = _group(text, i)
        found.append(inner)
        while i < len(text) and text[i] in "%\n ":
            i += 1
    return found
