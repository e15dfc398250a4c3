"""A report as a list of blocks, rendered twice: one self-contained HTML page and a Markdown twin.

The HTML embeds every image as a base64 data URI and carries its CSS inline: no scripts, fonts or
other requests, so the page opens offline and can be mailed as one file. The Markdown references
PNG files written next to it (img/), for viewers that render Markdown (GitHub, editors).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Missing:
    """A clear statement that something was not measured, in place of an empty plot or table."""
    text: str


@dataclass
class Table:
    id: str
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Image:
    name: str  # file stem in the Markdown twin's img/ folder; unique within a report
    png: bytes
    caption: str
    alt: str = ""


@dataclass
class Gallery:
    """Images side by side (e.g. sample grids at epochs 1, 20, 40, 60) under one caption."""
    images: list[Image] = field(default_factory=list)
    caption: str = ""


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: .3em .6em; text-align: left; vertical-align: top; }
thead th { background: #eee; }
caption { caption-side: bottom; font-style: italic; padding-top: .4em; text-align: left; }
figure { margin: 1em 0; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-style: italic; font-size: .92em; }
.gallery { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.gallery figure { margin: 0; }
.missing { color: #8a4b00; background: #fff6e5; border-left: 4px solid #e0a030; padding: .4em .8em; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _img_html(img: Image) -> str:
    data = base64.b64encode(img.png).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(img.alt or img.caption)}">'
            f"<figcaption>{html.escape(img.caption)}</figcaption></figure>")


def to_html(title: str, blocks: list) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f'<h{b.level} id="sec-{_slug(b.text)}">{html.escape(b.text)}</h{b.level}>')
        elif isinstance(b, Text):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Missing):
            out.append(f'<p class="missing"><strong>Not measured:</strong> {html.escape(b.text)}</p>')
        elif isinstance(b, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                           for row in b.rows)
            cap = f"<caption>{html.escape(b.caption)}</caption>" if b.caption else ""
            out.append(f'<table id="{b.id}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        elif isinstance(b, Image):
            out.append(_img_html(b))
        elif isinstance(b, Gallery):
            inner = "".join(_img_html(i) for i in b.images)
            cap = f"<p><em>{html.escape(b.caption)}</em></p>" if b.caption else ""
            out.append(f'<div class="gallery">{inner}</div>{cap}')
        else:
            raise TypeError(f"unknown report block {b!r}")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list, img_dir: str = "img") -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the PNG files it references ({relative path: bytes})."""
    out, files = [f"# {title}", ""], {}

    def ref(img: Image) -> str:
        path = f"{img_dir}/{img.name}.png"
        files[path] = img.png
        return f"![{_md_cell(img.alt or img.caption)}]({path})"

    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Text):
            out += [b.text, ""]
        elif isinstance(b, Missing):
            out += [f"> **Not measured:** {b.text}", ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out += ["", f"*{b.caption}*", ""] if b.caption else [""]
        elif isinstance(b, Image):
            out += [ref(b), "", f"*{b.caption}*", ""]
        elif isinstance(b, Gallery):
            # a one-row table keeps each image's own caption (e.g. its epoch) above it
            out.append("| " + " | ".join(_md_cell(i.caption) for i in b.images) + " |")
            out.append("|" + "---|" * len(b.images))
            out.append("| " + " | ".join(ref(i) for i in b.images) + " |")
            out += ["", f"*{b.caption}*", ""] if b.caption else [""]
        else:
            raise TypeError(f"unknown report block {b!r}")
    return "\n".join(out), files
