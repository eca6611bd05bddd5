"""Replica ownership: a replica knows which database writes it, and a second writer is refused.

The owner record is a small JSON object, ``pylitestream-owner.json``, directly under
the replica root, beside Litestream's level directories (Litestream never lists it,
so it ignores it). It names the database that writes the replica: host name, the
database file's real path, a random writer id for the running replicator, when it
claimed the replica, and the tool and version. ``docs/spec/ownership.md`` is the
specification; this module has the pure parts (the record, its JSON form, the
rules) and :class:`OwnershipGuard`, which applies them to a replica.

The rules, for a replicator of database *D* on host *H* starting on a replica:

* no record: claim it (create the record, only if it is still absent);
* a record for (*H*, *D*): ours, from an earlier run; rewrite it with our writer id;
* a record for another database or host: refuse, unless *D* holds exactly the
  replica's latest state (it was restored from the replica and not written to since:
  the same lineage moved to a new place); then take the replica over by rewriting
  the record.

While replicating, the record is read again before every upload round: a different
writer id means another replicator has claimed the replica since, and ours stops
writing (the client is fenced) and reports it.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any, cast

import attrs
import cattrs

from ltx import __version__
from replica.dblock import DatabaseLock, lock_database
from replica.errors import OwnershipError, ReplicaOwnedError
from replica.lineage import is_latest_state
from replica.storage import ReplicaClient
from replica.storage.timestamps import UTC, format_rfc3339nano, parse_rfc3339

log = logging.getLogger("replica.ownership")

OWNER_OBJECT = "pylitestream-owner.json"
"""The owner record's name under the replica root."""
RECORD_VERSION = 1
TOOL = "pylitestream"

# --- the record (pure) ------------------------------------------------------------------


@attrs.frozen
class Identity:
    """Who writes a replica, for the "same writer" decision: host name and database real path."""

    host: str
    database: str


@attrs.frozen
class OwnerRecord:
    """The owner record, as stored (JSON keys are the field names)."""

    version: int
    host: str
    database: str
    """The real path (symlinks resolved) of the database file."""
    writer_id: str
    """Random, new for every run of a replicator."""
    claimed_at: dt.datetime
    tool: str
    tool_version: str

    @property
    def identity(self) -> Identity:
        return Identity(self.host, self.database)

    def describe(self) -> str:
        """``database /x/a.db on host h1 (claimed <time> by <tool> <version>)``."""
        when = format_rfc3339nano(self.claimed_at)
        by = f"{self.tool} {self.tool_version}"
        return f"database {self.database} on host {self.host} (claimed {when} by {by})"


_converter = cattrs.Converter(forbid_extra_keys=False)
_converter.register_unstructure_hook(dt.datetime, format_rfc3339nano)


def _structure_time(value: Any, _: type) -> dt.datetime:
    parsed = parse_rfc3339(str(value)) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    return parsed


_converter.register_structure_hook(dt.datetime, _structure_time)


def new_record(identity: Identity, writer_id: str, now: dt.datetime) -> OwnerRecord:
    """The record a replicator with ``identity`` and ``writer_id`` writes at ``now``."""
    return OwnerRecord(
        RECORD_VERSION, identity.host, identity.database, writer_id, now.astimezone(UTC), TOOL, __version__
    )


def record_to_json(record: OwnerRecord) -> dict[str, Any]:
    """The record as a JSON-ready dict (the stored form's keys and values)."""
    return cast(dict[str, Any], _converter.unstructure(record))


def encode_record(record: OwnerRecord) -> bytes:
    """The stored form: indented JSON, one key per line, ending in a newline."""
    return (json.dumps(record_to_json(record), indent=2) + "\n").encode()


class OwnerRecordError(OwnershipError):
    """The owner object cannot be read as an owner record (damaged, or not ours)."""


def decode_record(data: bytes, *, replica: str, path: str) -> OwnerRecord:
    """Parse a stored record; :class:`OwnerRecordError` (naming ``path``) if it is not one.

    Unknown keys are ignored, so a later version may add fields.
    """
    try:
        raw = json.loads(data.decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        record = _converter.structure(raw, OwnerRecord)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, cattrs.BaseValidationError) as e:
        raise OwnerRecordError(
            f"the owner object of replica {replica} is not a readable owner record ({e}); "
            "if no other database writes this replica, delete the object and start again",
            replica=replica,
            path=path,
        ) from None
    if record.version > RECORD_VERSION:
        raise OwnerRecordError(
            f"the owner object of replica {replica} has version {record.version}, newer than this "
            f"replicator understands ({RECORD_VERSION}): {record.describe()}",
            replica=replica,
            path=path,
        )
    return record


# --- the rules (pure) -------------------------------------------------------------------


class Verdict(enum.Enum):
    """What a record found at start-up means for the replicator with a given identity."""

    MINE = "mine"
    """Written by this very run (our writer id)."""
    OURS = "ours"
    """The same database on the same host, written by an earlier run."""
    FOREIGN = "foreign"
    """Another database or another host."""


def judge(record: OwnerRecord, identity: Identity, writer_id: str) -> Verdict:
    """Classify ``record`` for the replicator with ``identity`` and ``writer_id``."""
    if record.identity != identity:
        return Verdict.FOREIGN
    return Verdict.MINE if record.writer_id == writer_id else Verdict.OURS


