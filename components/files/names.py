"""Which file names and list prefixes a store may be given: relative paths that cannot climb out of
a root, whatever the store (checked by the service for every store, and again by file.local)."""

from __future__ import annotations

import re

# Control characters (NUL included) and the backslash, which Windows and some tools read as a
# separator: an encoded one (%5C) must not be a way to spell "..\\..".
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_NAME_BYTES = 1024
"""S3's limit for a key; a longer name is refused everywhere, so stores agree."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file, or None when it can."""
    if not name:
        return "the file name is empty"
    return _path_problem(name)


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a list prefix ("" lists everything), or None when it can. The
    last segment may be partial (``dir/re`` lists ``dir/report.csv``) but not ``.`` or ``..``."""
    if not prefix:
        return None
    return _path_problem(prefix.removesuffix("/") or "/", what="prefix")


def _path_problem(path: str, what: str = "file name") -> str | None:
    if len(path.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"the {what} is longer than {MAX_NAME_BYTES} bytes"
    found = _FORBIDDEN.search(path)
    if found:
        return f"{what} {path!r} contains the forbidden character {found.group()!r}"
    if path.startswith("/"):
        return f"{what} {path!r} is absolute: names are relative to the store's root"
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            return f"{what} {path!r} has an empty, '.' or '..' segment"
    return None
