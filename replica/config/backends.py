"""Per-backend replica builders: Litestream's ``NewReplicaFromConfig`` and its client constructors.

A replica entry (``type`` + ``url`` or ``path`` + the backend's keys) is checked in
Litestream's order and with its messages, then turned into the URL this implementation
opens (:class:`Built`). Explicit YAML keys win over values in ``url``; S3 endpoints get
Litestream's provider defaults (path style for MinIO-like hosts, Filebase, Backblaze
and Supabase; no content MD5 for Tigris; concurrency 2 for R2). ``nats`` and ``oss``
replicas are checked but cannot be built here (reference §7.3 / §7.5).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import attrs

from replica._go.errors import GoError
from replica._go.oserror import path_error
from replica._go.path import go_clean, go_join
from replica._go.strconv import INT64_MAX, quote
from replica._go.url import PATH_SAFE, GoURL
from replica._go.url import parse_url as _go_url_parse
from replica.config.errors import ConfigError
from replica.config.paths import expand_path
from replica.defaults import S3_DEFAULT_R2_CONCURRENCY
from replica.errors import ReplicaURLError
from replica.storage.url import (
    ReplicaURL,
    S3Options,
    endpoint_with_scheme,
    parse_bool,
    parse_replica_url,
)

if TYPE_CHECKING:
    from replica.config.schema import ReplicaConfig

_URL_RE: Final = re.compile(r"^\w+://")
_DECIMAL_INT: Final = re.compile(r"[-+]?[0-9]+")


def is_url(s: str) -> bool:
    """Litestream's ``isURL``: ``s`` starts with ``scheme://``."""
    return _URL_RE.match(s) is not None


def parse_url(s: str) -> GoURL:
    """Go's ``url.Parse`` (:func:`replica._go.url.parse_url`), failing with :class:`ConfigError`."""
    try:
        return _go_url_parse(s)
    except GoError as e:
        raise ConfigError(str(e)) from None


def _go_parse_replica_url(url: str) -> GoURL:
    """Litestream's ``ParseReplicaURL``: a URL that must have a scheme."""
    u = parse_url(url)
    if not u.scheme:
        raise ConfigError(f"replica url scheme required: {url}")
    return u


def type_from_url(url: str) -> str:
    """The type ``url`` names: its scheme (``webdavs`` as ``webdav``); ``""`` for none or a bad URL."""
    if not url:
        return ""
    try:
        scheme = parse_url(url).scheme
    except ConfigError:
        return ""
    return "webdav" if scheme == "webdavs" else scheme


def _object_path(u: GoURL) -> str:
    """``strings.TrimPrefix(path.Clean(u.Path), "/")``: ``"."`` for an empty path."""
    return go_clean(u.path).removeprefix("/")


def _go_file_url_path(url: str) -> str:
    """Litestream's path for a ``file`` URL: the URL without its scheme, cleaned."""
    u = _go_parse_replica_url(url)
    rest = url[len(u.scheme) + 1 :]
    if rest.startswith("//"):
        split = urllib.parse.urlsplit(url)
        escaped = urllib.parse.quote(u.path, safe=PATH_SAFE)
        rest = "//" + split.netloc + escaped + (("?" + split.query) if split.query else "")
    return go_clean(rest)


def _check_exclusive(rc: ReplicaConfig, kind: str, other: str, other_value: str) -> None:
    if rc.url and rc.path:
        raise ConfigError(f"cannot specify url & path for {kind} replica")
    if rc.url and other_value:
        raise ConfigError(f"cannot specify url & {other} for {kind} replica")


@attrs.frozen
class Built:
    """A resolved replica: its URL string and, for exactness, the fields a string can lose."""

    url: str
    host: str | None = None
    path: str | None = None
    s3: S3Options | None = None

    def parsed(self) -> ReplicaURL:
        """:attr:`url` parsed, with the exact host, path and S3 options put back."""
        try:
            u = parse_replica_url(self.url)
        except ReplicaURLError as e:
            raise ConfigError(e.message) from e
        changes: dict[str, Any] = {}
        if self.host is not None:
            changes["host"] = self.host
        if self.path is not None:
            changes["path"] = self.path
        if self.s3 is not None:
            changes["s3"] = self.s3
        return attrs.evolve(u, **changes) if changes else u


