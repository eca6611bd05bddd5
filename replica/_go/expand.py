"""Go's ``os.Expand``: ``$NAME`` and ``${NAME}`` replaced by a mapping function.

Litestream expands the whole configuration text with it. Shell-like expanders in Python
(``os.path.expandvars``, ``string.Template``) differ on the edge cases that decide what a
config means: ``$$`` and ``$1`` are names here, ``${}`` and an unclosed ``${`` are eaten,
and a ``$`` before any other character is kept.
"""

from __future__ import annotations

from collections.abc import Callable


def _is_shell_special(c: str) -> bool:
    return c in "*#$@!?-0123456789"


def _is_alnum(c: str) -> bool:
    return c == "_" or ("0" <= c <= "9") or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _shell_name(s: str, start: int) -> tuple[str, int]:
    """Go's ``getShellName`` on ``s[start:]``: the name and how many characters it consumed."""
    n = len(s)
    c = s[start]
    if c == "{":
        if n - start > 2 and _is_shell_special(s[start + 1]) and s[start + 2] == "}":
            return s[start + 1], 3
        close = s.find("}", start + 1)
        if close == -1:
            return "", 1  # bad syntax: "${" is eaten
        if close == start + 1:
            return "", 2  # bad syntax: "${}" is eaten
        return s[start + 1 : close], close - start + 1
    if _is_shell_special(c):
        return c, 1
    i = start
    while i < n and _is_alnum(s[i]):
        i += 1
    return s[start:i], i - start


def go_expand(s: str, mapping: Callable[[str], str]) -> str:
    """Go's ``os.Expand``: replace ``$NAME`` and ``${NAME}`` with ``mapping(NAME)``.

    Names are runs of ASCII letters, digits and ``_``, or one of the special characters
    ``*#$@!?-0123456789``; ``${...}`` takes everything up to the first ``}``. ``${}`` and
    an unclosed ``${`` are removed; a ``$`` followed by any other character, or at the
    very end, is kept as is.
    """
    out: list[str] = []
    i = 0
    j = 0
    n = len(s)
    while j < n:
        if s[j] == "$" and j + 1 < n:
            out.append(s[i:j])
            name, width = _shell_name(s, j + 1)
            if name:
                out.append(mapping(name))
            elif width == 0:
                out.append("$")
            j += width
            i = j + 1
        j += 1
    if not out:
        return s
    return "".join(out) + s[i:]
