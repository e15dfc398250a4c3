"""Every relative link in the README, docs/ and results/ points at a file that exists, and every #anchor into a
Markdown page at one of its headings (GitHub's slugs)."""

import re

from .conftest import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def slugs(page) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if re.match(r"#{1,6} ", line)}


def test_relative_links_and_anchors_resolve():
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "results").rglob("*.md")]
    broken = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            path, _, anchor = target.partition("#")
            if "://" in target or target.startswith("mailto:"):
                continue
            dest = page.parent / path if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
            elif anchor and dest.suffix == ".md" and anchor not in slugs(dest):
                broken.append(f"{page.relative_to(ROOT)} -> {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_slugs_follow_github():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        page = Path(d) / "p.md"
        page.write_text("# Title\n## `make run`'s preset is class-conditional\n### The speckle: x0 at low noise\n")
        assert slugs(page) == {"title", "make-runs-preset-is-class-conditional", "the-speckle-x0-at-low-noise"}
