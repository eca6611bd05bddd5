"""Replica storage clients against a real ``file://`` directory and a real S3 server (moto).

Also checks, with the real ``litestream`` 0.5.17 binary, that the layout we read is
the layout Litestream writes, on both backends.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import shutil
import signal
import sqlite3
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crc32c
import fsspec
import pytest

from ltx.encoder import Encoder
from ltx.fileinfo import FileInfo
from ltx.header import FLAG_NO_CHECKSUM, Header
from replica.errors import (
    FileNotFoundInReplicaError,
    ForeignFileError,
    ReplicaURLError,
    StorageAccessDeniedError,
    StorageBackendMissingError,
    StorageError,
    StorageIntegrityError,
    StorageUnavailableError,
)
from replica.storage import (
    FsspecReplicaClient,
    LocalReplicaClient,
    ReplicaClient,
    RetryPolicy,
    S3ReplicaClient,
    format_rfc3339nano,
    ltx_key,
    open_replica_client,
    parse_key,
    parse_replica_url,
    parse_rfc3339,
)
from replica.storage.retry import ErrorKind, classify

try:
    from tests.support import s3server
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    import s3server  # type: ignore[no-redef]

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, jitter=0.0)
T0 = dt.datetime(2026, 4, 24, 12, 0, 0, 123000, tzinfo=dt.UTC)


def fake_ltx(min_txid: int, max_txid: int, when: dt.datetime = T0, body: bytes = b"") -> bytes:
    """Bytes that start like an LTX file (magic, TXIDs, timestamp); the rest is ``body``."""
    ms = int((when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() * 1000)
    header = struct.pack(">4sIIIQQq", b"LTX1", 0, 4096, 1, min_txid, max_txid, ms).ljust(100, b"\0")
    return header + (body or os.urandom(64))


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def s3_server() -> Iterator[s3server.S3Server]:
    with s3server.running_s3_server() as server:
        yield server


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3server.s3_env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def s3_bucket(s3_server: s3server.S3Server, s3_env: None) -> Iterator[str]:
    yield s3_server.new_bucket()
    s3_server.reset()


class Backend:
    """A client plus a way to see the raw store behind it."""

    def __init__(
        self,
        kind: str,
        client: ReplicaClient,
        raw_keys: Callable[[], list[str]],
        put_raw: Callable[[str, bytes], None],
    ) -> None:
        self.kind = kind
        self.client = client
        self.raw_keys = raw_keys
        self.put_raw = put_raw


def _file_backend(tmp_path: Path) -> Backend:
    root = tmp_path / "replica"
    client = open_replica_client(f"file://{root}", retry=FAST_RETRY)

    def raw_keys() -> list[str]:
        return (
            sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        )

    def put_raw(rel: str, data: bytes) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    return Backend("file", client, raw_keys, put_raw)


def _s3_backend(server: s3server.S3Server, bucket: str) -> Backend:
    client = open_replica_client(f"s3://{bucket}/db?endpoint={server.endpoint}", retry=FAST_RETRY)

    def raw_keys() -> list[str]:
        return [k[len("db/") :] for k in server.list_keys(bucket, "db/")]

    def put_raw(rel: str, data: bytes) -> None:
        server.client().put_object(Bucket=bucket, Key=f"db/{rel}", Body=data)

    return Backend("s3", client, raw_keys, put_raw)


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        return _file_backend(tmp_path)
    server = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return _s3_backend(server, bucket)


def _level_dir(kind: str, level: int) -> str:
    return f"ltx/{level}" if kind == "file" else f"{level:04x}"


# ---------------------------------------------------------------------------------------
# pure parts: URLs, layout, timestamps, classification


def test_layout_keys_for_every_level() -> None:
    for level in range(10):
        assert (
            ltx_key("file", "/r", level, 1, 0x2A) == f"/r/ltx/{level}/0000000000000001-000000000000002a.ltx"
        )
        assert (
            ltx_key("s3", "a/b", level, 1, 0x2A) == f"a/b/{level:04x}/0000000000000001-000000000000002a.ltx"
        )
        for scheme in ("gs", "abs", "sftp", "webdav", "webdavs"):
            assert ltx_key(scheme, "p", level, 3, 3) == f"p/ltx/{level}/0000000000000003-0000000000000003.ltx"
        assert parse_key("s3", "a/b", ltx_key("s3", "a/b", level, 5, 9)) == (level, 5, 9)
        assert parse_key("file", "/r", ltx_key("file", "/r", level, 5, 9)) == (level, 5, 9)
    # Go quirks: s3://bucket has path "." and keys "./0000/..."; "." vanishes in dir layouts.
    assert ltx_key("s3", ".", 0, 1, 1) == "./0000/0000000000000001-0000000000000001.ltx"
    assert ltx_key("gs", ".", 9, 1, 1) == "ltx/9/0000000000000001-0000000000000001.ltx"
    assert parse_key("s3", "a/b", "a/b/0000/junk.tmp") is None
    with pytest.raises(StorageError):
        ltx_key("s3", "a", 10, 1, 1)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "path"),
    [
        ("file:///var/lib/rep", "file", "", "/var/lib/rep"),
        ("file:///var/lib/rep/", "file", "", "/var/lib/rep"),
        ("file://", "file", "", "."),
        ("s3://bkt", "s3", "bkt", "."),
        ("s3://bkt/", "s3", "bkt", "."),
        ("s3://bkt/a/b/", "s3", "bkt", "a/b"),
        ("gs://bkt/db", "gs", "bkt", "db"),
        ("abs://acct@container/db", "abs", "container", "db"),
        ("sftp://u:pw@host:2222/backups/db", "sftp", "host", "backups/db"),
        ("webdavs://u:pw@dav.example.com/db", "webdavs", "dav.example.com", "db"),
    ],
)
def test_parse_replica_url(url: str, scheme: str, host: str, path: str) -> None:
    u = parse_replica_url(url)
    assert (u.scheme, u.host, u.path) == (scheme, host, path)
    assert "pw" not in repr(u) and "pw" not in str(u)


def test_parse_s3_options() -> None:
    u = parse_replica_url("s3://bkt/db?endpoint=127.0.0.1:9000&region=eu-west-1&part-size=6000000")
    assert u.s3 is not None
    assert u.s3.endpoint == "http://127.0.0.1:9000"  # private/loopback hosts get http://
    assert u.s3.force_path_style is True  # an endpoint implies path style...
    assert (u.s3.region, u.s3.part_size, u.s3.bucket, u.s3.path) == ("eu-west-1", 6000000, "bkt", "db")
    s3 = parse_replica_url("s3://bkt?endpoint=s3.example.com&forcePathStyle=false").s3
    assert s3 is not None and s3.endpoint == "https://s3.example.com"
    assert s3.force_path_style is False  # ...unless turned off
    s3 = parse_replica_url("s3://bkt.s3.us-west-2.amazonaws.com/x").s3
    assert s3 is not None and (s3.bucket, s3.region, s3.endpoint) == ("bkt", "us-west-2", None)
    s3 = parse_replica_url("s3://bkt.nyc3.digitaloceanspaces.com/x").s3
    assert s3 is not None and (s3.bucket, s3.region) == ("bkt", "nyc3")
    assert s3.endpoint == "https://nyc3.digitaloceanspaces.com"
    s3 = parse_replica_url("s3://bkt.minio.lan:9000/x").s3
    assert s3 is not None and (s3.bucket, s3.endpoint, s3.force_path_style) == (
        "bkt",
        "http://minio.lan:9000",
        True,
    )
    s3 = parse_replica_url("s3://arn:aws:s3:us-east-2:123456789012:accesspoint/ap/pre").s3
    assert s3 is not None and s3.region == "us-east-2" and s3.path == "pre"
    assert s3.bucket == "arn:aws:s3:us-east-2:123456789012:accesspoint/ap"
    with pytest.raises(ReplicaURLError, match="partSize"):
        parse_replica_url("s3://bkt?part-size=big")
    with pytest.raises(ReplicaURLError, match='unsupported replica URL scheme: "ftp"'):
        parse_replica_url("ftp://host/x")


def test_bare_path_is_file(tmp_path: Path) -> None:
    u = parse_replica_url(str(tmp_path / "x" / ".." / "rep"))
    assert (u.scheme, u.path) == ("file", str(tmp_path / "rep"))


def test_rfc3339nano_like_go() -> None:
    assert format_rfc3339nano(T0) == "2026-04-24T12:00:00.123Z"
    assert format_rfc3339nano(T0.replace(microsecond=120000)) == "2026-04-24T12:00:00.12Z"
    assert format_rfc3339nano(T0.replace(microsecond=0)) == "2026-04-24T12:00:00Z"
    assert parse_rfc3339("2026-04-24T12:00:00.123456789Z") == T0.replace(microsecond=123456)
    assert parse_rfc3339("2026-04-24T14:00:00.123+02:00") == T0
    assert parse_rfc3339("yesterday") is None


def test_classify() -> None:
    assert classify(FileNotFoundError(2, "x")) is ErrorKind.NOT_FOUND
    assert classify(PermissionError(13, "x")) is ErrorKind.ACCESS_DENIED
    assert classify(ConnectionRefusedError(111, "x")) is ErrorKind.TRANSIENT
    assert classify(OSError(28, "No space left on device")) is ErrorKind.PERMANENT

    class FakeClientError(Exception):
        def __init__(self, code: str, status: int) -> None:
            super().__init__(code)
            self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}

    wrapped = OSError(5, "wrapped")
    wrapped.__cause__ = FakeClientError("SlowDown", 503)
    assert classify(wrapped) is ErrorKind.TRANSIENT
    assert classify(FakeClientError("AccessDenied", 403)) is ErrorKind.ACCESS_DENIED
    assert classify(FakeClientError("InvalidArgument", 400)) is ErrorKind.PERMANENT
    assert classify(FakeClientError("Whatever", 502)) is ErrorKind.TRANSIENT


# ---------------------------------------------------------------------------------------
# round trips on both backends


def test_write_list_read_delete_round_trip(backend: Backend) -> None:
    c = backend.client
    payloads = {(0, n, n): fake_ltx(n, n, T0 + dt.timedelta(seconds=n)) for n in (3, 1, 2)}
    payloads[(1, 1, 3)] = fake_ltx(1, 3, body=os.urandom(5000))
    payloads[(9, 1, 3)] = fake_ltx(1, 3, body=os.urandom(3000))
    for (level, lo, hi), data in payloads.items():
        info = c.write_file(level, lo, hi, data)
        assert (info.level, info.min_txid, info.max_txid) == (level, lo, hi)
        assert (info.size, info.created_at) == (len(data), T0 + dt.timedelta(seconds=lo if level == 0 else 0))

    listed = c.list_files(0)
    assert [(i.min_txid, i.max_txid) for i in listed] == [(1, 1), (2, 2), (3, 3)]
    assert [i.size for i in listed] == [len(payloads[(0, n, n)]) for n in (1, 2, 3)]
    assert [(i.level, i.min_txid, i.max_txid) for i in c.list_files(9)] == [(9, 1, 3)]
    assert c.list_files(5) == []  # a level never written is empty, not an error
    assert [i.min_txid for i in c.list_files(0, seek=2)] == [2, 3]
    top = c.max_file_info(0)
    assert top is not None and (top.level, top.min_txid, top.max_txid) == (0, 3, 3)
    assert c.max_file_info(4) is None

    for (level, lo, hi), data in payloads.items():
        assert c.read_file(level, lo, hi) == data
    data = payloads[(1, 1, 3)]
    assert c.read_file(1, 1, 3, offset=100, size=1000) == data[100:1100]
    assert c.read_file(1, 1, 3, offset=len(data) - 10) == data[-10:]
    assert c.read_file(1, 1, 3, offset=len(data) - 10, size=100) == data[-10:]
    assert c.read_file(1, 1, 3, offset=len(data)) == b""
    assert c.read_file(1, 1, 3, offset=len(data) + 50) == b""
    assert c.read_file(1, 1, 3, offset=10, size=0) == b""
    assert c.stat_file(1, 1, 3).size == len(data)

    with c.open_file(1, 1, 3, buffer_size=512) as f:
        assert f.read(4) == b"LTX1"
        f.seek(4000)
        assert f.read(100) == data[4000:4100]
        f.seek(-20, io.SEEK_END)
        assert f.read() == data[-20:]
        f.seek(0)
        assert f.read() == data
    with c.open_file(1, 1, 3, offset=len(data) - 5, size=len(data)) as f:
        assert f.read() == data[-5:]

    c.delete_files([FileInfo(0, 1, 1), FileInfo(0, 2, 2), FileInfo(0, 7, 7)])  # 7 never existed
    assert [i.min_txid for i in c.list_files(0)] == [3]
    c.delete_files([])
    c.delete_all()
    assert backend.raw_keys() == []
    assert c.list_files(0) == []
    c.delete_all()  # nothing left: still fine


def test_layout_in_raw_store(backend: Backend) -> None:
    c = backend.client
    for level in range(10):
        c.write_file(level, 1, level + 1, fake_ltx(1, level + 1))
    expected = sorted(f"{_level_dir(backend.kind, lvl)}/{1:016x}-{lvl + 1:016x}.ltx" for lvl in range(10))
    assert backend.raw_keys() == expected
    for level in range(10):
        key = c.key(level, 1, level + 1)
        assert key.endswith(
            expected[level] if backend.kind == "s3" else f"ltx/{level}/{1:016x}-{level + 1:016x}.ltx"
        )


def test_non_ltx_names_ignored(backend: Backend) -> None:
    c = backend.client
    c.write_file(0, 1, 1, fake_ltx(1, 1))
    d = _level_dir(backend.kind, 0)
    for junk in (
        f"{d}/0000000000000002-0000000000000002.ltx.tmp",
        f"{d}/0000000000000002-0000000000000002.ltx.123.abcd.tmp",
        f"{d}/000000000000000A-000000000000000A.ltx",  # upper-case hex is not an LTX name
        f"{d}/00000003-00000003.ltx",
        f"{d}/notes.txt",
        f"{d}/sub/0000000000000004-0000000000000004.ltx",
    ):
        backend.put_raw(junk, b"junk")
    assert [(i.min_txid, i.max_txid) for i in c.list_files(0)] == [(1, 1)]
    c.delete_all()  # removes non-LTX objects too
    assert backend.raw_keys() == []


def test_missing_file_is_typed(backend: Backend) -> None:
    c = backend.client
    c.write_file(0, 1, 1, fake_ltx(1, 1))
    for call in (
        lambda: c.read_file(0, 2, 2),
        lambda: c.read_file(0, 2, 2, offset=5, size=5),
        lambda: c.stat_file(0, 2, 2),
        lambda: c.open_file(0, 2, 2),
    ):
        with pytest.raises(FileNotFoundInReplicaError) as ei:
            call()
        err = ei.value
        assert (err.level, err.txid, err.min_txid, err.max_txid, err.attempts) == (0, 2, 2, 2, 1)
        assert err.path is not None and err.path.endswith("0000000000000002-0000000000000002.ltx")
        assert "0000000000000002-0000000000000002.ltx" in str(err)


def test_write_from_path_and_stream(backend: Backend, tmp_path: Path) -> None:
    c = backend.client
    data = fake_ltx(1, 1, body=os.urandom(200_000))
    src = tmp_path / "in.ltx"
    src.write_bytes(data)
    assert c.write_file(0, 1, 1, src).size == len(data)
    assert c.write_file(0, 2, 2, io.BytesIO(data), created_at=T0).size == len(data)
    assert c.read_file(0, 1, 1) == data
    assert c.read_file(0, 2, 2) == data
    with pytest.raises(StorageError, match="LTX header"):
        c.write_file(0, 3, 3, b"not an ltx file")  # no created_at and no header to read it from
    with pytest.raises(TypeError):
        c.write_file(0, 3, 3, str(src))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# file:// specifics


def test_file_mtime_is_created_at_and_writes_are_clean(tmp_path: Path) -> None:
    root = tmp_path / "rep"
    c = open_replica_client(root)  # a bare path works too
    assert isinstance(c, LocalReplicaClient)
    when = dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    info = c.write_file(0, 1, 1, fake_ltx(1, 1, when))
    path = root / "ltx" / "0" / "0000000000000001-0000000000000001.ltx"
    st = path.stat()
    assert st.st_mtime_ns == 1735787045_678000000
    assert dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, dt.UTC) == when == info.created_at
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert c.list_files(0)[0].created_at == when
    # explicit created_at wins over the header; naive datetimes mean UTC
    c.write_file(0, 2, 2, fake_ltx(2, 2, when), created_at=dt.datetime(2020, 5, 6, 7, 8, 9))
    assert c.list_files(0)[1].created_at == dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "0000000000000001-0000000000000001.ltx",
        "0000000000000002-0000000000000002.ltx",
    ]  # no temporary files left behind


def test_file_write_failure_leaves_nothing(tmp_path: Path) -> None:
    c = open_replica_client(f"file://{tmp_path}/rep", retry=FAST_RETRY)

    class Boom(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(StorageError) as ei:
        c.write_file(0, 1, 1, io.BufferedReader(Boom()), created_at=T0)
    assert ei.value.op == "write" and ei.value.level == 0
    assert not (tmp_path / "rep" / "ltx" / "0").exists() or not any(
        (tmp_path / "rep" / "ltx" / "0").iterdir()
    )


def test_file_permission_denied_is_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "rep"
    c = open_replica_client(f"file://{root}", retry=FAST_RETRY)
    c.write_file(0, 1, 1, fake_ltx(1, 1))
    level0 = root / "ltx" / "0"
    if os.geteuid() == 0:  # root ignores modes: make the OS call fail the way it would
        real_scandir = os.scandir

        def denied(path: Any) -> Any:
            if str(path) == str(level0):
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", denied)
    else:
        level0.chmod(0o000)
    try:
        with pytest.raises(StorageAccessDeniedError) as ei:
            c.list_files(0)
        assert ei.value.attempts == 1 and ei.value.level == 0 and ei.value.op == "list"
    finally:
        level0.chmod(0o700)


def test_missing_backend_package_is_typed() -> None:
    import importlib.util

    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed")
    c = open_replica_client("gs://bucket/db")  # parsing needs no backend package...
    with pytest.raises(StorageBackendMissingError, match="gs"):
        c.list_files(0)  # ...using it does


# ---------------------------------------------------------------------------------------
# s3:// specifics


def test_s3_metadata_and_crc32c(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}&force-path-style=true")
    assert isinstance(c, S3ReplicaClient)
    data = fake_ltx(1, 1, T0, os.urandom(3000))
    c.write_file(0, 1, 1, data)
    raw = s3_server.client()
    key = "db/0000/0000000000000001-0000000000000001.ltx"
    head = raw.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"litestream-timestamp": "2026-04-24T12:00:00.123Z"}
    assert head["ChecksumCRC32C"] == base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()
    # LastModified by default (like Litestream), the recorded timestamp when asked.
    (plain,) = c.list_files(0)
    (meta,) = c.list_files(0, use_metadata=True)
    assert plain.created_at != T0 and abs(plain.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(
        minutes=5
    )
    assert meta.created_at == T0
    assert c.stat_file(0, 1, 1, use_metadata=True).created_at == T0


def test_s3_wrong_crc32c(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    """A wrong CRC32C: refused by a verifying store; moto 5 stores it, so reads must catch it."""
    c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}", retry=FAST_RETRY)
    data = fake_ltx(1, 1)
    wrong = base64.b64encode((crc32c.crc32c(data) ^ 1).to_bytes(4, "big")).decode()
    key = "db/0000/0000000000000001-0000000000000001.ltx"
    try:
        s3_server.client().put_object(
            Bucket=s3_bucket, Key=key, Body=data, ChecksumAlgorithm="CRC32C", ChecksumCRC32C=wrong
        )
    except Exception as exc:  # a store that verifies (AWS, newer moto) refuses the upload
        assert "BadDigest" in str(exc) or "InvalidRequest" in str(exc) or "checksum" in str(exc).lower()
        return
    with pytest.raises(StorageIntegrityError, match="CRC32C") as ei:
        c.read_file(0, 1, 1)
    assert (ei.value.level, ei.value.txid, ei.value.op) == (0, 1, "read")
    assert ei.value.path == f"s3://{s3_bucket}/{key}"
    assert c.read_file(0, 1, 1, offset=0, size=4) == b"LTX1"  # ranged reads carry no checksum


def test_s3_multipart_upload(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    c = open_replica_client(
        f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}",
        part_size=5 * 1024 * 1024,
        multipart_threshold=6 * 1024 * 1024,
    )
    data = fake_ltx(1, 9, body=os.urandom(11 * 1024 * 1024))
    c.write_file(9, 1, 9, data)
    assert c.read_file(9, 1, 9) == data  # whole read: verified against the full-object CRC32C
    head = s3_server.client().head_object(
        Bucket=s3_bucket, Key="db/0009/0000000000000001-0000000000000009.ltx", ChecksumMode="ENABLED"
    )
    assert head["ETag"].endswith('-3"')  # really multipart
    assert head["ChecksumCRC32C"] == base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()
    assert head["Metadata"]["litestream-timestamp"] == format_rfc3339nano(T0)


def test_s3_bucket_root_path_quirk(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    c = open_replica_client(f"s3://{s3_bucket}?endpoint={s3_server.endpoint}")
    c.write_file(0, 1, 1, fake_ltx(1, 1))
    assert s3_server.list_keys(s3_bucket) == ["./0000/0000000000000001-0000000000000001.ltx"]
    assert [i.min_txid for i in c.list_files(0)] == [1]


def test_s3_missing_bucket_is_typed(s3_server: s3server.S3Server, s3_env: None) -> None:
    c = open_replica_client(f"s3://no-such-bucket/db?endpoint={s3_server.endpoint}", retry=FAST_RETRY)
    with pytest.raises(FileNotFoundInReplicaError, match="bucket"):
        c.list_files(0)


def test_litestream_env_credentials(
    s3_server: s3server.S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("LITESTREAM_ACCESS_KEY_ID", s3server.TEST_ACCESS_KEY)
    monkeypatch.setenv("LITESTREAM_SECRET_ACCESS_KEY", s3server.TEST_SECRET_KEY)
    c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}")
    assert isinstance(c, S3ReplicaClient)
    assert (c.fs.key, c.fs.secret) == (s3server.TEST_ACCESS_KEY, s3server.TEST_SECRET_KEY)
    c.write_file(0, 1, 1, fake_ltx(1, 1))
    assert len(c.list_files(0)) == 1


# ---------------------------------------------------------------------------------------
# retries against real failures


def test_closed_port_gives_typed_error_after_bounded_retries(s3_env: None) -> None:
    port = s3server.free_port()  # nothing listens there
    sleeps: list[float] = []
    c = open_replica_client(
        f"s3://bkt/db?endpoint=http://127.0.0.1:{port}", retry=FAST_RETRY, sleep=sleeps.append
    )
    t = time.monotonic()
    with pytest.raises(StorageUnavailableError) as ei:
        c.read_file(0, 1, 1)
    assert time.monotonic() - t < 10
    assert ei.value.attempts == 3 and ei.value.level == 0 and ei.value.txid == 1
    assert sleeps == [0.01, 0.02]
    assert "127.0.0.1" in str(ei.value.__cause__) or "connect" in str(ei.value).lower()


def test_transient_5xx_retried_permanent_errors_not(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    proxy = s3server.FaultProxy(s3_server.endpoint)
    try:
        c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={proxy.endpoint}", retry=FAST_RETRY)
        c.write_file(0, 1, 1, fake_ltx(1, 1))

        proxy.requests = 0
        proxy.fail(503, "SlowDown", times=2)
        assert len(c.list_files(0)) == 1  # two throttled tries, the third gets through
        assert proxy.requests == 3

        proxy.requests = 0
        proxy.fail(500, "InternalError", times=1)
        c.write_file(0, 2, 2, fake_ltx(2, 2))
        assert proxy.requests == 2 and [i.min_txid for i in c.list_files(0)] == [1, 2]

        proxy.requests = 0
        proxy.fail_always(503, "ServiceUnavailable")
        with pytest.raises(StorageUnavailableError) as ei:
            c.read_file(0, 1, 1)
        assert ei.value.attempts == 3 and proxy.requests == 3

        proxy.heal()
        proxy.requests = 0
        proxy.fail(403, "AccessDenied", times=1)
        with pytest.raises(StorageAccessDeniedError) as denied:
            c.write_file(0, 3, 3, fake_ltx(3, 3))
        assert proxy.requests == 1 and denied.value.attempts == 1 and denied.value.txid == 3

        proxy.requests = 0
        with pytest.raises(FileNotFoundInReplicaError):
            c.read_file(0, 9, 9)
        assert proxy.requests == 1
    finally:
        proxy.close()


def test_server_stopped_then_started_again(s3_env: None) -> None:
    port = s3server.free_port()
    with s3server.running_s3_server(port) as server:
        bucket = server.new_bucket()
        c = open_replica_client(
            f"s3://{bucket}/db?endpoint={server.endpoint}",
            retry=RetryPolicy(attempts=12, initial_delay=0.1, max_delay=0.3, jitter=0.0),
        )
        c.write_file(0, 1, 1, fake_ltx(1, 1))
    # stopped: nothing listens on the port until the timer starts a new server there
    restarted: list[s3server.S3Server] = []
    timer = threading.Timer(0.6, lambda: restarted.append(s3server.S3Server(port)))
    timer.start()
    try:
        t = time.monotonic()
        infos = c.list_files(0)  # fails while the server is down, succeeds once it is back
        assert [i.min_txid for i in infos] == [1]  # moto keeps its state per process
        assert time.monotonic() - t >= 0.5
    finally:
        timer.join()
        for s in restarted:
            s.stop()


# ---------------------------------------------------------------------------------------
# the generic fsspec client (gs/abs/sftp/webdav layout), on fsspec's in-memory filesystem


def test_generic_fsspec_client_on_memory_fs() -> None:
    fs = fsspec.filesystem("memory")  # one global store per process: use a unique root
    bucket = f"gsbucket{os.getpid()}{time.monotonic_ns()}"
    c = open_replica_client(f"gs://{bucket}/db", fs=fs, retry=FAST_RETRY)
    assert isinstance(c, FsspecReplicaClient)
    try:
        data = fake_ltx(1, 2, body=os.urandom(1000))
        c.write_file(1, 1, 2, data)
        c.write_file(0, 1, 1, fake_ltx(1, 1))
        fs.pipe_file(f"/{bucket}/db/ltx/0/0000000000000002-0000000000000002.ltx.tmp", b"junk")
        assert fs.exists(f"/{bucket}/db/ltx/1/0000000000000001-0000000000000002.ltx")
        assert [(i.level, i.min_txid, i.max_txid, i.size) for i in c.list_files(1)] == [(1, 1, 2, len(data))]
        assert [i.min_txid for i in c.list_files(0)] == [1]
        assert c.read_file(1, 1, 2) == data
        assert c.read_file(1, 1, 2, offset=10, size=20) == data[10:30]
        with c.open_file(1, 1, 2) as f:
            f.seek(100)
            assert f.read(50) == data[100:150]
        with pytest.raises(FileNotFoundInReplicaError):
            c.read_file(1, 5, 5)
        c.delete_files([FileInfo(1, 1, 2), FileInfo(1, 9, 9)])
        assert c.list_files(1) == []
        c.delete_all()
        assert c.list_files(0) == []
    finally:
        if fs.exists(f"/{bucket}"):
            fs.rm(f"/{bucket}", recursive=True)


# ---------------------------------------------------------------------------------------
# interop: the real litestream binary writes, our client reads


def _litestream() -> str:
    exe = shutil.which("litestream")
    if exe is None:
        pytest.skip("litestream binary not installed")
    return exe


def _make_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("CREATE TABLE t (x INTEGER, y TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "row" * 10) for i in range(200)])
    return conn


def _replicate_until(
    db: Path,
    url: str,
    env: dict[str, str],
    log: Path,
    conn: sqlite3.Connection,
    client: ReplicaClient,
    timeout: float = 20.0,
) -> list[FileInfo]:
    """Run ``litestream replicate DB URL`` until it has uploaded two L0 files, then SIGINT it."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_litestream(), "replicate", str(db), url], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + timeout
            wrote_more = False
            while time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                l0 = client.list_files(0)
                if l0 and not wrote_more:
                    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "more") for i in range(50)])
                    wrote_more = True
                if len(l0) >= 2:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"litestream uploaded no second L0 file in {timeout}s:\n{log.read_text()}")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return client.list_files(0)


