"""The report as a list of blocks (heading, note, table, image), and that list as Markdown or as
one self-contained HTML page.

The HTML page carries its figures as base64 data URIs and its style inline: no file, font, script
or stylesheet is fetched, so it opens the same from a laptop, a mail attachment or object storage.
Markdown refers to the PNG files beside it (figures/NAME.png).

Left out: a template engine (one page, a few tags) and JavaScript (nothing needs it).
"""

from __future__ import annotations

import base64
import dataclasses
import html


@dataclasses.dataclass
class Heading:
    text: str
    level: int = 2


@dataclasses.dataclass
class Paragraph:
    """A sentence or a few of what the study found (raysweep.report.findings)."""
    text: str


@dataclasses.dataclass
class Note:
    """Why something is missing, or what a reader must know to read what follows."""
    text: str


@dataclasses.dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclasses.dataclass
class Image:
    name: str      # file stem under figures/, unique in a report
    caption: str
    png: bytes
    wide: bool = False   # across the page's width in HTML, not one of a grid's columns


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = [f"**{t.caption}**", "", "| " + " | ".join(map(_md_cell, t.header)) + " |",
             "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


MARKDOWN = {
    Heading: lambda b: "#" * b.level + " " + b.text,
    Paragraph: lambda b: b.text,
    Note: lambda b: "> " + b.text.replace("\n", "\n> "),
    Table: _md_table,
    Image: lambda b: f"![{b.name}](figures/{b.name}.png)\n\n*{b.caption}*",
}


def to_markdown(blocks: list) -> str:
    return "\n\n".join(MARKDOWN[type(b)](b) for b in blocks) + "\n"


def _html_table(t: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                   for row in t.rows)
    return (f"<table><caption>{e(t.caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _html_image(b: Image) -> str:
    data = base64.b64encode(b.png).decode("ascii")
    wide = ' class="wide"' if b.wide else ""
    return (f'<figure id="{html.escape(b.name)}"{wide}><img alt="{html.escape(b.caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(b.caption)}'
            f"</figcaption></figure>")


HTML = {
    Heading: lambda b: f"<h{b.level}>{html.escape(b.text)}</h{b.level}>",
    Paragraph: lambda b: f'<p class="finding">{html.escape(b.text)}</p>',
    Note: lambda b: f'<p class="note">{html.escape(b.text)}</p>',
    Table: _html_table,
    Image: _html_image,
}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1600px; margin: 1em auto; padding: 0 1em;
       color: #222; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
           gap: 1em; }
figure { margin: 0; } img { max-width: 100%; height: auto; }
figure.wide { grid-column: 1 / -1; }
.finding { font-size: 1.05em; margin: 0.4em 0; max-width: 75em; }
h1 { margin: 0.2em 0; } h2 { margin: 0.6em 0 0.3em; } h3 { margin: 0.4em 0 0.2em; }
figcaption { font-size: 0.85em; color: #444; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f3f3f3; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
"""


def to_text(t: Table) -> str:
    """A table for the terminal: caption, header, a rule, rows; columns padded to their widest."""
    cells = [list(map(str, t.header))] + [list(map(str, r)) for r in t.rows]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(t.header))]

    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
    return "\n".join([t.caption, line(cells[0]), line(["-" * w for w in widths])]
                     + [line(r) for r in cells[1:]])


def to_html(blocks: list, title: str) -> str:
    """One page; consecutive images share a grid that puts two side by side on a wide screen."""
    parts, in_grid = [], False
    for b in blocks:
        if isinstance(b, Image) != in_grid:
            parts.append('<div class="figures">' if not in_grid else "</div>")
            in_grid = not in_grid
        parts.append(HTML[type(b)](b))
    if in_grid:
        parts.append("</div>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
