"""The numbers LaTeX will print for our documents' headings and labels, read off the source.

`label_numbers(lines)` maps every `\\label` to its number (sections, subsections, figures,
equation tags) and `heading_numbers(lines)` numbers the unstarred headings, counting
exactly as `article` does for the constructs our template writes.  Two consumers need
them, neither through the other: the HTML reader (anchors and "Figure 2") and the PDF step
(the first pdflatex run starts from these labels).
"""
from __future__ import annotations

import re


def heading_numbers(lines) -> dict[int, str]:
    """line index -> the number LaTeX gives the (unstarred) section or subsection there."""
    numbers, counts = {}, [0, 0]
    for n, line in enumerate(lines):
        heading = re.match(r"\\(sub)?section(\*?)\{", line.strip())
        if heading and not heading.group(2):
            level = 1 if heading.group(1) else 0
            counts[level] += 1
            counts[1:] = [0] if level == 0 else counts[1:]
            numbers[n] = ".".join(map(str, counts[: level + 1]))
    return numbers


def label_numbers(lines) -> dict[str, str]:
    """label -> the number LaTeX prints for it: sections, subsections, figures, tags."""
    headings = heading_numbers(lines)
    labels, section, figure = {}, "", 0
    for n, line in enumerate(lines):
        section = headings.get(n, section)
        figure += line.strip().startswith(r"\begin{figure}")
        for label in re.findall(r"\\label\{([^}]*)\}", line):
            if label.startswith("sec:"):
                labels[label] = section
            elif label.startswith("fig:"):
                labels[label] = str(figure)
            else:
                labels[label] = label.split(":", 1)[1]
    return labels


def citation_numbers(lines) -> dict[str, int]:
    """bibliography key -> the number `\\cite` prints: the `\\bibitem`s counted in order."""
    items = (re.match(r"\\bibitem\{([^}]*)\}", line.strip()) for line in lines)
    return {m[1]: n for n, m in enumerate((m for m in items if m), 1)}
