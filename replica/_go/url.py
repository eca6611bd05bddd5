"""The parts of Go's ``url.Parse`` that decide how Litestream reads a replica URL.

:func:`urllib.parse.urlsplit` accepts invalid percent-escapes and keeps the path
escaped; Go rejects a bad escape before the query with ``parse "…": invalid URL escape
"%zz"``, lower-cases the scheme, decodes the path and user information, and treats a
string without a ``scheme:`` prefix as a bare path. ``url.Values.Get`` semantics
(first value of a key, ``""`` when absent) are reproduced on the query.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Final

import attrs

from replica._go.errors import GoError
from replica._go.strconv import quote

_SCHEME_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")

PATH_SAFE: Final = "/$&+,:;=@"
"""Characters Go's ``URL.String`` leaves unescaped in a path."""


@attrs.frozen
class GoURL:
    """What Go's ``url.Parse`` gives for a replica URL (path decoded)."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    path: str
    query: tuple[tuple[str, str], ...]

    def get(self, *names: str) -> str:
        """Go's ``url.Values.Get`` over ``names`` in order: the first non-empty first value."""
        for name in names:
            for k, v in self.query:
                if k == name:
                    if v:
                        return v
                    break
        return ""


def parse_url(s: str) -> GoURL:
    """Go's ``url.Parse`` as Litestream relies on it.

    A bad percent-escape before the query raises :class:`GoError`
    ``parse "<s>": invalid URL escape "%.."``.
    """
    m = _SCHEME_RE.match(s)
    before_query = s.split("?", 1)[0]
    bad = _BAD_ESCAPE.search(before_query)
    if bad is not None:
        raise GoError(f"parse {quote(s)}: invalid URL escape {quote(s[bad.start() : bad.start() + 3])}")
    if m is None:
        return GoURL("", None, None, "", urllib.parse.unquote(before_query), ())
    u = urllib.parse.urlsplit(s)
    userinfo, at, host = u.netloc.rpartition("@")
    user: str | None = None
    password: str | None = None
    if at:
        name, colon, pw = userinfo.partition(":")
        user = urllib.parse.unquote(name)
        password = urllib.parse.unquote(pw) if colon else None
    query = tuple(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    return GoURL(m.group(1).lower(), user, password, host, urllib.parse.unquote(u.path), query)
