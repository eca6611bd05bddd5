"""Replica URLs, parsed the way Litestream 0.5 parses them (reference §7.5).

:func:`parse_replica_url` is pure: it turns a string into a frozen
:class:`ReplicaURL` (plus :class:`S3Options` for ``s3://``) without touching the
network, the environment or an fsspec implementation. Building a filesystem from
it is the clients' job (:mod:`replica.storage.base`).

Accepted forms::

    file:///abs/path            /abs/path, ~/path, rel/path (bare paths: config ``path:``)
    s3://bucket[/path][?endpoint=…&region=…&force-path-style=…&…]
    gs://bucket[/path]
    abs://[account@]container[/path]
    sftp://user[:pass]@host[:port]/path
    webdav[s]://[user:pass@]host[:port]/path
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse

import attrs

from replica._go.path import go_clean
from replica.errors import ReplicaURLError

SUPPORTED_SCHEMES = ("file", "s3", "gs", "abs", "sftp", "webdav", "webdavs")
"""Schemes this implementation can parse; ``nats`` and ``oss`` are Litestream-only."""

_URL_RE = re.compile(r"^\w+://")


def parse_bool(value: str) -> bool:
    """Litestream's boolean query values: true/1/t/yes → True; anything else → False."""
    return value.strip().lower() in ("true", "1", "t", "yes")


@attrs.frozen
class S3Options:
    """S3 settings from the URL host and query string (camelCase or kebab-case keys).

    ``path`` is the key prefix exactly as Litestream computes it: the URL path with
    the leading ``/`` stripped, then cleaned, so ``s3://bkt`` gives ``"."`` and keys
    ``./0000/…`` (a Go quirk the real binary exhibits). ``force_path_style`` is
    already resolved: true when an endpoint is set unless the query turned it off.
    """

    bucket: str
    path: str
    endpoint: str | None = None
    region: str | None = None
    force_path_style: bool = False
    skip_verify: bool = False
    sign_payload: bool = True
    require_content_md5: bool = True
    storage_class: str | None = None
    part_size: int | None = None
    concurrency: int | None = None
    sse_customer_algorithm: str | None = None
    sse_customer_key: str | None = attrs.field(default=None, repr=False)
    sse_customer_key_md5: str | None = attrs.field(default=None, repr=False)
    sse_kms_key_id: str | None = None


@attrs.frozen
class ReplicaURL:
    """A parsed replica URL.

    ``scheme`` is one of :data:`SUPPORTED_SCHEMES` (a bare path gives ``file``).
    ``host`` is the bucket/container/server (``""`` for ``file``), ``port`` the
    explicit port if any. ``path`` is, for ``file``, the cleaned local path (made
    absolute with ``~`` expanded when given as a bare path) and, for every other
    scheme, the URL path with its leading ``/`` stripped and cleaned (``"."`` when
    empty). ``query`` keeps the raw query pairs in order. ``password`` is never
    shown by ``repr``/``str``.
    """

    scheme: str
    path: str
    host: str = ""
    port: int | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    query: tuple[tuple[str, str], ...] = ()
    s3: S3Options | None = None

    def query_value(self, *names: str) -> str | None:
        """The last value of the first of ``names`` present in the query, else ``None``."""
        for name in names:
            values = [v for k, v in self.query if k == name]
            if values:
                return values[-1]
        return None

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.path}"
        auth = ""
        if self.username is not None:
            auth = urllib.parse.quote(self.username, safe="") + (":***" if self.password else "") + "@"
        netloc = auth + self.host + (f":{self.port}" if self.port is not None else "")
        path = "" if self.path == "." else "/" + self.path.lstrip("/")
        query = ("?" + urllib.parse.urlencode(self.query, safe=":/")) if self.query else ""
        return f"{self.scheme}://{netloc}{path}{query}"