def _quote_user(user: str, password: str) -> str:
    if not user and not password:
        return ""
    auth = urllib.parse.quote(user, safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    return auth + "@"


def _build_file(rc: ReplicaConfig) -> Built:
    if rc.url and rc.path:
        raise ConfigError("cannot specify url & path for file replica")
    path = _go_file_url_path(rc.url) if rc.url else rc.path
    if not path:
        raise ConfigError("file replica path required")
    path = expand_path(path)
    return Built(f"file://{path}", path=path)


def _endpoint_host(endpoint: str) -> str:
    e = endpoint.strip().lower()
    if not e:
        return ""
    if e.startswith(("http://", "https://")):
        netloc = urllib.parse.urlsplit(e).netloc
        if netloc:
            return "" if "@" in netloc else netloc
    return "" if "@" in e.split("/", 1)[0] else e


_NOT_MINIO: Final = (
    ".amazonaws.com",
    ".digitaloceanspaces.com",
    ".backblazeb2.com",
    ".filebase.com",
    ".scw.cloud",
    ".r2.cloudflarestorage.com",
    "tigris.dev",
    "t3.storage.dev",
    ".supabase.co",
)


def _positive_query_int(u: GoURL, *names: str) -> int | None:
    for name in names:
        raw = u.get(name)
        if raw:
            n = int(raw) if _DECIMAL_INT.fullmatch(raw) else None
            if n is None or n <= 0 or n > INT64_MAX:
                raise ConfigError(
                    f"invalid value for query parameter {quote(name)}: {quote(raw)} "
                    "(must be a positive integer)"
                )
            return n
    return None


def _read_sse_key(path: str) -> str:
    key_path = path
    if key_path.startswith("~"):
        home = os.environ.get("HOME", "")
        if not home:
            raise ConfigError("cannot expand home directory for sse-customer-key-path: $HOME is not defined")
        key_path = home + key_path[1:]
    try:
        with open(key_path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().strip()
    except OSError as e:
        raise ConfigError(
            f"cannot read sse-customer-key-path {quote(path)}: {path_error('open', key_path, e)}"
        ) from e


def _build_s3(rc: ReplicaConfig) -> Built:
    _check_exclusive(rc, "s3", "bucket", rc.bucket)
    bucket, path, region, endpoint = rc.bucket, rc.path, rc.region, rc.endpoint
    skip_verify, storage_class = rc.skip_verify, rc.storage_class
    sign, md5 = rc.sign_payload, rc.require_content_md5
    force_path_style = bool(endpoint) if rc.force_path_style is None else rc.force_path_style
    url_part_size: int | None = None
    url_concurrency: int | None = None
    if rc.url:
        u = _go_parse_replica_url(rc.url)
        host_only = urllib.parse.urlsplit(rc.url)._replace(query="", fragment="").geturl()
        try:
            hosted = parse_replica_url(host_only).s3
        except ReplicaURLError as e:
            raise ConfigError(e.message) from e
        ubucket = hosted.bucket if hosted is not None else ""
        uregion = (hosted.region or "") if hosted is not None else ""
        uendpoint = (hosted.endpoint or "") if hosted is not None else ""
        upath_style = hosted.force_path_style if hosted is not None else False
        upath = hosted.path if hosted is not None and u.host.startswith("arn:") else _object_path(u)
        if qe := u.get("endpoint"):
            uendpoint = endpoint_with_scheme(qe)
            if u.get("forcePathStyle") != "false":
                upath_style = True
        if qr := u.get("region"):
            uregion = qr
        if qf := u.get("forcePathStyle"):
            upath_style = qf == "true"
        if qs := u.get("skipVerify"):
            skip_verify = qs == "true"
        if sign is None and (raw := u.get("signPayload", "sign-payload")):
            sign = parse_bool(raw)
        if md5 is None and (raw := u.get("requireContentMD5", "require-content-md5")):
            md5 = parse_bool(raw)
        ustorage = u.get("storageClass") or u.get("storage-class")
        url_part_size = _positive_query_int(u, "partSize", "part-size")
        url_concurrency = _positive_query_int(u, "concurrency")
        path = path or upath
        bucket = bucket or ubucket
        region = region or uregion
        endpoint = endpoint or uendpoint
        storage_class = storage_class or ustorage
        force_path_style = force_path_style or upath_style
    if not bucket:
        raise ConfigError("bucket required for s3 replica")
    endpoint = endpoint_with_scheme(endpoint) if endpoint else ""
    ehost = _endpoint_host(endpoint)
    if ehost in ("fly.storage.tigris.dev", "t3.storage.dev") and md5 is None:
        md5 = False
    if rc.force_path_style is None and (
        ehost == "s3.filebase.com"
        or ehost.endswith((".backblazeb2.com", ".supabase.co"))
        or (":" in ehost and not any(p in ehost for p in _NOT_MINIO))
    ):
        force_path_style = True
    concurrency = S3_DEFAULT_R2_CONCURRENCY if ehost.endswith(".r2.cloudflarestorage.com") else None
    concurrency = rc.concurrency if rc.concurrency is not None else url_concurrency or concurrency
    part_size = rc.part_size if rc.part_size is not None else url_part_size
    sse_algorithm = sse_key = ""
    if rc.sse_customer_key or rc.sse_customer_key_path:
        sse_algorithm = rc.sse_customer_algorithm or "AES256"
        sse_key = _read_sse_key(rc.sse_customer_key_path) if rc.sse_customer_key_path else rc.sse_customer_key
    opts = S3Options(
        bucket=bucket,
        path=path,
        endpoint=endpoint or None,
        region=region or None,
        force_path_style=force_path_style,
        skip_verify=skip_verify,
        sign_payload=True if sign is None else sign,
        require_content_md5=True if md5 is None else md5,
        storage_class=storage_class or None,
        part_size=part_size,
        concurrency=concurrency,
        sse_customer_algorithm=sse_algorithm or None,
        sse_customer_key=sse_key or None,
        sse_kms_key_id=rc.sse_kms_key_id or None,
    )
    query: list[tuple[str, str]] = []
    for name, value in (
        ("endpoint", opts.endpoint),
        ("region", opts.region),
        ("force-path-style", str(opts.force_path_style).lower()),
        ("skip-verify", str(opts.skip_verify).lower()),
        ("sign-payload", str(opts.sign_payload).lower()),
        ("require-content-md5", str(opts.require_content_md5).lower()),
        ("storage-class", opts.storage_class),
        ("part-size", None if part_size is None else str(part_size)),
        ("concurrency", None if concurrency is None else str(concurrency)),
        ("sse-customer-algorithm", opts.sse_customer_algorithm),
        ("sse-customer-key", opts.sse_customer_key),
        ("sse-kms-key-id", opts.sse_kms_key_id),
    ):
        if value is not None:
            query.append((name, value))
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    url = f"s3://{bucket}{tail}?{urllib.parse.urlencode(query)}"
    return Built(url, host=bucket, path=path, s3=opts)


def _bucket_and_path(rc: ReplicaConfig, kind: str) -> tuple[str, str, GoURL | None]:
    _check_exclusive(rc, kind, "bucket", rc.bucket)
    bucket, path = rc.bucket, rc.path
    u = (parse_url if kind == "abs" else _go_parse_replica_url)(rc.url) if rc.url else None
    if u is not None:
        path = path or _object_path(u)
        bucket = bucket or u.host
    if not bucket:
        raise ConfigError(f"bucket required for {kind} replica")
    return bucket, path, u


def _build_gs(rc: ReplicaConfig) -> Built:
    bucket, path, _ = _bucket_and_path(rc, "gs")
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    return Built(f"gs://{bucket}{tail}", host=bucket, path=path)


def _build_abs(rc: ReplicaConfig) -> Built:
    bucket, path, u = _bucket_and_path(rc, "abs")
    account = rc.account_name or (u.user if u is not None and u.user else "")
    tail = "/" + path.lstrip("/") if path not in ("", ".") else ""
    return Built(f"abs://{_quote_user(account, '')}{bucket}{tail}", host=bucket, path=path)


def _build_sftp(rc: ReplicaConfig) -> Built:
    _check_exclusive(rc, "sftp", "host", rc.host)
    host, user, password, path = rc.host, rc.user, rc.password, rc.path
    if rc.url:
        u = parse_url(rc.url)
        host = host or u.host
        user = user or (u.user or "")
        password = password or (u.password or "")
        path = path or u.path
    if not host:
        raise ConfigError("host required for sftp replica")
    if not user:
        raise ConfigError("user required for sftp replica")
    tail = "/" + path if path else ""
    return Built(f"sftp://{_quote_user(user, password)}{host}{tail}")


def _build_webdav(rc: ReplicaConfig) -> Built:
    _check_exclusive(rc, "webdav", "webdav-url", rc.webdav_url)
    server, username, password, path = rc.webdav_url, rc.webdav_username, rc.webdav_password, rc.path
    if rc.url:
        u = parse_url(rc.url)
        if not server and u.host:
            server = ("https" if u.scheme == "webdavs" else "http") + "://" + u.host
        username = username or (u.user or "")
        password = password or (u.password or "")
        path = path or u.path
    if not server:
        raise ConfigError("webdav-url required for webdav replica")
    s = urllib.parse.urlsplit(server if "://" in server else "http://" + server)
    scheme = "webdavs" if s.scheme == "https" else "webdav"
    full = go_join(s.path, path) if s.path.strip("/") else path
    tail = "/" + full.lstrip("/") if full else ""
    return Built(f"{scheme}://{_quote_user(username, password)}{s.netloc.rpartition('@')[2]}{tail}")


_BUILDERS: Final[dict[str, Callable[[ReplicaConfig], Built]]] = {
    "file": _build_file,
    "s3": _build_s3,
    "gs": _build_gs,
    "abs": _build_abs,
    "sftp": _build_sftp,
    "webdav": _build_webdav,
}


def _check_nats(rc: ReplicaConfig) -> None:
    bucket = ""
    if rc.url:
        try:
            u = _go_parse_replica_url(rc.url)
        except ConfigError as e:
            raise ConfigError(f"invalid NATS URL: {e}") from e
        if u.scheme != "nats":
            raise ConfigError(f"invalid scheme for NATS replica: {u.scheme}")
        bucket = _object_path(u).strip("/")  # Go quirk: "nats://host" gives bucket "."
    if not (bucket or rc.bucket):
        raise ConfigError("bucket required for NATS replica")
    if bool(rc.client_cert) != bool(rc.client_key):
        raise ConfigError("client-cert and client-key must both be specified for mutual TLS authentication")


def build_replica(rc: ReplicaConfig) -> Built:
    """:func:`check_replica`, and :class:`ConfigError` for a type this implementation cannot open."""
    built = check_replica(rc)
    if built is None:
        raise ConfigError(f"replica type {quote(rc.replica_type)} is not supported by this implementation")
    return built


def check_replica(rc: ReplicaConfig) -> Built | None:
    """Litestream's ``NewReplicaFromConfig`` checks, in order; the built URL for the types
    this implementation supports, ``None`` for ``nats``/``oss`` (checked only)."""
    if is_url(rc.path):
        raise ConfigError(f"replica path cannot be a url, please use the 'url' field instead: {rc.path}")
    if rc.age.identities or rc.age.recipients:
        raise ConfigError(
            "age encryption is not currently supported, "
            "if you need encryption please revert back to Litestream v0.3.x"
        )
    kind = rc.replica_type
    if kind in _BUILDERS:
        return _BUILDERS[kind](rc)
    if kind == "nats":
        _check_nats(rc)
    elif kind == "oss":
        _bucket_and_path(rc, "oss")
    else:
        raise ConfigError(f"unknown replica type in config: {quote(kind)}")
    return None
