"""The header's file filter: which files a run takes, and which rows the table shows."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

_GLOB = re.compile(r"[*?\[]")


def _tokens(value: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", value.strip()) if t]


def split_filter(value: str, root: Path) -> tuple[list[str], list[str]]:
    """Split the header's filter into paths (that exist under ``root``) and key patterns.

    A token with ``*``, ``?`` or ``[`` is a glob on file keys; a token naming a
    file or folder is a path; any other token matches keys containing it.
    """
    paths: list[str] = []
    patterns: list[str] = []
    for token in _tokens(value):
        if _GLOB.search(token):
            patterns.append(token)
        elif (root / token).exists():
            paths.append(token)
        else:
            patterns.append(f"*{token}*")
    return paths, patterns


def matches(key: str, filter_text: str) -> bool:
    """Whether a file key matches the header's filter: any of its tokens, a glob (``*``,
    ``?``, ``[``) on the key or else a part of it ('' matches every file)."""
    tokens = [t.removeprefix("./") for t in _tokens(filter_text)]  # a path as typed
    if not tokens:
        return True
    return any(fnmatch.fnmatchcase(key, t) if _GLOB.search(t) else t in key for t in tokens)
