"""``s3`` replicas: LTX files as objects in an S3 bucket, through s3fs/aiobotocore.

Every object carries ``litestream-timestamp`` metadata and a CRC32C checksum;
whole-object reads are verified against the CRC32C the store returns. Writes are
conditional (``If-None-Match: *``; the owner record is replaced with ``If-Match``).
:func:`build_s3_filesystem` makes the filesystem with every library retry turned
off, so the client's own retry loop is the only one.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Unpack, cast

import attrs
import crc32c

from ltx.fileinfo import FileInfo
from ltx.names import is_filename, parse_filename
from replica.errors import (
    FileExistsInReplicaError,
    StorageBackendMissingError,
    StorageError,
    StorageIntegrityError,
)
from replica.storage.base import ClientOptions, ReplicaClient, content_version
from replica.storage.failures import Target
from replica.storage.source import Source, crc32c_b64
from replica.storage.timestamps import (
    TIMESTAMP_METADATA_KEY,
    as_utc,
    format_rfc3339nano,
    metadata_timestamp,
)
from replica.storage.url import ReplicaURL, S3Options

log = logging.getLogger(__name__)

S3_MAX_DELETE_KEYS = 1000
S3_MIN_PART_SIZE = 5 * 1024 * 1024
S3_DEFAULT_PART_SIZE = 16 * 1024 * 1024
S3_DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
S3_HEAD_CONCURRENCY = 50


def _s3_credentials() -> tuple[str | None, str | None]:
    """Static keys only when taken from ``LITESTREAM_*`` (as the CLI copies them into AWS_*).

    Otherwise ``(None, None)``: botocore's default chain reads ``AWS_ACCESS_KEY_ID``/
    ``AWS_SECRET_ACCESS_KEY``, profiles and instance roles itself.
    """
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return None, None
    key = os.environ.get("LITESTREAM_ACCESS_KEY_ID")
    secret = os.environ.get("LITESTREAM_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    return None, None


_session: Any = None
_session_lock = threading.Lock()


def _shared_session() -> Any:
    """One aiobotocore session for every S3 client of the process: a session loads the
    service's models (most of a client's start-up time, about 0.75 s) once. Clients built
    from it stay separate (their own endpoint, credentials and connection pool)."""
    global _session
    with _session_lock:
        if _session is None:
            import aiobotocore.session

            _session = aiobotocore.session.AioSession()
        return _session


def build_s3_filesystem(
    opts: S3Options,
    *,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    key: str | None = None,
    secret: str | None = None,
) -> Any:
    """An ``s3fs.S3FileSystem`` for ``opts``, with library retries and caches turned off.

    Region: from the URL, else ``us-east-1`` when an endpoint is set, else botocore's
    default (``AWS_REGION``...) with bucket-region discovery. Checksums are computed
    only when required (we send CRC32C ourselves), as Litestream does with endpoints.
    """
    try:
        import s3fs
    except ImportError as e:
        raise StorageBackendMissingError("s3 replicas need the 's3fs' package (pip install s3fs)") from e
    if key is None and secret is None:
        key, secret = _s3_credentials()
    region = opts.region or ("us-east-1" if opts.endpoint else None)
    client_kwargs: dict[str, Any] = {}
    if region:
        client_kwargs["region_name"] = region
    if opts.skip_verify:
        client_kwargs["verify"] = False
    s3_config: dict[str, Any] = {"addressing_style": "path" if opts.force_path_style else "auto"}
    if not opts.sign_payload:
        s3_config["payload_signing_enabled"] = False
    config_kwargs: dict[str, Any] = {
        "retries": {"total_max_attempts": 1, "mode": "standard"},  # no botocore retries
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "s3": s3_config,
        "user_agent_extra": "pylitestream",
    }
    extra: dict[str, Any] = {}
    if opts.sse_customer_key:
        extra["SSECustomerAlgorithm"] = opts.sse_customer_algorithm or "AES256"
        try:
            extra["SSECustomerKey"] = base64.b64decode(opts.sse_customer_key, validate=True)
        except ValueError as e:
            raise StorageError("sse-customer-key must be base64") from e
    elif opts.sse_kms_key_id:
        extra["ServerSideEncryption"] = "aws:kms"
        extra["SSEKMSKeyId"] = opts.sse_kms_key_id
    fs = s3fs.S3FileSystem(
        key=key,
        secret=secret,
        endpoint_url=opts.endpoint,
        client_kwargs=client_kwargs,
        config_kwargs=config_kwargs,
        s3_additional_kwargs=extra,
        skip_instance_cache=True,
        session=_shared_session(),
        use_listings_cache=False,
        cache_regions=region is None,
    )
    fs.retries = 1  # s3fs's own retry loop: one try; ours does the retrying
    return fs


class _ShortReadError(ConnectionError):
    """The body ended before Content-Length: the connection dropped (transient)."""


class S3ReplicaClient(ReplicaClient):
    """``s3`` replicas: ``<path>/<level:04x>/<min>-<max>.ltx`` in a bucket.

    Objects of up to ``multipart_threshold`` bytes go up in one PutObject; larger
    ones in a multipart upload of ``part_size`` parts with a full-object CRC32C.
    Every object carries metadata ``litestream-timestamp`` and ``x-amz-checksum-crc32c``.

    Every PutObject and CompleteMultipartUpload carries ``If-None-Match: *`` (S3 then
    answers 412 if the key exists); the owner record is replaced with ``If-Match``.
    A store that answers ``NotImplemented`` to those headers gets plain writes from
    then on (:attr:`conditional_writes` becomes False, with a warning).
    """

    conditional_writes = True

    def __init__(
        self,
        url: ReplicaURL,
        *,
        part_size: int | None = None,
        multipart_threshold: int = S3_DEFAULT_MULTIPART_THRESHOLD,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        **options: Unpack[ClientOptions],
    ) -> None:
        if url.s3 is None:
            raise StorageError(f"not an s3 URL: {url}")
        super().__init__(url, **options)
        self.s3 = url.s3
        self.part_size = max(S3_MIN_PART_SIZE, part_size or url.s3.part_size or S3_DEFAULT_PART_SIZE)
        self.multipart_threshold = multipart_threshold
        self._timeouts = (connect_timeout, read_timeout)

    @property
    def bucket(self) -> str:
        return self.s3.bucket

    def _make_fs(self) -> Any:
        return build_s3_filesystem(self.s3, connect_timeout=self._timeouts[0], read_timeout=self._timeouts[1])

    def fs_path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _sync(self, coro_fn: Callable[..., Any], *args: Any) -> Any:
        from fsspec.asyn import sync

        fs = self.fs
        return sync(fs.loop, coro_fn, *args)

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.fs.call_s3(method, Bucket=self.bucket, **kwargs))

    # listing

    def _list(self, level: int, use_metadata: bool) -> list[FileInfo]:
        return cast(list[FileInfo], self._sync(self._alist, level, use_metadata))

    async def _alist(self, level: int, use_metadata: bool) -> list[FileInfo]:
        import asyncio

        fs = self.fs
        prefix = self.level_dir(level) + "/"
        found: list[tuple[str, FileInfo]] = []
        for obj in await self._alist_objects(prefix, delimiter="/"):
            key = obj["Key"]
            name = key[len(prefix) :]
            if not is_filename(name):
                continue
            lo, hi = parse_filename(name)
            found.append((key, FileInfo(level, lo, hi, int(obj["Size"]), as_utc(obj["LastModified"]))))
        if not use_metadata or not found:
            return [info for _, info in found]
        sem = asyncio.Semaphore(S3_HEAD_CONCURRENCY)

        async def head(key: str, info: FileInfo) -> FileInfo:
            async with sem:
                try:
                    h = await fs._call_s3("head_object", Bucket=self.bucket, Key=key)
                except FileNotFoundError:
                    return info  # deleted meanwhile: keep the listing's view
            ts = metadata_timestamp(h.get("Metadata") or {})
            return attrs.evolve(info, created_at=ts) if ts is not None else info

        return list(await asyncio.gather(*(head(k, i) for k, i in found)))

    def _stat(self, level: int, min_txid: int, max_txid: int, key: str, use_metadata: bool) -> FileInfo:
        h = self._call("head_object", Key=key)
        created = as_utc(h["LastModified"])
        if use_metadata:
            created = metadata_timestamp(h.get("Metadata") or {}) or created
        return FileInfo(level, min_txid, max_txid, int(h["ContentLength"]), created)

    # writing

    def _put_args(self, created_at: dt.datetime) -> dict[str, Any]:
        kw: dict[str, Any] = {"Metadata": {TIMESTAMP_METADATA_KEY: format_rfc3339nano(created_at)}}
        if self.s3.storage_class:
            kw["StorageClass"] = self.s3.storage_class
        return kw

    def _write(self, target: Target, key: str, source: Source, created_at: dt.datetime) -> None:
        crc = crc32c_b64(source.crc32c())
        if source.size <= self.multipart_threshold:
            self._run(target, lambda: self._put(key, source, crc, created_at))
        else:
            self._multipart(target, key, source, crc, created_at)
        self.fs.invalidate_cache(self.fs_path(key))

    def _conditional_call(
        self, method: str, condition: dict[str, str], **kwargs: Any
    ) -> dict[str, Any] | None:
        """Call ``method`` with a conditional header; None when S3 says the condition failed (412).

        A store that does not implement the header (501 ``NotImplemented``) is called
        without it, now and from then on.
        """
        if self.conditional_writes:
            try:
                return self._call(method, **condition, **kwargs)
            except Exception as exc:
                code = _service_code(exc)
                if code in ("PreconditionFailed", "412"):
                    return None
                if code not in ("NotImplemented", "501"):
                    raise
                self.conditional_writes = False
                log.warning(
                    "%s: the store does not support conditional writes (%s): writing without them; "
                    "a second writer is then detected only by the owner record check",
                    self.name,
                    exc,
                )
        # Without conditions: check, then write (another writer may slip in between).
        if "IfNoneMatch" in condition and self._exists(kwargs["Key"]):
            return None
        if "IfMatch" in condition:
            try:
                head = self._call("head_object", Key=kwargs["Key"])
            except FileNotFoundError:
                return None
            if head.get("ETag") != condition["IfMatch"]:
                return None
        return self._call(method, **kwargs)

    def _put(self, key: str, source: Source, crc: str, created_at: dt.datetime) -> None:
        args: dict[str, Any] = {
            "Key": key,
            "ContentLength": source.size,
            "ChecksumAlgorithm": "CRC32C",
            "ChecksumCRC32C": crc,
            **self._put_args(created_at),
        }
        body = source.in_memory()
        if body is not None:
            resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Body=body, **args)
        else:
            with source.open() as f:
                resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Body=f, **args)
        if resp is None:
            raise FileExistsInReplicaError("the key is taken (412 PreconditionFailed)", op="write")
        _check_put_response(resp, crc)

    def _multipart(self, target: Target, key: str, source: Source, crc: str, created_at: dt.datetime) -> None:
        mpu = self._run(
            target,
            lambda: self._call(
                "create_multipart_upload",
                Key=key,
                ChecksumAlgorithm="CRC32C",
                ChecksumType="FULL_OBJECT",
                **self._put_args(created_at),
            ),
        )
        upload_id = mpu["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            for number, offset in enumerate(range(0, source.size, self.part_size), start=1):
                chunk = source.read_at(offset, self.part_size)
                part_crc = crc32c_b64(int(crc32c.crc32c(chunk)))
                resp = self._run(
                    target,
                    lambda chunk=chunk, number=number, part_crc=part_crc: self._call(  # type: ignore[misc]
                        "upload_part",
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentLength=len(chunk),
                        ChecksumAlgorithm="CRC32C",
                        ChecksumCRC32C=part_crc,
                    ),
                )
                parts.append({"PartNumber": number, "ETag": resp["ETag"], "ChecksumCRC32C": part_crc})
            done = self._run(
                target,
                lambda: self._conditional_call(
                    "complete_multipart_upload",
                    {"IfNoneMatch": "*"},
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    ChecksumCRC32C=crc,
                    ChecksumType="FULL_OBJECT",
                ),
            )
            if done is None:
                raise FileExistsInReplicaError("the key is taken (412 PreconditionFailed)", op="write")
            _check_put_response(done, crc)
        except BaseException:
            try:
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            except Exception as exc:  # best effort; the original error matters more
                log.warning("abort multipart upload of %s failed: %s", self.location(key), exc)
            raise

    # objects beside the levels

    def _read_object(self, key: str) -> tuple[bytes, str]:
        return cast(tuple[bytes, str], self._sync(self._aget_versioned, key))

    async def _aget_versioned(self, key: str) -> tuple[bytes, str]:
        resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=key)
        async with resp["Body"] as body:
            data: bytes = await body.read()
        return data, str(resp.get("ETag") or content_version(data))

    def _create_object(self, key: str, data: bytes) -> bool:
        resp = self._conditional_call("put_object", {"IfNoneMatch": "*"}, Key=key, Body=data)
        self.fs.invalidate_cache(self.fs_path(key))
        return resp is not None

    def _replace_object(self, key: str, data: bytes, version: str) -> bool:
        try:
            resp = self._conditional_call("put_object", {"IfMatch": version}, Key=key, Body=data)
        except FileNotFoundError:
            return False  # deleted meanwhile (S3 answers 404 to If-Match on a missing key)
        self.fs.invalidate_cache(self.fs_path(key))
        return resp is not None

    # reading

    def _read(self, key: str, offset: int, size: int | None) -> bytes:
        if size == 0:
            self._call("head_object", Key=key)  # still report a missing file
            return b""
        return cast(bytes, self._sync(self._aget, key, offset, size))

    async def _aget(self, key: str, offset: int, size: int | None) -> bytes:
        fs = self.fs
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        whole = offset == 0 and size is None
        if whole:
            kw["ChecksumMode"] = "ENABLED"
        else:
            end = "" if size is None else str(offset + size - 1)
            kw["Range"] = f"bytes={offset}-{end}"
        try:
            resp = await fs._call_s3("get_object", **kw)
        except OSError as exc:
            if _is_invalid_range(exc):
                # Offset at or past the end: like a local read, nothing to return, but
                # the object exists (a missing one gives NoSuchKey first).
                return b""
            raise
        async with resp["Body"] as body:
            data: bytes = await body.read()
        expected = resp.get("ContentLength")
        if expected is not None and len(data) != int(expected):
            raise _ShortReadError(f"got {len(data)} of {expected} bytes")
        if whole:
            stored = resp.get("ChecksumCRC32C")
            if stored and "-" not in stored:
                actual = crc32c_b64(int(crc32c.crc32c(data)))
                if actual != stored:
                    raise StorageIntegrityError(
                        f"CRC32C mismatch: store recorded {stored}, data has {actual}",
                        path=self.location(key),
                        op="read",
                    )
        return data

    # deleting

    def _delete(self, infos: list[FileInfo]) -> None:
        for start in range(0, len(infos), S3_MAX_DELETE_KEYS):
            batch = infos[start : start + S3_MAX_DELETE_KEYS]
            keys = [self.key(i.level, i.min_txid, i.max_txid) for i in batch]
            first = batch[0]
            target = Target("delete", self.location(keys[0]), first.level, first.min_txid, first.max_txid)
            self._run(target, lambda keys=keys: self._delete_keys(keys))  # type: ignore[misc]

    def _delete_keys(self, keys: list[str]) -> None:
        resp = self._call("delete_objects", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            shown = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise StorageError(
                f"{len(errors)} object(s) not deleted: {shown}{more}",
                path=self.location(keys[0]),
                op="delete",
            )
        for k in keys:
            self.fs.invalidate_cache(self.fs_path(k))

    def _delete_all(self) -> None:
        objects = cast(list[dict[str, Any]], self._sync(self._alist_objects, self.root + "/"))
        keys = [obj["Key"] for obj in objects]
        for start in range(0, len(keys), S3_MAX_DELETE_KEYS):
            self._delete_keys(keys[start : start + S3_MAX_DELETE_KEYS])

    async def _alist_objects(self, prefix: str, delimiter: str | None = None) -> list[dict[str, Any]]:
        """Every object under ``prefix`` (the raw ``Contents`` entries), following continuation tokens.

        The one listing of this client. It sends ``list_objects_v2`` through s3fs's
        ``_call_s3``, the request path s3fs itself uses for each listing page (its error
        translation and its single try, our retry loop around the whole listing).
        s3fs's public listings (``ls``, ``find``) do not fit: they normalise the path
        (a replica at a bucket's root has keys starting ``./``, as Litestream writes
        them), answer an empty prefix with ``FileNotFoundError`` after more requests,
        and rewrite each key with the bucket in front.
        """
        objects: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if delimiter is not None:
                kw["Delimiter"] = delimiter
            if token:
                kw["ContinuationToken"] = token
            resp = await self.fs._call_s3("list_objects_v2", **kw)
            objects.extend(resp.get("Contents", []))
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return objects


def _is_invalid_range(exc: BaseException) -> bool:
    cur: BaseException | None = exc
    while cur is not None:
        response = getattr(cur, "response", None)
        if isinstance(response, dict) and (response.get("Error") or {}).get("Code") == "InvalidRange":
            return True
        cur = cur.__cause__
    return False


def _service_code(exc: BaseException) -> str | None:
    """The S3 error code (or HTTP status as text) anywhere in an exception's cause chain."""
    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        response = getattr(cur, "response", None)
        if isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            if code or status:
                return str(code or status)
        cur = cur.__cause__ or cur.__context__
    return None


def _check_put_response(resp: dict[str, Any], crc: str) -> None:
    if not resp.get("ETag"):
        raise StorageError("store returned no ETag for the upload")
    stored = resp.get("ChecksumCRC32C")
    if stored and stored != crc:
        raise StorageIntegrityError(f"store recorded CRC32C {stored}, we sent {crc}")
