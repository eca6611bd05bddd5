"""``dir:`` entries: the SQLite databases under a directory, each made a database entry (reference §7.4).

Discovery is Litestream's ``FindSQLiteDatabases``: Go's ``filepath.Walk`` from the
directory, descending only with ``recursive: true``, keeping files whose base name
matches ``pattern`` (Go ``filepath.Match``) and that start with the SQLite header. Each
file found gets the entry's settings, its replica with the file's relative path
appended, and its own meta path.
"""

from __future__ import annotations

import os
import posixpath
import stat
import urllib.parse
from collections.abc import Iterator
from typing import Final

import attrs

from replica._go.errors import GoError
from replica._go.match import BadPatternError, match
from replica._go.path import go_clean, go_join
from replica._go.url import PATH_SAFE
from replica._go.walk import SkipDir, walk
from replica.config.backends import parse_url
from replica.config.database import check_db, finish_db
from replica.config.errors import ConfigError
from replica.config.schema import Config, DBConfig, ReplicaConfig
from replica.defaults import META_DIR_SUFFIX, default_meta_path

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` on Unix: ``*``, ``?``, ``[a-z]``, ``[^...]``, ``\\`` escapes.

    Raises :class:`ConfigError` ``syntax error in pattern`` for a malformed pattern.
    """
    try:
        return match(pattern, name)
    except BadPatternError as e:
        raise ConfigError(str(e)) from None


def is_sqlite_database(path: str) -> bool:
    """Whether the file starts with the 16-byte header ``SQLite format 3\\0`` (unreadable → False)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def find_sqlite_databases(dir_path: str, pattern: str, recursive: bool) -> list[str]:
    """Litestream's ``FindSQLiteDatabases``: SQLite files under ``dir_path`` whose base name matches.

    Walks like Go's ``filepath.Walk`` (lexical order, symlinks not followed, a symlinked
    ``dir_path`` is not descended into) and only into subdirectories when ``recursive``.
    Raises :class:`ConfigError` with Go's text for a walk error or a bad pattern.
    """
    found: list[str] = []

    def visit(path: str, st: os.stat_result | None, err: GoError | None) -> None:
        if err is not None or st is None:
            raise ConfigError(str(err)) from None
        if stat.S_ISDIR(st.st_mode):
            if not recursive and path != dir_path:
                raise SkipDir
            return
        if go_match(pattern, posixpath.basename(path)) and is_sqlite_database(path):
            found.append(path)

    walk(dir_path, visit)
    return found


def _append_url_path(url: str, rel: str) -> str:
    """Go: parse ``url``, ``path.Join`` ``rel`` onto its path (kept rooted), ``u.String()``."""
    rel = rel.removeprefix("/")
    if rel in ("", "."):
        return url
    u = urllib.parse.urlsplit(url)
    base = urllib.parse.unquote(u.path)
    joined = go_join(base, rel) if base else rel
    joined = "/" + joined.removeprefix("/")
    return urllib.parse.urlunsplit(u._replace(path=urllib.parse.quote(joined, safe=PATH_SAFE)))


def _replica_for_rel(rc: ReplicaConfig, rel: str) -> ReplicaConfig:
    if rel in ("", "."):
        return rc
    if rc.url:
        try:
            parse_url(rc.url)
        except ConfigError as e:
            raise ConfigError(f"parse replica url: {e}") from e
        return attrs.evolve(rc, url=_append_url_path(rc.url, rel))
    # file: filepath.Join; other types: path.Join on slashes (the same thing on POSIX).
    return attrs.evolve(rc, path=go_join(rc.path, rel) if rc.path else rel)


def _meta_path_for_rel(base: str, rel: str) -> str:
    rel = go_clean(rel)
    if rel in (".", ""):
        return base
    rel_dir, rel_file = posixpath.split(rel)
    return go_join(base, rel_dir, "." + rel_file + META_DIR_SUFFIX)


def db_from_dir_entry(entry: DBConfig, db_path: str) -> DBConfig:
    """The database a ``dir:`` entry gives for the discovered file ``db_path`` (absolute).

    With ``rel`` = ``db_path`` relative to ``entry.dir``: the replica URL path or replica
    path gets ``/rel`` appended; the meta path is ``<meta-dir>/<rel>-litestream``, or
    ``<meta-path>/<dir of rel>/.<base>-litestream``, or the default next to the database.
    The replica is checked as Litestream does when it builds the database; errors are
    wrapped as ``failed to create DB for <db_path>: …``.
    """
    rel = posixpath.relpath(db_path, entry.dir)
    try:
        if entry.meta_dir is not None:
            meta_path = go_join(entry.meta_dir, rel + META_DIR_SUFFIX)
        elif entry.meta_path is not None:
            meta_path = _meta_path_for_rel(entry.meta_path, rel)
        else:
            meta_path = default_meta_path(db_path)
        replica = _replica_for_rel(entry.replica, rel) if entry.replica is not None else None
        replicas = tuple(_replica_for_rel(r, rel) for r in entry.replicas)
        db = attrs.evolve(
            entry,
            path=db_path,
            dir="",
            pattern="",
            recursive=False,
            watch=False,
            meta_path=meta_path,
            meta_dir=None,
            replica=replica,
            replicas=replicas,
        )
        check_db(db)
    except ConfigError as e:
        raise ConfigError(f"failed to create DB for {db_path}: {e}") from e
    return finish_db(db, None)


def _expand_dir_entry(entry: DBConfig) -> Iterator[DBConfig]:
    try:
        paths = find_sqlite_databases(entry.dir, entry.pattern, entry.recursive)
    except ConfigError as e:
        raise ConfigError(f"failed to scan directory {entry.dir}: {e}") from e
    if not paths and not entry.watch:
        raise ConfigError(f"no SQLite databases found in directory {entry.dir} with pattern {entry.pattern}")
    owners: dict[str, str] = {}
    for path in paths:
        db = db_from_dir_entry(entry, path)
        assert db.meta_path is not None
        if db.meta_path in owners:
            raise ConfigError(
                f"meta-path collision: databases {owners[db.meta_path]} and {path} would share meta-path "
                f"{db.meta_path}, causing replication state corruption"
            )
        owners[db.meta_path] = path
        yield db


def expand_dir_entries(config: Config) -> list[DBConfig]:
    """Every database of ``config``: path entries as they are, ``dir:`` entries discovered now.

    Discovery keeps files whose base name matches ``pattern`` (Go ``filepath.Match``) and
    that start with the SQLite header, recursing only with ``recursive: true``; each
    becomes :func:`db_from_dir_entry`. An empty result is an error unless ``watch: true``
    (``no SQLite databases found in directory D with pattern P``); two databases of one
    entry with the same meta path give ``meta-path collision: …``.
    """
    out: list[DBConfig] = []
    for db in config.dbs:
        if db.dir:
            out.extend(_expand_dir_entry(db))
        else:
            out.append(db)
    return out