def refusal_message(owner: OwnerRecord, identity: Identity, replica: str) -> str:
    """The one-line reason a replicator with ``identity`` may not write ``replica``."""
    return (
        f"replica {replica} belongs to {owner.describe()}; refusing to replicate database "
        f"{identity.database} on host {identity.host} into it (it is not a restore of the replica's "
        f"latest state); if {owner.database} on {owner.host} is gone for good, delete this owner "
        "object and start again"
    )


def takeover_message(owner: OwnerRecord, identity: Identity, replica: str) -> str:
    """The one-line reason a running replicator stops: someone claimed its replica after it."""
    return (
        f"replica {replica} was claimed by {owner.describe()} while database {identity.database} "
        f"on host {identity.host} was being replicated into it: another writer took it over; "
        "stopping all writes to it"
    )


# --- applying them (I/O) ----------------------------------------------------------------


class OwnershipGuard:
    """One replicator's claim on one replica, and the process lock on its database.

    :meth:`claim` at start-up (idempotent), :meth:`check` before each upload round,
    :meth:`release` at the end. Thread-safe. A refused claim raises
    :class:`~replica.errors.ReplicaOwnedError` or
    :class:`~replica.errors.DatabaseLockedError`; a claim lost while running fences
    the client (every later write raises) and raises the fencing error.
    """

    def __init__(
        self,
        client: ReplicaClient,
        db_path: str,
        *,
        workdir: str | None = None,
        host: str | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
    ) -> None:
        self.client = client
        self.db_path = os.path.abspath(db_path)
        self.identity = Identity(host or socket.gethostname(), os.path.realpath(self.db_path))
        self.writer_id = secrets.token_hex(8)
        self.workdir = workdir
        self.clock = clock
        self.record: OwnerRecord | None = None
        self._seen: bytes | None = None
        """The record's bytes as last read and found ours (a re-read that matches is not decoded again)."""
        """The record as we wrote it, once claimed."""
        self._lock: DatabaseLock | None = None
        self._mutex = threading.RLock()

    @property
    def location(self) -> str:
        """The owner object's full location (for messages)."""
        return self.client.location(self.client.object_key(OWNER_OBJECT))

    def _raise_if_fenced(self) -> None:
        if self.client.fenced is not None:
            raise self.client.fenced

    def claim(self) -> OwnerRecord:
        """Lock the database for this process and make sure the replica is ours (see the module rules)."""
        with self._mutex:
            self._raise_if_fenced()
            try:
                if self._lock is None:
                    self._lock = lock_database(self.db_path, replica=self.client.name)
                if self.record is None:
                    self.record = self._claim()
            except OwnershipError as e:
                # Refused: nothing of ours may write this replica (compaction and retention
                # included), and asking again would only repeat the answer.
                self.release()
                self.client.fence(e, quiet=True)
                raise
            except BaseException:
                self.release()
                raise
            return self.record

    def _decode(self, data: bytes) -> OwnerRecord:
        return decode_record(data, replica=self.client.name, path=self.location)

    def _claim(self) -> OwnerRecord:
        replica = self.client.name
        for _ in range(5):
            found = self.client.read_object(OWNER_OBJECT)
            mine = new_record(self.identity, self.writer_id, self.clock())
            if found is None:
                if self.client.create_object(OWNER_OBJECT, encode_record(mine)):
                    log.info("claimed replica %s for database %s (%s)", replica, self.db_path, self.location)
                    return mine
                continue  # lost a race, or found our own retried write: read it
            data, version = found
            owner = self._decode(data)
            verdict = judge(owner, self.identity, self.writer_id)
            if verdict is Verdict.MINE:
                return owner
            if verdict is Verdict.FOREIGN:
                if not is_latest_state(self.client, self.db_path, self.workdir):
                    raise ReplicaOwnedError(
                        refusal_message(owner, self.identity, replica),
                        replica=replica,
                        owner=owner,
                        path=self.location,
                    )
                log.info(
                    "taking over replica %s from %s: database %s holds exactly its latest state",
                    replica,
                    owner.describe(),
                    self.db_path,
                )
            if self.client.replace_object(OWNER_OBJECT, encode_record(mine), version):
                return mine
        raise OwnershipError(
            f"the owner object of replica {replica} kept changing while we claimed it: "
            "another replicator is starting on it at the same time",
            replica=replica,
            path=self.location,
        )

    def check(self) -> None:
        """Before an upload round: read the record again; it must still be ours.

        A missing record is claimed again (it was deleted, e.g. by hand). A record with
        another writer id fences the client and raises
        :class:`~replica.errors.ReplicaOwnedError`. Storage errors propagate.
        """
        with self._mutex:
            self._raise_if_fenced()
            if self.record is None:
                self.claim()
                return
            found = self.client.read_object(OWNER_OBJECT)
            if found is None:
                log.warning("%s: the owner object is gone; claiming replica %s again", self.location,
                            self.client.name)  # fmt: skip
                self.record = None
                self.claim()
                return
            if found[0] == self._seen:  # the bytes we decoded and accepted last time
                return
            try:
                owner = self._decode(found[0])
            except OwnershipError as e:
                self.client.fence(e)
                raise
            if owner.writer_id == self.record.writer_id:
                self._seen = found[0]
                return
            err = ReplicaOwnedError(
                takeover_message(owner, self.identity, self.client.name),
                replica=self.client.name,
                owner=owner,
                path=self.location,
            )
            self.client.fence(err)
            raise err

    def release(self) -> None:
        """Give back the database lock (the record stays: the replica remains ours)."""
        with self._mutex:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