def _check_litestream_replica(client: ReplicaClient, use_metadata: bool) -> None:
    l0 = client.list_files(0, use_metadata=use_metadata)
    assert [(i.min_txid, i.max_txid) for i in l0[:2]] == [(1, 1), (2, 2)]
    for info in l0:
        assert info.min_txid == info.max_txid  # one file per sync
        head = client.read_file(0, info.min_txid, info.max_txid, size=100)
        assert head[:4] == b"LTX1"
        lo, hi, ms = struct.unpack_from(">QQq", head, 16)
        assert (lo, hi) == (info.min_txid, info.max_txid)
        # file: mtime; s3 with use_metadata: litestream-timestamp -- both the header timestamp
        stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
        assert info.created_at == stamp
        data = client.read_file(0, info.min_txid, info.max_txid)
        assert len(data) == info.size
    for info in client.list_files(9):
        assert info.min_txid == 1 and info.max_txid >= 1  # snapshots span 1..N
        assert client.read_file(9, 1, info.max_txid, size=4) == b"LTX1"


def test_interop_litestream_file_replica(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    conn = _make_db(db)
    rep = tmp_path / "replica"
    client = open_replica_client(f"file://{rep}")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    _replicate_until(db, f"file://{rep}", env, tmp_path / "litestream.log", conn, client)
    conn.close()
    _check_litestream_replica(client, use_metadata=False)
    for path in rep.rglob("*.ltx"):  # every file litestream wrote is where our layout says
        level = int(path.parent.name)
        lo, hi = (int(x, 16) for x in path.name[: -len(".ltx")].split("-"))
        assert Path(client.key(level, lo, hi)) == path


@pytest.mark.parametrize("path", ["/backups/db", ""])
def test_interop_litestream_s3_replica(
    tmp_path: Path, s3_server: s3server.S3Server, s3_bucket: str, path: str
) -> None:
    db = tmp_path / "db.sqlite"
    conn = _make_db(db)
    url = f"s3://{s3_bucket}{path}?endpoint={s3_server.endpoint}&force-path-style=true"
    client = open_replica_client(url)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # the binary refuses it
    env.update(s3server.s3_env())
    _replicate_until(db, url, env, tmp_path / "litestream.log", conn, client)
    conn.close()
    _check_litestream_replica(client, use_metadata=True)
    root = path.lstrip("/") or "."
    keys = s3_server.list_keys(s3_bucket)
    assert keys and all(k.startswith(f"{root}/") for k in keys)
    for key in keys:
        parsed = parse_key("s3", root, key)
        assert parsed is not None, key
        assert client.key(*parsed) == key
    assert any(k.startswith(f"{root}/0000/") for k in keys)


# ---------------------------------------------------------------------------------------
# writes never replace a file: conditional creates, and the fence


def real_ltx(txid: int, when: dt.datetime, pages: dict[int, bytes], commit: int = 4) -> bytes:
    """A valid NoChecksum LTX file for one TXID holding ``pages`` (4096-byte pages)."""
    ms = int((when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).total_seconds() * 1000)
    out = io.BytesIO()
    enc = Encoder(out, Header(4096, commit, txid, txid, ms, flags=FLAG_NO_CHECKSUM))
    for pgno in sorted(pages):
        enc.write_page(pgno, pages[pgno])
    enc.close()
    return out.getvalue()


PAGES = {2: b"\x01" * 4096, 3: b"\x02" * 4096}


def test_writes_never_replace_another_writers_file(backend: Backend) -> None:
    c = backend.client
    ours = real_ltx(5, T0, PAGES)
    c.write_file(0, 5, 5, ours)
    assert c.write_file(0, 5, 5, ours).size == len(ours)  # our own earlier attempt: fine
    theirs = real_ltx(5, T0, {2: b"\x09" * 4096})
    with pytest.raises(ForeignFileError) as ei:
        c.write_file(0, 5, 5, theirs)
    err = ei.value
    assert (err.level, err.txid) == (0, 5) and err.path == c.location(c.key(0, 5, 5))
    assert err.replica == c.name and "another writer" in str(err) and "\n" not in str(err)
    assert c.read_file(0, 5, 5) == ours, "the existing file was not touched"
    # The client is fenced: nothing more is written or deleted through it.
    assert c.fenced is err
    with pytest.raises(ForeignFileError):
        c.write_file(0, 6, 6, real_ltx(6, T0, PAGES))
    with pytest.raises(ForeignFileError):
        c.delete_files([FileInfo(0, 5, 5)])
    assert [i.min_txid for i in c.list_files(0)] == [5]
    assert c.read_file(0, 5, 5) == ours  # reads still work


def test_the_same_state_written_again_is_accepted(backend: Backend) -> None:
    """A compaction rerun writes the same pages, maybe with another header timestamp."""
    c = backend.client
    first = real_ltx(7, T0, PAGES)
    c.write_file(1, 7, 7, first)
    again = real_ltx(7, T0 + dt.timedelta(seconds=30), PAGES)
    assert again != first
    info = c.write_file(1, 7, 7, again)
    assert info.created_at == T0, "the stored copy (and its timestamp) is kept"
    assert c.read_file(1, 7, 7) == first and c.fenced is None


def test_a_store_copy_written_before_our_retry_counts_as_ours(
    s3_server: s3server.S3Server, s3_bucket: str
) -> None:
    """S3 answers 412 to the retry of a PUT whose first attempt landed: same bytes, success."""
    c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}", retry=FAST_RETRY)
    data = real_ltx(2, T0, PAGES)
    raw = s3_server.client()
    raw.put_object(Bucket=s3_bucket, Key=c.key(0, 2, 2), Body=data)  # the attempt that landed
    assert c.write_file(0, 2, 2, data).size == len(data)
    head = raw.head_object(Bucket=s3_bucket, Key=c.key(0, 2, 2))
    assert "litestream-timestamp" not in head.get("Metadata", {}), "not written a second time"
    assert c.fenced is None


