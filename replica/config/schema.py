"""The configuration's shape: frozen attrs classes mirroring Litestream's Go structs.

Field metadata tells :mod:`replica.config.hooks` how yaml.v2 would decode a field:
:data:`YAML_KEY` (the key when it is not the field name with ``-`` for ``_``),
:data:`GO_TYPE` (``int64``, ``uint32`` or ``bytesize`` where the Go type is not
``int``), :data:`NULL_ZERO` (an explicit null gives the zero value, not the default),
:data:`INLINE` (decoded from the parent mapping, Go's ``yaml:",inline"``) and
:data:`SKIP` (never read from YAML). :func:`go_name` gives the Go type named in
yaml.v2's error messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Final, get_args, get_origin

import attrs

from replica.config.backends import build_replica, type_from_url
from replica.config.errors import ConfigError
from replica.defaults import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_CHECKPOINT_INTERVAL,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_L0_RETENTION,
    DEFAULT_L0_RETENTION_CHECK_INTERVAL,
    DEFAULT_LEVEL_INTERVALS,
    DEFAULT_MAX_SYNC_LTX_FILES,
    DEFAULT_MAX_SYNC_WAL_BYTES,
    DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
    DEFAULT_MONITOR_INTERVAL,
    DEFAULT_SHUTDOWN_SYNC_INTERVAL,
    DEFAULT_SHUTDOWN_SYNC_TIMEOUT,
    DEFAULT_SNAPSHOT_INTERVAL,
    DEFAULT_SNAPSHOT_RETENTION,
    DEFAULT_SOCKET_PATH,
    DEFAULT_SYNC_INTERVAL,
    DEFAULT_TRUNCATE_PAGE_N,
)
from replica.storage.url import ReplicaURL

YAML_KEY: Final = "yaml_key"
GO_TYPE: Final = "go_type"
NULL_ZERO: Final = "null_zero"
INLINE: Final = "inline"
SKIP: Final = "skip"


def yaml_key(f: attrs.Attribute[Any]) -> str:
    """The YAML key of field ``f``."""
    key = f.metadata.get(YAML_KEY)
    return str(key) if key else f.name.replace("_", "-")


def _tuple(factory: Callable[[], Any] = tuple, **meta: Any) -> Any:
    return attrs.field(factory=factory, metadata=meta, converter=tuple)


@attrs.frozen
class AgeConfig:
    """``age:`` (encryption). Parsed only so it can be rejected, as Litestream 0.5 does."""

    identities: tuple[str, ...] = _tuple()
    recipients: tuple[str, ...] = _tuple()


@attrs.frozen
class ReplicaSettings:
    """Settings a replica shares with the global inline defaults (every replica key but
    ``type``/``path``/``url``/``name``).

    ``None`` means "not set" for the pointer-typed keys (the backend's default applies);
    ``""`` means not set for strings. ``sync_interval``, ``max_sync_ltx_files`` and
    ``auto_recover`` carry Litestream's defaults. Secrets are kept out of ``repr``.
    """

    sync_interval: dt.timedelta = DEFAULT_SYNC_INTERVAL
    validation_interval: dt.timedelta | None = None
    max_sync_ltx_files: int = DEFAULT_MAX_SYNC_LTX_FILES
    auto_recover: bool = False
    # S3 (and OSS)
    access_key_id: str = attrs.field(default="", repr=False)
    secret_access_key: str = attrs.field(default="", repr=False)
    region: str = ""
    bucket: str = ""
    endpoint: str = ""
    force_path_style: bool | None = None
    sign_payload: bool | None = None
    require_content_md5: bool | None = None
    skip_verify: bool = False
    storage_class: str = ""
    part_size: int | None = attrs.field(default=None, metadata={GO_TYPE: "bytesize"})
    concurrency: int | None = None
    sse_customer_algorithm: str = ""
    sse_customer_key: str = attrs.field(default="", repr=False)
    sse_customer_key_path: str = ""
    sse_kms_key_id: str = ""
    # Azure Blob Storage
    account_name: str = ""
    account_key: str = attrs.field(default="", repr=False)
    sas_token: str = attrs.field(default="", repr=False)
    # SFTP
    host: str = ""
    user: str = ""
    password: str = attrs.field(default="", repr=False)
    key_path: str = ""
    concurrent_writes: bool | None = None
    host_key: str = ""
    # WebDAV
    webdav_url: str = ""
    webdav_username: str = ""
    webdav_password: str = attrs.field(default="", repr=False)
    # NATS
    jwt: str = attrs.field(default="", repr=False)
    seed: str = attrs.field(default="", repr=False)
    creds: str = ""
    nkey: str = attrs.field(default="", repr=False)
    username: str = ""
    token: str = attrs.field(default="", repr=False)
    tls: bool | None = None
    root_cas: tuple[str, ...] = attrs.field(factory=tuple, converter=tuple)
    client_cert: str = ""
    client_key: str = ""
    max_reconnects: int | None = None
    reconnect_wait: dt.timedelta | None = None
    timeout: dt.timedelta | None = None
    age: AgeConfig = AgeConfig()


@attrs.frozen
class ReplicaConfig(ReplicaSettings):
    """One ``replica:`` entry: where (``type`` + ``url`` or ``path``) and the settings.

    After :func:`~replica.config.parse_config`, the global inline settings have been
    copied into every setting this replica did not set, and a ``file`` replica's ``path``
    is absolute. :attr:`replica_type` is the effective type; :meth:`to_url` /
    :meth:`to_replica_url` give the replica URL (explicit YAML keys win over values in
    ``url``).
    """

    type: str = ""
    name: str = ""  # deprecated; ignored
    path: str = ""
    url: str = ""

    @property
    def replica_type(self) -> str:
        """The effective type: the scheme of ``url`` if it has one (``webdavs`` counts as
        ``webdav``), else ``type``, else ``file``."""
        return type_from_url(self.url) or self.type or "file"

    def to_url(self) -> str:
        """The replica as a URL string for :func:`~replica.storage.url.parse_replica_url`.

        ``file:///abs/path``, ``s3://bucket/path?endpoint=…&region=…&force-path-style=…``
        (every resolved S3 option is spelled out), ``gs://bucket/path``,
        ``abs://[account@]container/path``, ``sftp://user[:password]@host/path``,
        ``webdav[s]://[user:password@]host/path``. The string can contain secrets
        (passwords, an SSE-C key): do not log it. Credentials that URLs cannot carry
        (``access-key-id``, ``account-key``, ``key-path``, …) stay on this object.

        Raises :class:`ConfigError` with Litestream's message when the replica is not
        usable (e.g. ``bucket required for s3 replica``), or when its type (``nats``,
        ``oss``) is not supported by this implementation.
        """
        return build_replica(self).url

    def to_replica_url(self) -> ReplicaURL:
        """Like :meth:`to_url`, but already parsed, and exact where a URL string is lossy:
        an S3 ``bucket:`` without ``path:`` keeps the empty key prefix (keys ``/0000/…``,
        as Litestream writes them) and the bucket/path are taken verbatim."""
        return build_replica(self).parsed()


def replica_url(rc: ReplicaConfig | None) -> str:
    """:meth:`ReplicaConfig.to_url` as a function; ``None`` (a database without a replica)
    raises Litestream's ``must specify replica for database``."""
    if rc is None:
        raise ConfigError("must specify replica for database")
    return rc.to_url()


@attrs.frozen
class LevelConfig:
    """One compaction level above L0 (``levels[i]``)."""

    interval: dt.timedelta = dt.timedelta(0)


DEFAULT_LEVELS: Final = tuple(LevelConfig(interval) for interval in DEFAULT_LEVEL_INTERVALS)


@attrs.frozen
class SnapshotConfig:
    """Store-wide ``snapshot:`` settings (defaults 24 h / 24 h, also when the section is empty)."""

    interval: dt.timedelta = DEFAULT_SNAPSHOT_INTERVAL
    retention: dt.timedelta = DEFAULT_SNAPSHOT_RETENTION


@attrs.frozen
class DBSnapshotConfig:
    """``dbs[].snapshot:``; ``None`` = not set. Promoted to the global values when those are not set."""

    interval: dt.timedelta | None = None
    retention: dt.timedelta | None = None


@attrs.frozen
class SocketConfig:
    """``socket:`` (control socket). An empty ``socket:`` section clears ``path`` and ``permissions``."""

    enabled: bool = False
    path: str = attrs.field(default=DEFAULT_SOCKET_PATH, metadata={NULL_ZERO: True})
    permissions: int = attrs.field(default=0o600, metadata={NULL_ZERO: True, GO_TYPE: "uint32"})


@attrs.frozen
class RetentionConfig:
    """``retention:``; ``enabled: false`` means no remote deletions."""

    enabled: bool = True


@attrs.frozen
class ValidationConfig:
    """``validation:``; ``interval`` ``None`` = no periodic validation."""

    interval: dt.timedelta | None = None


@attrs.frozen
class LoggingConfig:
    """``logging:``. ``level`` is overridden by a non-empty ``$LOG_LEVEL`` at load time."""

    level: str = "INFO"
    type: str = "text"
    stderr: bool = False
    source: bool = False


@attrs.frozen
class DBConfig:
    """One ``dbs[]`` entry: a database ``path`` or a ``dir`` + ``pattern`` to discover.

    After :func:`~replica.config.parse_config`: ``path`` is absolute (``sqlite://``
    stripped, ``~`` expanded); a path entry has ``meta_path`` set (default
    ``<dir>/.<base>-litestream``) and its single replica in ``replica`` (a one-element
    ``replicas:`` list is moved there). A ``dir`` entry keeps its replica as a template
    for :func:`~replica.config.expand_dir_entries`; ``dir``, ``meta_path`` and
    ``meta_dir`` are absolute. ``monitor_interval`` 0 turns background syncing off,
    ``checkpoint_interval`` 0 turns time-based checkpoints off, ``truncate_page_n`` 0
    means the default and ``max_sync_wal_bytes`` 0 means unlimited.
    """

    path: str = ""
    dir: str = ""
    pattern: str = ""
    recursive: bool = False
    watch: bool = False
    snapshot: DBSnapshotConfig = DBSnapshotConfig()
    meta_path: str | None = None
    meta_dir: str | None = None
    monitor_interval: dt.timedelta = DEFAULT_MONITOR_INTERVAL
    checkpoint_interval: dt.timedelta = DEFAULT_CHECKPOINT_INTERVAL
    busy_timeout: dt.timedelta = DEFAULT_BUSY_TIMEOUT
    min_checkpoint_page_count: int = DEFAULT_MIN_CHECKPOINT_PAGE_COUNT
    truncate_page_n: int = DEFAULT_TRUNCATE_PAGE_N
    max_sync_wal_bytes: int = attrs.field(default=DEFAULT_MAX_SYNC_WAL_BYTES, metadata={GO_TYPE: "int64"})
    restore_if_db_not_exists: bool = False
    replica: ReplicaConfig | None = None
    replicas: tuple[ReplicaConfig, ...] = _tuple()

    @property
    def identifier(self) -> str:
        """``path``, or ``dir`` for a directory entry (how Litestream names the entry in messages)."""
        return self.path or self.dir


@attrs.frozen
class Config:
    """The whole configuration file (reference §7.2).

    ``replica_settings`` holds the global inline replica settings (already copied into
    each replica by :func:`~replica.config.parse_config`). An empty ``levels:`` means no
    compaction levels; ``l0_retention`` 0 turns L0 deletion off; ``config_path`` is the
    file read.
    """

    replica_settings: ReplicaSettings = attrs.field(factory=ReplicaSettings, metadata={INLINE: True})
    addr: str = ""
    socket: SocketConfig = attrs.field(factory=SocketConfig, metadata={NULL_ZERO: True})
    levels: tuple[LevelConfig, ...] = attrs.field(
        default=DEFAULT_LEVELS, converter=tuple, metadata={NULL_ZERO: True}
    )
    snapshot: SnapshotConfig = SnapshotConfig()
    validation: ValidationConfig = ValidationConfig()
    l0_retention: dt.timedelta = DEFAULT_L0_RETENTION
    l0_retention_check_interval: dt.timedelta = DEFAULT_L0_RETENTION_CHECK_INTERVAL
    verify_compaction: bool = False
    retention: RetentionConfig = RetentionConfig()
    heartbeat_url: str = ""
    heartbeat_interval: dt.timedelta = DEFAULT_HEARTBEAT_INTERVAL
    dbs: tuple[DBConfig, ...] = _tuple()
    exec: str = ""
    logging: LoggingConfig = LoggingConfig()
    mcp_addr: str = ""
    shutdown_sync_timeout: dt.timedelta = DEFAULT_SHUTDOWN_SYNC_TIMEOUT
    shutdown_sync_interval: dt.timedelta = DEFAULT_SHUTDOWN_SYNC_INTERVAL
    config_path: str | None = attrs.field(default=None, metadata={SKIP: True})

    @property
    def snapshot_interval(self) -> dt.timedelta:
        """``snapshot.interval`` (after per-database promotion)."""
        return self.snapshot.interval

    @property
    def snapshot_retention(self) -> dt.timedelta:
        """``snapshot.retention`` (after per-database promotion)."""
        return self.snapshot.retention

    @property
    def retention_enabled(self) -> bool:
        """``retention.enabled``: false means nothing is ever deleted from the replica."""
        return self.retention.enabled

    @property
    def validation_interval(self) -> dt.timedelta | None:
        """``validation.interval``; ``None`` when periodic validation is off."""
        return self.validation.interval


_GO_NAMES: Final[dict[type, str]] = {
    Config: "main.Config",
    DBConfig: "main.DBConfig",
    ReplicaConfig: "main.ReplicaConfig",
    ReplicaSettings: "main.ReplicaSettings",
    LevelConfig: "main.CompactionLevelConfig",
    SnapshotConfig: "main.SnapshotConfig",
    DBSnapshotConfig: "main.SnapshotConfig",
    SocketConfig: "litestream.SocketConfig",
    RetentionConfig: "main.RetentionConfig",
    ValidationConfig: "main.ValidationConfig",
    LoggingConfig: "internal.LoggingConfig",
    AgeConfig: 'struct { Identities []string "yaml:\\"identities\\""; '
    'Recipients []string "yaml:\\"recipients\\"" }',
}

ROOT_GO_TYPE: Final = 'struct { Snapshot *main.SnapshotConfig "yaml:\\"snapshot\\"" }'
"""The type yaml.v2 first decodes a whole document into (only to read ``snapshot:``)."""


for _cls in _GO_NAMES:
    attrs.resolve_types(_cls)


def go_name(t: Any) -> str:
    """The Go type yaml.v2 names in its errors for the Python type ``t``."""
    if t in _GO_NAMES:
        return _GO_NAMES[t]
    if get_origin(t) is tuple:
        elem = get_args(t)[0]
        return "[]*" + go_name(elem) if attrs.has(elem) else "[]" + go_name(elem)
    return {str: "string", bool: "bool", int: "int", dt.timedelta: "time.Duration"}.get(t, str(t))
