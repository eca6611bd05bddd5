"""The ``litestream.yml`` configuration, read the way Litestream 0.5 reads it (reference §7).

:func:`load_config` / :func:`parse_config` follow Litestream's steps (see
:mod:`replica.config.load`): find the file; expand ``$NAME`` / ``${NAME}`` in the whole
text with Go ``os.Expand`` rules (:func:`expand_env`); read the YAML the way
``gopkg.in/yaml.v2`` does (YAML 1.1 scalars such as ``yes``/``on``/``0600``, string
fields keeping the scalar's text, type errors collected into one ``yaml: unmarshal
errors:`` message with line numbers); copy the global replica settings into each
replica; validate with Litestream's messages (``<field>: <error> (got <value>)``); then
apply the per-database replica rules Litestream checks when it builds its databases.
Unlike Litestream, which ignores keys it does not know (so a misspelt ``retention:``
silently keeps the default), an unknown key is an error naming the key and its line;
keys starting with ``x-`` are left for the user (e.g. to hold YAML anchors).

The result is a tree of frozen attrs classes (:class:`Config`, :class:`DBConfig`,
:class:`ReplicaConfig`, ...). Durations are :class:`datetime.timedelta` (Go durations
are nanoseconds: a non-zero value below one microsecond is rounded away from zero so
that it stays non-zero). ``dir:`` entries are expanded into databases by
:func:`expand_dir_entries`; a replica becomes a URL for
:func:`replica.storage.url.parse_replica_url` with :meth:`ReplicaConfig.to_url` /
:meth:`ReplicaConfig.to_replica_url`. Every failure is a :class:`ConfigError` whose text
is Litestream's.

Modules: ``errors``, ``environ`` (``$VAR`` expansion), ``yamlv2`` (YAML
reading), ``schema`` (the attrs classes), ``hooks`` (cattrs structuring), ``inherit``
(global replica settings), ``validate``, ``database`` (per-database checks),
``backends`` (per-backend replica builders), ``discover`` (``dir:`` entries), ``paths``,
``bytesize`` and ``load``. The Go functions reproduced exactly live in :mod:`replica._go`; every default in
:mod:`replica.defaults`.
"""

from __future__ import annotations

from replica._go.duration import format_go_duration, parse_duration, parse_go_duration
from replica._go.expand import go_expand
from replica.config.bytesize import parse_byte_size
from replica.config.discover import (
    db_from_dir_entry,
    expand_dir_entries,
    find_sqlite_databases,
    go_match,
    is_sqlite_database,
)
from replica.config.environ import expand_env
from replica.config.errors import ConfigError
from replica.config.load import config_from_args, load_config, parse_config
from replica.config.paths import expand_path, strip_sqlite_prefix
from replica.config.schema import (
    DEFAULT_LEVELS,
    AgeConfig,
    Config,
    DBConfig,
    DBSnapshotConfig,
    LevelConfig,
    LoggingConfig,
    ReplicaConfig,
    ReplicaSettings,
    RetentionConfig,
    SnapshotConfig,
    SocketConfig,
    ValidationConfig,
    replica_url,
)

__all__ = [
    "DEFAULT_LEVELS",
    "AgeConfig",
    "Config",
    "ConfigError",
    "DBConfig",
    "DBSnapshotConfig",
    "LevelConfig",
    "LoggingConfig",
    "ReplicaConfig",
    "ReplicaSettings",
    "RetentionConfig",
    "SnapshotConfig",
    "SocketConfig",
    "ValidationConfig",
    "config_from_args",
    "db_from_dir_entry",
    "expand_dir_entries",
    "expand_env",
    "expand_path",
    "find_sqlite_databases",
    "format_go_duration",
    "go_expand",
    "go_match",
    "is_sqlite_database",
    "load_config",
    "parse_byte_size",
    "parse_config",
    "parse_duration",
    "parse_go_duration",
    "replica_url",
    "strip_sqlite_prefix",
]