def test_s3_multipart_upload_is_conditional(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    c = open_replica_client(
        f"s3://{s3_bucket}/db?endpoint={s3_server.endpoint}", retry=FAST_RETRY, multipart_threshold=1024
    )
    assert isinstance(c, S3ReplicaClient)
    big = {p: os.urandom(4096) for p in range(1, 1500)}
    ours = real_ltx(1, T0, big, commit=1499)
    assert len(ours) > 5 * 1024 * 1024  # more than one part
    c.write_file(9, 1, 1, ours)
    c.write_file(9, 1, 1, ours)
    with pytest.raises(ForeignFileError):
        c.write_file(9, 1, 1, real_ltx(1, T0, {**big, 7: b"\0" * 4096}, commit=1499))
    assert c.read_file(9, 1, 1) == ours
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_objects_beside_the_levels(backend: Backend) -> None:
    c = backend.client
    assert c.read_object("owner.json") is None
    assert c.create_object("owner.json", b"one")
    assert not c.create_object("owner.json", b"two")
    found = c.read_object("owner.json")
    assert found is not None and found[0] == b"one"
    assert c.replace_object("owner.json", b"three", found[1])
    assert not c.replace_object("owner.json", b"four", found[1]), "stale version"
    assert c.read_object("owner.json") == (b"three", c.read_object("owner.json")[1])  # type: ignore[index]
    assert "owner.json" in backend.raw_keys()
    assert c.list_files(0) == []  # not an LTX file: never listed


def test_store_without_conditional_writes(s3_server: s3server.S3Server, s3_bucket: str) -> None:
    """A store answering 501 to If-None-Match gets plain writes, checked just before."""
    proxy = s3server.FaultProxy(s3_server.endpoint)
    try:
        c = open_replica_client(f"s3://{s3_bucket}/db?endpoint={proxy.endpoint}", retry=FAST_RETRY)
        proxy.fail(501, "NotImplemented", times=1)
        ours = real_ltx(2, T0, PAGES)
        c.write_file(0, 2, 2, ours)
        assert c.conditional_writes is False
        with pytest.raises(ForeignFileError):
            c.write_file(0, 2, 2, real_ltx(2, T0, {2: b"\x07" * 4096}))
        assert c.read_file(0, 2, 2) == ours
    finally:
        proxy.close()