def parse_replica_url(url: str | os.PathLike[str]) -> ReplicaURL:
    """Parse a replica URL or bare path; raise :class:`ReplicaURLError` when it is unusable.

    A string without ``scheme://`` is a local path (made absolute, ``~`` expanded).
    Unknown schemes give ``unsupported replica URL scheme: "x"``.
    """
    s = os.fspath(url)
    if not s:
        raise ReplicaURLError("replica url required")
    if not _URL_RE.match(s):
        return ReplicaURL(scheme="file", path=go_clean(os.path.abspath(os.path.expanduser(s))))
    scheme, rest = s.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        # Litestream: the whole string minus the scheme, cleaned (file:// gives ".").
        return ReplicaURL(scheme="file", path=go_clean(rest))
    if scheme not in SUPPORTED_SCHEMES:
        raise ReplicaURLError(f'unsupported replica URL scheme: "{scheme}"', path=s)
    if scheme == "s3" and rest.startswith("arn:"):
        return _parse_s3_arn(s, rest)
    try:
        u = urllib.parse.urlsplit(s)
        port = u.port
    except ValueError as e:
        raise ReplicaURLError(f"invalid replica URL: {e}", path=_redact(s)) from e
    # Keep the host's original spelling (urlsplit's .hostname lower-cases it).
    hostport = u.netloc.rsplit("@", 1)[-1]
    host = hostport.rsplit(":", 1)[0] if port is not None else hostport
    path = go_clean(u.path[1:] if u.path.startswith("/") else u.path)
    query = tuple(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    username = urllib.parse.unquote(u.username) if u.username is not None else None
    password = urllib.parse.unquote(u.password) if u.password is not None else None
    if not host:
        raise ReplicaURLError(f"{scheme} replica URL needs a host or bucket", path=_redact(s))
    base = ReplicaURL(
        scheme=scheme, path=path, host=host, port=port, username=username, password=password, query=query
    )
    if scheme == "s3":
        return attrs.evolve(base, s3=_s3_options(base, s))
    return base


def _redact(s: str) -> str:
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", s)


# Provider host forms (reference §7.5). Each gives (bucket, region, endpoint).
_AWS_HOST = re.compile(r"^(.+)\.s3(?:[.-]([a-z0-9-]+))?\.amazonaws\.com$")
_DO_HOST = re.compile(r"^(.+)\.([^.]+)\.digitaloceanspaces\.com$")
_B2_HOST = re.compile(r"^(.+)\.s3\.([^.]+)\.backblazeb2\.com$")
_FILEBASE_HOST = re.compile(r"^(.+)\.s3\.filebase\.com$")
_SCW_HOST = re.compile(r"^(.+)\.s3\.([^.]+)\.scw\.cloud$")


def _s3_host(host: str, port: int | None) -> tuple[str, str | None, str | None, bool]:
    """Split an ``s3://`` host into (bucket, region, endpoint, path_style)."""
    if m := _AWS_HOST.match(host):
        return m.group(1), m.group(2), None, False
    if m := _DO_HOST.match(host):
        return m.group(1), m.group(2), f"https://{m.group(2)}.digitaloceanspaces.com", True
    if m := _B2_HOST.match(host):
        return m.group(1), m.group(2), f"https://s3.{m.group(2)}.backblazeb2.com", True
    if m := _FILEBASE_HOST.match(host):
        return m.group(1), None, "https://s3.filebase.com", True
    if m := _SCW_HOST.match(host):
        return m.group(1), m.group(2), f"https://s3.{m.group(2)}.scw.cloud", True
    if port is not None and "." in host:
        bucket, server = host.split(".", 1)
        return bucket, None, f"http://{server}:{port}", True
    return host, None, None, False


def endpoint_with_scheme(endpoint: str) -> str:
    """Add ``http://`` (localhost, private/loopback IPs, ``.local``) or ``https://`` when missing."""
    if "://" in endpoint:
        return endpoint
    hostname = urllib.parse.urlsplit("//" + endpoint).hostname or ""
    local = hostname == "localhost" or hostname.endswith(".local")
    try:
        ip = ipaddress.ip_address(hostname)
        local = local or ip.is_private or ip.is_loopback
    except ValueError:
        pass
    return ("http://" if local else "https://") + endpoint


def _query_int(url: ReplicaURL, *names: str) -> int | None:
    raw = url.query_value(*names)
    if raw is None:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n <= 0:
        raise ReplicaURLError(f"invalid value for query parameter {names[0]}: {raw!r}", path=str(url))
    return n


def _s3_options(url: ReplicaURL, raw: str) -> S3Options:
    bucket, region, endpoint, path_style = _s3_host(url.host, url.port)
    q = url.query_value
    if (e := q("endpoint")) is not None and e != "":
        endpoint = endpoint_with_scheme(e)
    if (r := q("region")) is not None and r != "":
        region = r
    fps = q("forcePathStyle", "force-path-style")
    if endpoint is not None and not path_style:
        path_style = True
    if fps is not None:
        path_style = parse_bool(fps)
    sign = q("signPayload", "sign-payload")
    md5 = q("requireContentMD5", "require-content-md5")
    skip = q("skipVerify", "skip-verify")
    return S3Options(
        bucket=bucket,
        path=url.path,
        endpoint=endpoint,
        region=region,
        force_path_style=path_style,
        skip_verify=parse_bool(skip) if skip is not None else False,
        sign_payload=parse_bool(sign) if sign is not None else True,
        require_content_md5=parse_bool(md5) if md5 is not None else True,
        storage_class=q("storageClass", "storage-class") or None,
        part_size=_query_int(url, "partSize", "part-size"),
        concurrency=_query_int(url, "concurrency"),
        sse_customer_algorithm=q("sseCustomerAlgorithm", "sse-customer-algorithm") or None,
        sse_customer_key=q("sseCustomerKey", "sse-customer-key") or None,
        sse_customer_key_md5=q("sseCustomerKeyMD5", "sse-customer-key-md5") or None,
        sse_kms_key_id=q("sseKmsKeyId", "sse-kms-key-id") or None,
    )


_ARN = re.compile(r"^(arn:[^:/]+:s3:([^:/]*):[^:/]*:accesspoint/[^/?]+)(/[^?]*)?(?:\?(.*))?$")


def _parse_s3_arn(raw: str, rest: str) -> ReplicaURL:
    """``s3://arn:aws:s3:<region>:<acct>:accesspoint/<name>[/prefix]`` (an access point)."""
    m = _ARN.match(rest)
    if m is None:
        raise ReplicaURLError("invalid S3 access point ARN", path=raw)
    arn, region, prefix, query = m.group(1), m.group(2), m.group(3) or "", m.group(4) or ""
    path = go_clean(prefix[1:] if prefix.startswith("/") else prefix)
    base = ReplicaURL(
        scheme="s3", path=path, host=arn, query=tuple(urllib.parse.parse_qsl(query, keep_blank_values=True))
    )
    opts = _s3_options(base, raw)
    return attrs.evolve(base, s3=attrs.evolve(opts, bucket=arn, region=opts.region or region or None))
