"""The figures manifest, RUN/figures/figures.json: each figure file's caption, written beside the figure by whoever
draws it and read by the report, so the report never parses file names."""

from __future__ import annotations

import json
from pathlib import Path

from .. import files

MANIFEST = "figures.json"


def record_caption(path: Path, caption: str) -> None:
    """Note in its folder's manifest what the figure at `path` shows (the report's caption for it)."""
    manifest = Path(path).parent / MANIFEST
    entries = captions(manifest.parent)
    entries[Path(path).name] = caption
    files.atomic_write_bytes(manifest, (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode())


def captions(folder: Path) -> dict[str, str]:
    """File name -> caption, from the folder's manifest ({} when there is none or it is unreadable)."""
    manifest = Path(folder) / MANIFEST
    try:
        entries = json.loads(manifest.read_text()) if files.cache_entry(manifest) else {}
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(entries, dict) else {}
