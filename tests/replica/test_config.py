"""Tests for :mod:`replica.config`: real YAML texts for every key and default, Go ``os.Expand``
against a regex model, Go durations and byte sizes, yaml.v2 typing and error collection,
every validation message, replica URLs, and ``dir:`` discovery on real SQLite files.

Expected messages are written out literally; where the real ``litestream`` 0.5.17 binary
is installed, the ``*_match_litestream`` tests also check that it prints the same text.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import shutil
import sqlite3
import subprocess
import textwrap
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import replica._go.duration as go_duration
import replica.config.discover as config_discover
from ltx.errors import PyLitestreamError
from replica.config import (
    Config,
    ConfigError,
    DBConfig,
    LevelConfig,
    ReplicaConfig,
    config_from_args,
    db_from_dir_entry,
    expand_dir_entries,
    expand_env,
    expand_path,
    find_sqlite_databases,
    format_go_duration,
    go_expand,
    go_match,
    is_sqlite_database,
    load_config,
    parse_byte_size,
    parse_config,
    parse_duration,
    parse_go_duration,
    replica_url,
)
from replica.defaults import default_meta_path
from replica.errors import ReplicaError
from replica.storage.url import parse_replica_url

S = dt.timedelta(seconds=1)
MS = dt.timedelta(milliseconds=1)
MIN = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def parse(text: str, base_dir: Path | str = "/base", environ: Mapping[str, str] | None = None) -> Config:
    """Parse a dedented config text with an empty environment unless one is given."""
    return parse_config(textwrap.dedent(text), base_dir=str(base_dir), environ=environ or {})


def error_of(text: str, base_dir: Path | str = "/base") -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, base_dir)
    return str(info.value)


def make_db(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    return path


# --------------------------------------------------------------------------------------------
# The real binary as an oracle (skipped when it is not installed)


def litestream_databases(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> str:
    """``litestream databases -config`` on ``text``: ``Error: …`` text, or the table on stdout."""
    exe = shutil.which("litestream")
    if exe is None:
        pytest.skip("the litestream binary is not installed")
    cfg = tmp_path / "oracle.yml"
    cfg.write_text(textwrap.dedent(text))
    base_env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "LOG_LEVEL")}
    r = subprocess.run(
        [exe, "databases", "-config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**base_env, **(env or {})},
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        assert "Error: " in r.stderr, r.stderr
        return "Error: " + r.stderr.split("Error: ", 1)[1].rstrip("\n")
    return r.stdout


# --------------------------------------------------------------------------------------------
# Defaults and every key


def test_empty_config_has_litestream_defaults() -> None:
    for text in ("", "# only a comment\n", "---\n", "x-anchors: 1\n"):
        cfg = parse(text)
        assert cfg == Config()
    cfg = Config()
    assert cfg.dbs == ()
    assert cfg.addr == ""
    assert [lvl.interval for lvl in cfg.levels] == [30 * S, 5 * MIN, H]
    assert cfg.snapshot_interval == 24 * H and cfg.snapshot_retention == 24 * H
    assert cfg.l0_retention == 5 * MIN and cfg.l0_retention_check_interval == 15 * S
    assert cfg.retention_enabled is True
    assert cfg.validation_interval is None
    assert cfg.shutdown_sync_timeout == 30 * S and cfg.shutdown_sync_interval == 500 * MS
    assert cfg.heartbeat_url == "" and cfg.heartbeat_interval == 5 * MIN
    assert cfg.verify_compaction is False and cfg.exec == "" and cfg.mcp_addr == ""
    assert (cfg.socket.enabled, cfg.socket.path, cfg.socket.permissions) == (
        False,
        "/var/run/litestream.sock",
        0o600,
    )
    assert (cfg.logging.level, cfg.logging.type, cfg.logging.stderr, cfg.logging.source) == (
        "INFO",
        "text",
        False,
        False,
    )
    assert cfg.config_path is None


def test_db_and_replica_defaults() -> None:
    cfg = parse(
        """
        dbs:
          - path: /data/app.db
            replica:
              url: file:///backups/app
        """
    )
    (db,) = cfg.dbs
    assert db.path == "/data/app.db"
    assert db.meta_path == "/data/.app.db-litestream"
    assert db.monitor_interval == S
    assert db.checkpoint_interval == MIN
    assert db.busy_timeout == S
    assert db.min_checkpoint_page_count == 1000
    assert db.truncate_page_n == 121359
    assert db.max_sync_wal_bytes == 64 * 1024 * 1024
    assert db.restore_if_db_not_exists is False
    assert db.replicas == ()
    rc = db.replica
    assert rc is not None
    assert rc.replica_type == "file"
    assert rc.sync_interval == S
    assert rc.max_sync_ltx_files == 256
    assert rc.auto_recover is False
    assert rc.validation_interval is None
    assert rc.to_url() == "file:///backups/app"


FULL_CONFIG = """
addr: ":9090"
mcp-addr: "127.0.0.1:3001"
exec: "/usr/bin/app --serve"
verify-compaction: yes
socket:
  enabled: on
  path: /run/ls.sock
  permissions: 0660
levels:
  - interval: 10s
  - interval: 1m30s
snapshot:
  interval: 12h
  retention: 72h
validation:
  interval: 30m
retention:
  enabled: off
l0-retention: 0s
l0-retention-check-interval: 2s
heartbeat-url: https://hc.example/ping
heartbeat-interval: 10m
shutdown-sync-timeout: 0s
shutdown-sync-interval: 250ms
logging:
  level: debug
  type: json
  stderr: true
  source: y
# global inline replica settings
sync-interval: 7s
validation-interval: 1h
max-sync-ltx-files: 0
auto-recover: true
access-key-id: AKIA0600
secret-access-key: "s3cr3t"
region: on
endpoint: minio.local:9000
force-path-style: false
sign-payload: false
require-content-md5: no
skip-verify: true
storage-class: STANDARD_IA
part-size: 10MiB
concurrency: 3
sse-kms-key-id: kms-1
account-name: acct
account-key: akey
sas-token: sas
user: deploy
password: pw
key-path: ~/.ssh/id
concurrent-writes: false
host-key: "ssh-ed25519 AAAA"
webdav-username: wu
webdav-password: wp
jwt: j
seed: sd
creds: /c.creds
nkey: nk
username: nu
token: tk
tls: true
root-cas: [/ca1.pem, /ca2.pem]
client-cert: /cert.pem
client-key: /key.pem
max-reconnects: -1
reconnect-wait: 2s
timeout: 10s
dbs:
  - path: sqlite3://~/data/app.db
    meta-path: meta/app
    monitor-interval: 0
    checkpoint-interval: 0s
    busy-timeout: 5s
    min-checkpoint-page-count: 2000
    truncate-page-n: 0
    max-sync-wal-bytes: 1048576
    restore-if-db-not-exists: true
    replica:
      type: s3
      name: old-name
      bucket: my-bucket
      path: prefix/app
      sync-interval: 2s
  - dir: ./tenants
    pattern: "*.sqlite"
    recursive: true
    watch: true
    meta-dir: /var/lib/ls-meta
    replica:
      url: s3://tenant-bucket/dbs
"""


def test_every_key_is_read() -> None:
    cfg = parse(FULL_CONFIG, base_dir="/srv")
    assert cfg.addr == ":9090" and cfg.mcp_addr == "127.0.0.1:3001"
    assert cfg.exec == "/usr/bin/app --serve"
    assert cfg.verify_compaction is True
    assert (cfg.socket.enabled, cfg.socket.path, cfg.socket.permissions) == (True, "/run/ls.sock", 0o660)
    assert cfg.levels == (LevelConfig(10 * S), LevelConfig(90 * S))
    assert (cfg.snapshot.interval, cfg.snapshot.retention) == (12 * H, 72 * H)
    assert cfg.validation_interval == 30 * MIN
    assert cfg.retention_enabled is False
    assert cfg.l0_retention == dt.timedelta(0)
    assert cfg.l0_retention_check_interval == 2 * S
    assert cfg.heartbeat_url == "https://hc.example/ping" and cfg.heartbeat_interval == 10 * MIN
    assert cfg.shutdown_sync_timeout == dt.timedelta(0) and cfg.shutdown_sync_interval == 250 * MS
    assert (cfg.logging.level, cfg.logging.type, cfg.logging.stderr, cfg.logging.source) == (
        "debug",
        "json",
        True,
        True,
    )

    g = cfg.replica_settings
    assert g.sync_interval == 7 * S and g.validation_interval == H
    assert g.max_sync_ltx_files == 0 and g.auto_recover is True
    # String fields keep the scalar's text: "AKIA0600" / "on" are not numbers or booleans.
    assert (g.access_key_id, g.secret_access_key, g.region) == ("AKIA0600", "s3cr3t", "on")
    assert (g.force_path_style, g.sign_payload, g.require_content_md5, g.skip_verify) == (
        False,
        False,
        False,
        True,
    )
    assert (g.storage_class, g.part_size, g.concurrency, g.sse_kms_key_id) == (
        "STANDARD_IA",
        10 << 20,
        3,
        "kms-1",
    )
    assert (g.account_name, g.account_key, g.sas_token) == ("acct", "akey", "sas")
    assert (g.user, g.password, g.key_path, g.concurrent_writes, g.host_key) == (
        "deploy",
        "pw",
        "~/.ssh/id",
        False,
        "ssh-ed25519 AAAA",
    )
    assert (g.webdav_username, g.webdav_password) == ("wu", "wp")
    assert (g.jwt, g.seed, g.creds, g.nkey, g.username, g.token, g.tls) == (
        "j",
        "sd",
        "/c.creds",
        "nk",
        "nu",
        "tk",
        True,
    )
    assert g.root_cas == ("/ca1.pem", "/ca2.pem")
    assert (g.client_cert, g.client_key, g.max_reconnects) == ("/cert.pem", "/key.pem", -1)
    assert (g.reconnect_wait, g.timeout) == (2 * S, 10 * S)

    db, tenants = cfg.dbs
    home = expand_path("~")
    assert db.path == f"{home}/data/app.db"
    assert db.meta_path == "/srv/meta/app"
    assert db.monitor_interval == dt.timedelta(0) and db.checkpoint_interval == dt.timedelta(0)
    assert db.busy_timeout == 5 * S
    assert (db.min_checkpoint_page_count, db.truncate_page_n, db.max_sync_wal_bytes) == (2000, 0, 1 << 20)
    assert db.restore_if_db_not_exists is True
    rc = db.replica
    assert rc is not None
    assert (rc.type, rc.name, rc.bucket, rc.path, rc.sync_interval) == (
        "s3",
        "old-name",
        "my-bucket",
        "prefix/app",
        2 * S,
    )
    # Everything not set on the replica comes from the global settings.
    assert rc.region == "on" and rc.endpoint == "minio.local:9000" and rc.access_key_id == "AKIA0600"
    assert rc.max_sync_ltx_files == 0 and rc.root_cas == ("/ca1.pem", "/ca2.pem") and rc.tls is True
    u = rc.to_replica_url()
    assert u.s3 is not None
    assert (u.s3.bucket, u.s3.path, u.s3.region) == ("my-bucket", "prefix/app", "on")
    assert u.s3.endpoint == "http://minio.local:9000"  # a scheme is added, as for URL endpoints
    assert (u.s3.force_path_style, u.s3.sign_payload, u.s3.require_content_md5) == (False, False, False)
    assert (u.s3.skip_verify, u.s3.storage_class, u.s3.part_size, u.s3.concurrency) == (
        True,
        "STANDARD_IA",
        10 << 20,
        3,
    )

    assert tenants.dir == "/srv/tenants" and tenants.pattern == "*.sqlite"
    assert tenants.recursive is True and tenants.watch is True
    assert tenants.meta_dir == "/var/lib/ls-meta" and tenants.meta_path is None


def test_full_config_matches_litestream(tmp_path: Path) -> None:
    out = litestream_databases(tmp_path, FULL_CONFIG.split("  - dir:")[0])
    home = expand_path("~")
    assert out.splitlines()[1].split() == [f"{home}/data/app.db", "s3"]


# --------------------------------------------------------------------------------------------
# yaml.v2 semantics: nulls, YAML 1.1 scalars, strings, merges


def test_null_values_mean_zero_or_default() -> None:
    cfg = parse(
        """
        levels:
        snapshot:
        socket:
        shutdown-sync-timeout:
        l0-retention: ~
        logging:
        dbs:
          - path: /a
            monitor-interval:
            meta-path:
            replica:
              path: /r
              sync-interval: null
        """
    )
    assert cfg.levels == ()  # an empty levels: means no compaction levels
    assert (cfg.snapshot.interval, cfg.snapshot.retention) == (24 * H, 24 * H)
    assert (cfg.socket.path, cfg.socket.permissions) == ("", 0)  # an empty socket: clears them
    assert cfg.shutdown_sync_timeout == 30 * S and cfg.l0_retention == 5 * MIN
    assert cfg.logging.level == "INFO"
    (db,) = cfg.dbs
    assert db.monitor_interval == S and db.meta_path == "/.a-litestream"
    assert db.replica is not None and db.replica.sync_interval == S


def test_null_level_interval_is_zero() -> None:
    assert error_of("levels:\n  - interval:\n") == (
        "levels[0].interval: compaction interval must be greater than 0 (got 0s)"
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [(v, True) for v in ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")]
    + [(v, False) for v in ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")],
)
def test_yaml_11_booleans(text: str, value: bool) -> None:
    cfg = parse(f"verify-compaction: {text}\nsocket:\n  enabled: {text}\n")
    assert cfg.verify_compaction is value and cfg.socket.enabled is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0600", 0o600),
        ("0o17", 0o17),
        ("0x1F", 31),
        ("0b101", 5),
        ("1_000", 1000),
        ("+7", 7),
        ("08", 8),
        ("1e3", 1000),
    ],
)
def test_yaml_integers(text: str, value: int) -> None:
    cfg = parse(
        f"socket:\n  permissions: {text}\ndbs:\n  - path: /a\n    min-checkpoint-page-count: {text}\n"
        "    replica:\n      path: /r\n"
    )
    assert cfg.socket.permissions == value
    assert cfg.dbs[0].min_checkpoint_page_count == value


@pytest.mark.parametrize(
    "text", ["on", "yes", "0123", "1e3", "0x10", "null-ish", "2001-12-14", "~x", "'quoted'", '"a b"']
)
def test_string_fields_keep_the_scalar_text(text: str) -> None:
    cfg = parse(f"addr: {text}\nregion: {text}\n")
    expected = text.strip("'\"")
    assert cfg.addr == expected and cfg.replica_settings.region == expected


def test_anchors_and_merge_keys() -> None:
    cfg = parse(
        """
        x-common: &common
          type: s3
          bucket: shared
          sync-interval: 3s
        dbs:
          - path: /a
            replica:
              <<: *common
              path: a
          - path: /b
            replica:
              sync-interval: 9s
              <<: *common
        """
    )
    a, b = (db.replica for db in cfg.dbs)
    assert a is not None and b is not None
    assert (a.type, a.bucket, a.path, a.sync_interval) == ("s3", "shared", "a", 3 * S)
    assert b.sync_interval == 3 * S  # yaml.v2 applies a merge where it appears: it wins over earlier keys


def test_only_the_first_document_is_read() -> None:
    assert parse("addr: first\n---\naddr: second\n").addr == "first"


def test_top_level_sequence_is_ignored_and_scalar_is_an_error() -> None:
    assert parse("- a\n- b\n") == Config()
    assert error_of("abc\n") == (
        "yaml: unmarshal errors:\n"
        "  line 1: cannot unmarshal !!str `abc` into "
        'struct { Snapshot *main.SnapshotConfig "yaml:\\"snapshot\\"" }'
    )


def test_yaml_syntax_error() -> None:
    msg = error_of("a: [\n")
    assert msg.startswith("yaml: line ")


# Collected type errors, exactly as Litestream 0.5.17 prints them.
TYPE_ERRORS = [
    (
        "scalars",
        "socket:\n  permissions: abc\nlogging:\n  stderr: [1]\nlevels: 5\n",
        "yaml: unmarshal errors:\n"
        "  line 2: cannot unmarshal !!str `abc` into uint32\n"
        "  line 4: cannot unmarshal !!seq into bool\n"
        "  line 5: cannot unmarshal !!int `5` into []*main.CompactionLevelConfig",
    ),
    (
        "db-fields",
        "dbs:\n  - path: /a\n    max-sync-wal-bytes: x\n    min-checkpoint-page-count: yes\n"
        "    meta-path: [a]\n    replica: abc\n",
        "yaml: unmarshal errors:\n"
        "  line 3: cannot unmarshal !!str `x` into int64\n"
        "  line 4: cannot unmarshal !!bool `yes` into int\n"
        "  line 5: cannot unmarshal !!seq into string\n"
        "  line 6: cannot unmarshal !!str `abc` into main.ReplicaConfig",
    ),
    (
        "lists-and-structs",
        "dbs:\n  - x\nretention:\n  enabled: 1\nvalidation:\n  interval: 99999999999999999999\n"
        "l0-retention: 2562047h47m16.854775808s\n",
        "yaml: unmarshal errors:\n"
        "  line 2: cannot unmarshal !!str `x` into main.DBConfig\n"
        "  line 4: cannot unmarshal !!int `1` into bool\n"
        "  line 6: cannot unmarshal !!float `9999999...` into time.Duration\n"
        "  line 7: cannot unmarshal !!str `2562047...` into time.Duration",
    ),
    (
        "replica-fields",
        "dbs:\n  - path: /a\n    replica:\n      root-cas: x\n      age: 1\n      tls: 0\n"
        "      max-reconnects: 1.5\n      part-size: [1]\n",
        "yaml: unmarshal errors:\n"
        "  line 4: cannot unmarshal !!str `x` into []string\n"
        '  line 5: cannot unmarshal !!int `1` into struct { Identities []string "yaml:\\"identities\\""; '
        'Recipients []string "yaml:\\"recipients\\"" }\n'
        "  line 6: cannot unmarshal !!int `0` into bool\n"
        "  line 8: cannot unmarshal !!seq into string",
    ),
    (
        "containers-into-strings",
        "addr: [1]\nexec: {a: 1}\nmcp-addr: 12345678901234\n"
        "dbs:\n  - path: /a\n    busy-timeout: 12345678901234x\n",
        "yaml: unmarshal errors:\n"
        "  line 1: cannot unmarshal !!seq into string\n"
        "  line 2: cannot unmarshal !!map into string\n"
        "  line 6: cannot unmarshal !!str `1234567...` into time.Duration",
    ),
    (
        "level-items",
        "levels:\n  - 5\n  - interval: x\n",
        "yaml: unmarshal errors:\n"
        "  line 2: cannot unmarshal !!int `5` into main.CompactionLevelConfig\n"
        "  line 3: cannot unmarshal !!str `x` into time.Duration",
    ),
    (
        "dbs-scalar",
        "dbs: x\n",
        "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `x` into []*main.DBConfig",
    ),
    (
        "snapshot-first",  # yaml.v2 decodes `snapshot:` alone first and stops there
        "snapshot:\n  interval: abc\naddr: [1]\n",
        "yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `abc` into time.Duration",
    ),
    (
        "sexagesimal-quoted-bool-timestamp",
        'dbs:\n  - path: /a\n    busy-timeout: 1:30\n    restore-if-db-not-exists: "true"\n'
        "    checkpoint-interval: 2001-12-14\n    replica:\n      path: /r\n",
        "yaml: unmarshal errors:\n"
        "  line 3: cannot unmarshal !!str `1:30` into time.Duration\n"
        "  line 4: cannot unmarshal !!str `true` into bool\n"
        "  line 5: cannot unmarshal !!timestamp `2001-12-14` into time.Duration",
    ),
    (
        "byte-size-error-wins",  # a custom unmarshaler's error stops decoding
        "dbs:\n  - path: /a\n    busy-timeout: x\n    replica:\n"
        "      type: s3\n      bucket: b\n      part-size: abc\n",
        'invalid size format: strconv.ParseFloat: parsing "": invalid syntax',
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), TYPE_ERRORS, ids=[c[0] for c in TYPE_ERRORS])
def test_type_errors(name: str, text: str, message: str) -> None:
    assert error_of(text) == message


@pytest.mark.parametrize(("name", "text", "message"), TYPE_ERRORS, ids=[c[0] for c in TYPE_ERRORS])
def test_type_errors_match_litestream(tmp_path: Path, name: str, text: str, message: str) -> None:
    assert litestream_databases(tmp_path, text) == "Error: " + message


def test_loose_numbers_are_accepted_like_yaml_v2() -> None:
    cfg = parse(
        """
        dbs:
          - path: /a
            monitor-interval: 1.9
            checkpoint-interval: 1500000000
            truncate-page-n: 2.7
            replica:
              path: /r
              part-size: 10
        """
    )
    (db,) = cfg.dbs
    assert db.monitor_interval == dt.timedelta(microseconds=1)  # 1 ns, rounded up to 1 µs
    assert db.checkpoint_interval == 1500 * MS  # a bare integer is nanoseconds
    assert db.truncate_page_n == 2
    assert db.replica is not None and db.replica.part_size == 10


# --------------------------------------------------------------------------------------------
# Environment expansion


def model_expand(s: str, env: Mapping[str, str]) -> str:
    """A regex model of Go's os.Expand (lookups only in ``env``)."""
    special = r"[*#$@!?\-0-9]"
    rx = re.compile(
        rf"\$(?:\{{(?P<bs>{special})\}}|(?P<empty>\{{\}})|\{{(?P<braced>[^}}]+)\}}|(?P<open>\{{)"
        rf"|(?P<sp>{special})|(?P<name>[A-Za-z0-9_]+))"
    )

    def sub(m: re.Match[str]) -> str:
        name = m.group("bs") or m.group("braced") or m.group("sp") or m.group("name")
        return env.get(name, "") if name else ""

    return rx.sub(sub, s)


ENV_CASES = [
    ("plain $FOO and ${FOO}", {"FOO": "x"}, "plain x and x"),
    ("${FOO}bar $FOObar", {"FOO": "x", "FOObar": "y"}, "xbar y"),
    ("unset: [$NOPE] [${NOPE}]", {}, "unset: [] []"),
    ("$%d 5$ trailing$", {}, "$%d 5$ trailing$"),
    ("price: $5 $$ $@ $-x", {"5": "five"}, "price: five   x"),
    ("${}gone ${unclosed", {}, "gone unclosed"),
    ("${A:-default} ${A B}", {"A:-default": "weird"}, "weird "),
    ("${-} ${1}x", {"-": "dash"}, "dash x"),
    ("é$é ${é} $_u", {"é": "no", "_u": "u"}, "é$é no u"),
    (
        "/tmp/a$FOO-${FOO}-$%-${-$$-${}x-$1-${BAR:-z}-$",
        {"FOO": "foo", "BAR": "bar"},
        "/tmp/afoo-foo-$%-x---$",
    ),
]


@pytest.mark.parametrize(("text", "env", "expected"), ENV_CASES)
def test_go_expand_examples(text: str, env: dict[str, str], expected: str) -> None:
    assert go_expand(text, lambda k: env.get(k, "")) == expected
    assert model_expand(text, env) == expected


@given(
    st.text(alphabet=st.sampled_from(list("$${}{}AB_z09-*#@!?% é\n")), max_size=40),
    st.dictionaries(
        st.sampled_from(["A", "B", "AB", "z", "_", "0", "9", "-", "$", "A}", "{"]), st.text(max_size=5)
    ),
)
@example("$", {})
@example("${", {})
@example("${$}", {"$": "d"})
def test_go_expand_matches_model(text: str, env: dict[str, str]) -> None:
    assert go_expand(text, lambda k: env.get(k, "")) == model_expand(text, env)


def test_expand_env_pid_and_environ() -> None:
    assert expand_env("$PID ${PID}", {"PID": "ignored"}) == f"{os.getpid()} {os.getpid()}"
    assert expand_env("$HOME_X", {"HOME_X": "h"}) == "h"


def test_config_text_is_expanded_unless_disabled(tmp_path: Path) -> None:
    text = "addr: ${ADDR}\nexec: echo $$ $PID\ndbs:\n  - path: /data/$NAME.db\n    replica:\n      url: s3://$BKT/x\n"
    env = {"ADDR": ":9000", "NAME": "app", "BKT": "bucket"}
    cfg = parse_config(text, environ=env)
    assert cfg.addr == ":9000" and cfg.exec == f"echo  {os.getpid()}"
    assert cfg.dbs[0].path == "/data/app.db"
    assert cfg.dbs[0].replica is not None and cfg.dbs[0].replica.url == "s3://bucket/x"
    raw = parse_config(text, environ=env, expand_env=False)
    assert raw.addr == "${ADDR}" and raw.dbs[0].path == "/data/$NAME.db"
    f = tmp_path / "ls.yml"
    f.write_text(text)
    assert load_config(str(f), environ=env).addr == ":9000"
    assert load_config(str(f), environ=env, expand_env=False).addr == "${ADDR}"


@pytest.mark.parametrize(
    ("text", "env", "expected"), [c for c in ENV_CASES if " " not in c[2] and "é" not in c[0]]
)
def test_expansion_matches_litestream(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    doc = f'dbs:\n  - path: "/x/{text}"\n    replica:\n      path: /r\n'
    out = litestream_databases(tmp_path, doc, env=env)
    path = re.split(r"\s{2,}", out.splitlines()[1])[0]
    assert path == go_clean_like(f"/x/{expected}")


def go_clean_like(p: str) -> str:
    from replica._go.path import go_clean

    return go_clean(p)


# --------------------------------------------------------------------------------------------
# Go durations


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("10s", 10 * 10**9),
        ("1h30m", 90 * 60 * 10**9),
        ("500ms", 500 * 10**6),
        ("1.5h", 90 * 60 * 10**9),
        ("-1.5h", -90 * 60 * 10**9),
        ("+5s", 5 * 10**9),
        ("1h2m3.5s", (3723 * 10**9) + 5 * 10**8),
        (".5s", 5 * 10**8),
        ("1.s", 10**9),
        ("100ns", 100),
        ("3us", 3000),
        ("3\u00b5s", 3000),
        ("3\u03bcs", 3000),
        ("1m0.000000001s", 60 * 10**9 + 1),
        ("2562047h47m16.854775807s", 2**63 - 1),
        ("-2562047h47m16.854775808s", -(2**63)),
        ("0.1h", 360 * 10**9),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'),
        ("-", 'time: invalid duration "-"'),
        ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
        ("99999999999999999999ns", 'time: invalid duration "99999999999999999999ns"'),
    ],
)
def test_parse_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5\u00b5s"),
        (1_500_000, "1.5ms"),
        (500 * 10**6, "500ms"),
        (10**9, "1s"),
        (1_500_000_000, "1.5s"),
        (90 * 10**9, "1m30s"),
        (3600 * 10**9, "1h0m0s"),
        (-3600 * 10**9, "-1h0m0s"),
        (24 * 3600 * 10**9, "24h0m0s"),
        (2**63 - 1, "2562047h47m16.854775807s"),
    ],
)
def test_format_go_duration(ns: int, text: str) -> None:
    assert format_go_duration(ns) == text
    if ns % 1000 == 0:
        assert format_go_duration(dt.timedelta(microseconds=ns // 1000)) == text


INT64 = st.integers(-(2**63), 2**63 - 1)
TIMEDELTAS = st.timedeltas(
    min_value=dt.timedelta(microseconds=-(2**63 // 1000)),
    max_value=dt.timedelta(microseconds=2**63 // 1000 - 1),
)


@given(TIMEDELTAS)
def test_duration_round_trip(td: dt.timedelta) -> None:
    assert parse_duration(format_go_duration(td)) == td


@given(INT64)
def test_duration_round_trip_nanoseconds(ns: int) -> None:
    assert parse_go_duration(format_go_duration(ns)) == ns


@given(
    st.lists(
        st.tuples(st.integers(0, 10**7), st.sampled_from(sorted(go_duration.UNITS))), min_size=1, max_size=6
    ),
    st.sampled_from(["", "+", "-"]),
)
def test_duration_components_add_up(parts: list[tuple[int, str]], sign: str) -> None:
    text = sign + "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * go_duration.UNITS[unit] for n, unit in parts)
    if total > (2**63 if sign == "-" else 2**63 - 1):
        with pytest.raises(ValueError, match=r"^time: invalid duration "):
            parse_go_duration(text)
    else:
        assert parse_go_duration(text) == (-total if sign == "-" else total)


@given(st.integers(-(10**15), 10**15))
def test_sub_microsecond_rounding_keeps_the_sign(ns: int) -> None:
    td = go_duration.ns_to_timedelta(ns)
    assert (td > dt.timedelta(0)) == (ns > 0) and (td < dt.timedelta(0)) == (ns < 0)
    assert abs(go_duration.timedelta_ns(td) - ns) < 1000


# --------------------------------------------------------------------------------------------
# Byte sizes


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5MiB", 5 * 1024**2),
        ("10MB", 10 * 1000**2),
        ("1.5GB", 1_500_000_000),
        ("1,024KB", 1_024_000),
        ("5 mib", 5 * 1024**2),
        ("100B", 100),
        ("10", 10),
        ("0", 0),
        ("1k", 1000),
        ("2Ki", 2048),
        ("1.5", 1),
        (" 7 EiB ", 7 * 1024**6),
    ],
)
def test_parse_byte_size(text: str, size: int) -> None:
    assert parse_byte_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty size string"),
        ("abc", 'invalid size format: strconv.ParseFloat: parsing "": invalid syntax'),
        ("-5", 'invalid size format: strconv.ParseFloat: parsing "": invalid syntax'),
        ("1.2.3MB", 'invalid size format: strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
        ("5XB", "invalid size format: unhandled size name: xb"),
        ("18EB", "size 18000000000000000000 exceeds maximum allowed value (9223372036854775807)"),
        ("20EB", "invalid size format: too large: 20EB"),
    ],
)
def test_parse_byte_size_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_byte_size(text)
    assert str(info.value) == message


# --------------------------------------------------------------------------------------------
# Validation: every message


AGE_MESSAGE = (
    "age encryption is not currently supported, "
    "if you need encryption please revert back to Litestream v0.3.x"
)
ERROR_CASES = [
    (
        "snapshot-interval",
        "snapshot:\n  interval: 0s\n",
        "snapshot.interval: snapshot interval must be greater than 0 (got 0s)",
    ),
    (
        "snapshot-retention",
        "snapshot:\n  retention: -1h\n",
        "snapshot.retention: snapshot retention must be greater than 0 (got -1h0m0s)",
    ),
    ("l0-retention", "l0-retention: -1s\n", "l0-retention: l0 retention must not be negative (got -1s)"),
    (
        "l0-check",
        "l0-retention-check-interval: 0s\n",
        "l0-retention-check-interval: l0 retention check interval must be greater than 0 (got 0s)",
    ),
    (
        "shutdown-timeout",
        "shutdown-sync-timeout: -1s\n",
        "shutdown-sync-timeout: shutdown-sync-timeout must be >= 0 (got -1s)",
    ),
    (
        "shutdown-interval",
        "shutdown-sync-interval: 0s\n",
        "shutdown-sync-interval: shutdown sync interval must be greater than 0 (got 0s)",
    ),
    (
        "heartbeat-url",
        "heartbeat-url: ftp://x\n",
        "heartbeat-url: heartbeat URL must be a valid HTTP or HTTPS URL (got ftp://x)",
    ),
    (
        "heartbeat-interval",
        "heartbeat-interval: 30s\n",
        "heartbeat-interval: heartbeat interval must be at least 1 minute (got 30s)",
    ),
    (
        "level-interval",
        "levels:\n  - interval: 1s\n  - interval: 0s\n",
        "levels[1].interval: compaction interval must be greater than 0 (got 0s)",
    ),
    (
        "path-and-dir",
        "dbs:\n  - path: /a\n    dir: /b\n",
        "database config #1: cannot specify both 'path' and 'dir'",
    ),
    (
        "neither",
        "dbs:\n  - replica:\n      path: /r\n",
        "database config #1: must specify either 'path' or 'dir'",
    ),
    (
        "pattern",
        "dbs:\n  - path: /a\n    replica:\n      path: /r\n  - dir: /b\n",
        "database config #2: 'pattern' is required when using 'dir'",
    ),
    (
        "watch",
        "dbs:\n  - path: /a\n    watch: true\n",
        "database config #1: 'watch' can only be enabled with a directory",
    ),
    (
        "meta-dir",
        "dbs:\n  - path: /a\n    meta-dir: /m\n",
        "database config #1: 'meta-dir' can only be used with a directory",
    ),
    (
        "meta-both",
        'dbs:\n  - dir: /a\n    pattern: "*"\n    meta-dir: /m\n    meta-path: /p\n',
        "database config #1: cannot specify both 'meta-path' and 'meta-dir'",
    ),
    (
        "db-snapshot-promoted",
        "dbs:\n  - path: /a\n    snapshot:\n      interval: 0s\n",
        "snapshot.interval: snapshot interval must be greater than 0 (got 0s)",
    ),
    (
        "db-snapshot-own",
        "snapshot:\n  interval: 1h\ndbs:\n  - path: /a\n    snapshot:\n      interval: 0s\n",
        "dbs[/a].snapshot.interval: snapshot interval must be greater than 0 (got 0s)",
    ),
    (
        "db-snapshot-retention-dir",
        "snapshot:\n  retention: 1h\ndbs:\n  - dir: d\n    pattern: x\n    snapshot:\n      retention: -1s\n",
        "dbs[d].snapshot.retention: snapshot retention must be greater than 0 (got -1s)",
    ),
    (
        "conflicting-intervals",
        "dbs:\n  - path: /a\n    snapshot:\n      interval: 10m\n"
        "  - path: b\n    snapshot:\n      interval: 20m\n",
        "conflicting database snapshot intervals: /a has 10m0s, b has 20m0s",
    ),
    (
        "conflicting-retentions",
        "dbs:\n  - path: /a\n    snapshot:\n      retention: 10m\n  - dir: b\n    pattern: x\n    snapshot:\n"
        "      retention: 1h30m\n",
        "conflicting database snapshot retentions: /a has 10m0s, b has 1h30m0s",
    ),
    (
        "replica-sync-interval",
        "dbs:\n  - path: /a\n    replica:\n      path: /r\n      sync-interval: 0s\n",
        "dbs[/a].replica.sync-interval: sync interval must be greater than 0 (got 0s)",
    ),
    (
        "replicas-sync-interval",
        "dbs:\n  - path: /a\n    replicas:\n      - path: /r\n        sync-interval: -1s\n",
        "dbs[/a].replicas[0].sync-interval: sync interval must be greater than 0 (got -1s)",
    ),
    (
        "global-sync-interval",
        "sync-interval: -1s\ndbs:\n  - path: rel.db\n    replica:\n      path: /r\n",
        "dbs[{base}/rel.db].replica.sync-interval: sync interval must be greater than 0 (got -1s)",
    ),
    ("no-replica", "dbs:\n  - path: /a\n", "must specify replica for database"),
    (
        "replica-and-replicas",
        "dbs:\n  - path: /a\n    replica:\n      path: /r\n    replicas:\n      - path: /r\n",
        "cannot specify 'replica' and 'replicas' on a database",
    ),
    (
        "multiple-replicas",
        "dbs:\n  - path: /a\n    replicas:\n      - url: file:///r\n      - url: file:///r2\n",
        "multiple replicas on a single database are no longer supported",
    ),
    (
        "age",
        "dbs:\n  - path: /a\n    replica:\n      path: /r\n      age:\n        recipients: [x]\n",
        AGE_MESSAGE,
    ),
    (
        "global-age",
        "age:\n  identities: [k]\ndbs:\n  - path: /a\n    replica:\n      path: /r\n",
        AGE_MESSAGE,
    ),
    (
        "path-is-url",
        "dbs:\n  - path: /a\n    replica:\n      path: s3://b/x\n",
        "replica path cannot be a url, please use the 'url' field instead: s3://b/x",
    ),
    (
        "url-and-path",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n      path: y\n",
        "cannot specify url & path for s3 replica",
    ),
    (
        "url-and-bucket",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n      bucket: y\n",
        "cannot specify url & bucket for s3 replica",
    ),
    (
        "global-bucket-and-url",
        "bucket: g\ndbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n",
        "cannot specify url & bucket for s3 replica",
    ),
    (
        "file-url-and-path",
        "dbs:\n  - path: /a\n    replica:\n      url: file:///x\n      path: /y\n",
        "cannot specify url & path for file replica",
    ),
    (
        "gs-url-and-bucket",
        "dbs:\n  - path: /a\n    replica:\n      url: gs://b/x\n      bucket: y\n",
        "cannot specify url & bucket for gs replica",
    ),
    ("s3-bucket", "dbs:\n  - path: /a\n    replica:\n      type: s3\n", "bucket required for s3 replica"),
    (
        "s3-empty-url",
        'dbs:\n  - path: /a\n    replica:\n      url: "s3://"\n',
        "bucket required for s3 replica",
    ),
    ("gs-bucket", "dbs:\n  - path: /a\n    replica:\n      type: gs\n", "bucket required for gs replica"),
    ("abs-bucket", "dbs:\n  - path: /a\n    replica:\n      type: abs\n", "bucket required for abs replica"),
    ("oss-bucket", "dbs:\n  - path: /a\n    replica:\n      type: oss\n", "bucket required for oss replica"),
    ("file-path", "dbs:\n  - path: /a\n    replica:\n      type: file\n", "file replica path required"),
    (
        "unknown-type",
        "dbs:\n  - path: /a\n    replica:\n      type: zzz\n      path: /x\n",
        'unknown replica type in config: "zzz"',
    ),
    (
        "unknown-scheme",
        "dbs:\n  - path: /a\n    replica:\n      url: ftp://x/y\n",
        'unknown replica type in config: "ftp"',
    ),
    (
        "no-scheme",
        "dbs:\n  - path: /a\n    replica:\n      url: /abs/path\n",
        "replica url scheme required: /abs/path",
    ),
    (
        "bad-escape",
        'dbs:\n  - path: /a\n    replica:\n      url: "s3://b/x%zz"\n',
        'parse "s3://b/x%zz": invalid URL escape "%zz"',
    ),
    (
        "bad-part-size-query",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x?partSize=abc\n",
        'invalid value for query parameter "partSize": "abc" (must be a positive integer)',
    ),
    (
        "bad-part-size-query-kebab",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x?concurrency=0&part-size=-1\n",
        'invalid value for query parameter "part-size": "-1" (must be a positive integer)',
    ),
    ("sftp-host", "dbs:\n  - path: /a\n    replica:\n      type: sftp\n", "host required for sftp replica"),
    (
        "sftp-user",
        "dbs:\n  - path: /a\n    replica:\n      url: sftp://host/x\n",
        "user required for sftp replica",
    ),
    (
        "sftp-url-and-host",
        "dbs:\n  - path: /a\n    replica:\n      url: sftp://u@host/x\n      host: h\n",
        "cannot specify url & host for sftp replica",
    ),
    (
        "webdav-url",
        "dbs:\n  - path: /a\n    replica:\n      type: webdav\n",
        "webdav-url required for webdav replica",
    ),
    (
        "url-and-webdav-url",
        "dbs:\n  - path: /a\n    replica:\n      url: webdav://h/x\n      webdav-url: http://h\n",
        "cannot specify url & webdav-url for webdav replica",
    ),
    (
        "nats-bucket",
        "dbs:\n  - path: /a\n    replica:\n      type: nats\n",
        "bucket required for NATS replica",
    ),
    (
        "nats-tls-pair",
        "dbs:\n  - path: /a\n    replica:\n      url: nats://h/bkt\n      client-cert: /c\n",
        "client-cert and client-key must both be specified for mutual TLS authentication",
    ),
    (
        "sse-key-path",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n"
        "      sse-customer-key-path: /nonexistent/k\n",
        'cannot read sse-customer-key-path "/nonexistent/k": open /nonexistent/k: no such file or directory',
    ),
    (
        "part-size-empty",
        'dbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n      part-size: ""\n',
        "empty size string",
    ),
    (
        "part-size-too-big",
        "dbs:\n  - path: /a\n    replica:\n      url: s3://b/x\n      part-size: 18EB\n",
        "size 18000000000000000000 exceeds maximum allowed value (9223372036854775807)",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_messages(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    assert str(info.value) == message.format(base=tmp_path)
    assert isinstance(info.value, ReplicaError) and isinstance(info.value, PyLitestreamError)


@pytest.mark.parametrize(("name", "text", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_messages_match_litestream(tmp_path: Path, name: str, text: str, message: str) -> None:
    assert litestream_databases(tmp_path, text) == "Error: " + message.format(base=tmp_path)


def test_validation_error_carries_field_and_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse("snapshot:\n  retention: -90m\n")
    assert info.value.field == "snapshot.retention" and info.value.value == -90 * MIN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Litestream crashes on these; we give an error instead.
        ("logging:\n  type: weird\n", "logging.type: log type must be text, json or pretty (got weird)"),
        ("dbs:\n  -\n", "database config #1: must specify either 'path' or 'dir'"),
        ("dbs:\n  - path: /a\n    replicas:\n      -\n", "file replica path required"),
    ],
)
def test_errors_where_litestream_crashes(text: str, message: str) -> None:
    assert error_of(text) == message


def test_accepted_edge_values() -> None:
    cfg = parse(
        "l0-retention: 0s\nshutdown-sync-timeout: 0s\nvalidation:\n  interval: -1s\nheartbeat-interval: 1m\n"
    )
    assert cfg.l0_retention == dt.timedelta(0) and cfg.shutdown_sync_timeout == dt.timedelta(0)
    assert cfg.validation_interval == -S and cfg.heartbeat_interval == MIN
    nine = "levels:\n" + "  - interval: 1s\n" * 9
    assert len(parse(nine).levels) == 9  # Litestream 0.5.17 does not limit the count here either


def test_per_db_snapshot_promotion() -> None:
    cfg = parse(
        "dbs:\n  - path: /a\n    snapshot:\n      interval: 1h\n      retention: 2h\n"
        "    replica:\n      path: /r\n"
        "  - path: /b\n    snapshot:\n      interval: 1h\n    replica:\n      path: /r2\n"
    )
    assert (cfg.snapshot.interval, cfg.snapshot.retention) == (H, 2 * H)
    assert cfg.dbs[0].snapshot.interval == H and cfg.dbs[1].snapshot.retention is None
    cfg = parse(
        "snapshot:\n  interval: 5h\ndbs:\n  - path: /a\n    snapshot:\n      interval: 1h\n"
        "      retention: 3h\n    replica:\n      path: /r\n"
    )
    assert (cfg.snapshot.interval, cfg.snapshot.retention) == (5 * H, 3 * H)  # explicit global wins


def test_log_level_from_environment() -> None:
    assert parse("logging:\n  level: warn\n").logging.level == "warn"
    assert parse("logging:\n  level: warn\n", environ={"LOG_LEVEL": "DEBUG"}).logging.level == "DEBUG"
    assert parse("", environ={"LOG_LEVEL": ""}).logging.level == "INFO"


# --------------------------------------------------------------------------------------------
# Global replica settings


def test_global_settings_fill_only_unset_replica_settings() -> None:
    cfg = parse(
        """
        sync-interval: 5s
        max-sync-ltx-files: 10
        region: global-region
        endpoint: https://global.example
        force-path-style: true
        root-cas: [/g.pem]
        tls: true
        age: {}
        dbs:
          - path: /a
            replica:
              type: s3
              bucket: a
              sync-interval: 2s
              region: ""
              force-path-style: false
              root-cas: []
              tls: false
          - path: /b
            replica:
              type: s3
              bucket: b
              region: mine
              root-cas: [/mine.pem]
              max-sync-ltx-files: 0
        """
    )
    a, b = (db.replica for db in cfg.dbs)
    assert a is not None and b is not None
    # Set → kept; "" / [] count as unset; a pointer set to false stays false.
    assert (a.sync_interval, a.max_sync_ltx_files, a.region, a.endpoint) == (
        2 * S,
        10,
        "global-region",
        "https://global.example",
    )
    assert (a.force_path_style, a.root_cas, a.tls) == (False, ("/g.pem",), False)
    assert (b.sync_interval, b.max_sync_ltx_files, b.region, b.root_cas, b.tls) == (
        5 * S,
        0,
        "mine",
        ("/mine.pem",),
        True,
    )


def test_global_skip_verify_true_forces_true() -> None:
    text = (
        "skip-verify: {g}\ndbs:\n  - path: /a\n    replica:\n"
        "      type: s3\n      bucket: b\n      skip-verify: {r}\n"
    )
    for g, r, expected in [("true", "false", True), ("false", "true", True), ("false", "false", False)]:
        rc = parse(text.format(g=g, r=r)).dbs[0].replica
        assert rc is not None and rc.skip_verify is expected


def test_global_settings_reach_dir_templates_and_replicas_lists() -> None:
    cfg = parse(
        "sync-interval: 4s\ndbs:\n  - dir: /d\n    pattern: '*'\n    replica:\n      url: s3://b/p\n"
        "  - path: /x\n    replicas:\n      - url: s3://b/q\n"
    )
    assert all(db.replica is not None and db.replica.sync_interval == 4 * S for db in cfg.dbs)
    assert cfg.dbs[1].replicas == ()  # a single `replicas:` entry is moved into `replica`


# --------------------------------------------------------------------------------------------
# Paths


def test_db_path_expansion(tmp_path: Path) -> None:
    home = expand_path("~")
    cases = {
        "/abs/./x//y.db": "/abs/x/y.db",
        "rel/y.db": f"{tmp_path}/rel/y.db",
        "sqlite://rel.db": f"{tmp_path}/rel.db",
        "sqlite3:///abs/z.db": "/abs/z.db",
        "~/db.sqlite": f"{home}/db.sqlite",
        "~root/x.db": f"{tmp_path}/~root/x.db",  # only "~" and "~/" are expanded
    }
    for raw, expected in cases.items():
        db = parse(f"dbs:\n  - path: '{raw}'\n    replica:\n      path: /r\n", tmp_path).dbs[0]
        assert db.path == expected
        assert db.meta_path == default_meta_path(expected)
    assert default_meta_path("/dir/name.db") == "/dir/.name.db-litestream"
    assert default_meta_path("db") == ".db-litestream"


def test_db_path_expansion_matches_litestream(tmp_path: Path) -> None:
    out = litestream_databases(
        tmp_path,
        "dbs:\n  - path: sqlite3://rel.db\n    replica:\n      path: r\n"
        "  - path: ~/x.db\n    replica:\n      path: r\n",
    )
    paths = [re.split(r"\s{2,}", line)[0] for line in out.splitlines()[1:]]
    assert paths == [f"{tmp_path}/rel.db", f"{expand_path('~')}/x.db"]


def test_file_replica_paths_are_absolute(tmp_path: Path) -> None:
    cfg = parse(
        "dbs:\n  - path: /a\n    replica:\n      path: backups/a\n  - path: /b\n    replica:\n      url: file:///abs/b\n",
        tmp_path,
    )
    assert cfg.dbs[0].replica is not None and cfg.dbs[0].replica.path == f"{tmp_path}/backups/a"
    assert cfg.dbs[0].replica.to_url() == f"file://{tmp_path}/backups/a"
    assert cfg.dbs[1].replica is not None and cfg.dbs[1].replica.to_url() == "file:///abs/b"


# --------------------------------------------------------------------------------------------
# Replica URLs


def replica_of(text: str) -> ReplicaConfig:
    rc = parse(text).dbs[0].replica
    assert rc is not None
    return rc


def s3_replica(**keys: str) -> ReplicaConfig:
    body = "".join(f"      {k}: {v}\n" for k, v in keys.items())
    return replica_of("dbs:\n  - path: /a\n    replica:\n" + body)


def test_s3_url_query_and_explicit_keys() -> None:
    rc = s3_replica(
        url="'s3://bkt/p/q?endpoint=localhost:9000&region=xx&storage-class=GLACIER&partSize=6000000'"
    )
    u = rc.to_replica_url()
    assert u.scheme == "s3" and u.s3 is not None
    assert (u.s3.bucket, u.s3.path, u.s3.endpoint, u.s3.region) == (
        "bkt",
        "p/q",
        "http://localhost:9000",
        "xx",
    )
    assert (u.s3.force_path_style, u.s3.storage_class, u.s3.part_size) == (True, "GLACIER", 6_000_000)
    # Explicit YAML keys win over the URL.
    rc = s3_replica(
        url="'s3://bkt/p?region=xx&signPayload=false&concurrency=9'",
        region="yy",
        **{"sign-payload": "true", "concurrency": "4"},
    )
    u = rc.to_replica_url()
    assert u.s3 is not None and (u.s3.region, u.s3.sign_payload, u.s3.concurrency) == ("yy", True, 4)
    # The config-file builder only knows camelCase forcePathStyle/skipVerify, exactly "true".
    u = s3_replica(
        url="'s3://bkt/p?endpoint=https://e.example&force-path-style=false&skipVerify=1'"
    ).to_replica_url()
    assert u.s3 is not None and (u.s3.force_path_style, u.s3.skip_verify) == (True, False)
    u = s3_replica(
        url="'s3://bkt/p?endpoint=https://e.example&forcePathStyle=false&skipVerify=true'"
    ).to_replica_url()
    assert u.s3 is not None and (u.s3.force_path_style, u.s3.skip_verify) == (False, True)


def test_s3_provider_hosts_and_defaults() -> None:
    cases = {
        "s3://bkt.s3.us-west-2.amazonaws.com/p": ("bkt", "us-west-2", None, False),
        "s3://bkt.nyc3.digitaloceanspaces.com/p": (
            "bkt",
            "nyc3",
            "https://nyc3.digitaloceanspaces.com",
            True,
        ),
        "s3://bkt.s3.us-west-000.backblazeb2.com/p": (
            "bkt",
            "us-west-000",
            "https://s3.us-west-000.backblazeb2.com",
            True,
        ),
        "s3://bkt.s3.filebase.com/p": ("bkt", None, "https://s3.filebase.com", True),
        "s3://bkt.minio.local:9000/p": ("bkt", None, "http://minio.local:9000", True),
    }
    for url, (bucket, region, endpoint, path_style) in cases.items():
        u = s3_replica(url=url).to_replica_url()
        assert u.s3 is not None
        assert (u.s3.bucket, u.s3.region, u.s3.endpoint, u.s3.force_path_style) == (
            bucket,
            region,
            endpoint,
            path_style,
        ), url
    tigris = s3_replica(type="s3", bucket="b", endpoint="https://fly.storage.tigris.dev").to_replica_url()
    assert tigris.s3 is not None and (tigris.s3.require_content_md5, tigris.s3.sign_payload) == (False, True)
    r2 = s3_replica(type="s3", bucket="b", endpoint="https://acct.r2.cloudflarestorage.com").to_replica_url()
    assert r2.s3 is not None and r2.s3.concurrency == 2
    b2 = s3_replica(
        type="s3", bucket="b", endpoint="https://s3.eu.backblazeb2.com", **{"force-path-style": "false"}
    ).to_replica_url()
    assert b2.s3 is not None and b2.s3.force_path_style is False  # explicitly set: no provider default
    minio = s3_replica(type="s3", bucket="b", endpoint="minio.internal:9000").to_replica_url()
    assert minio.s3 is not None and minio.s3.force_path_style is True
    assert minio.s3.endpoint == "https://minio.internal:9000"
    explicit = s3_replica(
        type="s3", bucket="b", endpoint="minio.internal:9000", **{"force-path-style": "false"}
    )
    assert explicit.to_replica_url().s3 == attrs.evolve(minio.s3, force_path_style=False)


def test_s3_access_point_arn() -> None:
    u = s3_replica(url="s3://arn:aws:s3:us-east-2:123456789012:accesspoint/my-ap/pre/fix").to_replica_url()
    assert u.s3 is not None
    assert (u.s3.bucket, u.s3.path, u.s3.region) == (
        "arn:aws:s3:us-east-2:123456789012:accesspoint/my-ap",
        "pre/fix",
        "us-east-2",
    )


def test_s3_bucket_without_path_keeps_an_empty_prefix() -> None:
    rc = s3_replica(type="s3", bucket="b")
    u = rc.to_replica_url()
    assert u.s3 is not None and u.s3.path == "" and u.path == ""  # Litestream writes keys "/0000/…" here
    v = s3_replica(url="s3://b").to_replica_url()
    assert v.s3 is not None and v.s3.path == "."  # …but "./0000/…" for the URL form


def test_sse_customer_key_from_file(tmp_path: Path) -> None:
    key = tmp_path / "sse.key"
    key.write_text("  c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5MTI=\n")
    u = s3_replica(
        url="s3://b/p", **{"sse-customer-key-path": str(key), "sse-kms-key-id": "k"}
    ).to_replica_url()
    assert u.s3 is not None
    assert (u.s3.sse_customer_algorithm, u.s3.sse_customer_key, u.s3.sse_kms_key_id) == (
        "AES256",
        "c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5MTI=",
        "k",
    )
    assert "c2VjcmV0" not in repr(u.s3)


@pytest.mark.parametrize(
    ("keys", "url"),
    [
        ({"url": "gs://gb/some/path"}, "gs://gb/some/path"),
        ({"type": "gs", "bucket": "gb", "path": "p"}, "gs://gb/p"),
        ({"url": "abs://acct@cont/p"}, "abs://acct@cont/p"),
        ({"type": "abs", "bucket": "cont", "account-name": "me", "path": "x/y"}, "abs://me@cont/x/y"),
        # Litestream's SFTP path is the URL path as is: "/backups" is absolute on the server.
        ({"url": "sftp://u:p%40ss@host:2222/backups"}, "sftp://u:p%40ss@host:2222//backups"),
        ({"type": "sftp", "host": "h", "user": "u", "path": "/abs/dir"}, "sftp://u@h//abs/dir"),
        ({"url": "webdavs://u:pw@dav.example/base"}, "webdavs://u:pw@dav.example/base"),
        (
            {"type": "webdav", "webdav-url": "https://dav.example/root", "path": "db"},
            "webdavs://dav.example/root/db",
        ),
    ],
)
def test_other_backends_round_trip(keys: dict[str, str], url: str) -> None:
    rc = s3_replica(**keys)
    assert rc.to_url() == url
    assert parse_replica_url(rc.to_url()) == rc.to_replica_url()


def test_sftp_and_webdav_url_parts() -> None:
    u = s3_replica(url="sftp://u:p%40ss@host:2222/backups").to_replica_url()
    assert (u.host, u.port, u.username, u.password, u.path) == ("host", 2222, "u", "p@ss", "/backups")
    u = s3_replica(type="sftp", host="h", user="u", path="rel/dir").to_replica_url()
    assert u.path == "rel/dir"


def test_replica_url_function() -> None:
    rc = s3_replica(url="gs://b/p")
    assert replica_url(rc) == rc.to_url() == "gs://b/p"
    with pytest.raises(ConfigError, match=r"^must specify replica for database$"):
        replica_url(None)


@pytest.mark.parametrize("kind", ["nats", "oss"])
def test_unsupported_types_parse_but_have_no_url(kind: str) -> None:
    rc = s3_replica(type=kind, bucket="b")
    assert rc.replica_type == kind
    with pytest.raises(ConfigError, match="not supported by this implementation"):
        rc.to_url()


def test_replica_type_comes_from_the_url_scheme() -> None:
    assert ReplicaConfig(type="s3", url="file:///x").replica_type == "file"
    assert ReplicaConfig(url="S3://B/x").replica_type == "s3"
    assert ReplicaConfig(url="webdavs://h/x").replica_type == "webdav"
    assert ReplicaConfig(url="/no/scheme", type="gs").replica_type == "gs"
    assert ReplicaConfig().replica_type == "file"


@given(
    st.text(st.sampled_from("abcxyz-._"), min_size=3, max_size=12).filter(lambda b: b[0].isalpha()),
    st.lists(st.text(st.sampled_from("abc019-_"), min_size=1, max_size=6), max_size=4),
    st.sampled_from(["", "localhost:9000", "https://s3.example.com"]),
    st.sampled_from(["", "us-east-1"]),
    st.sampled_from([None, True, False]),
)
def test_s3_to_url_round_trips_through_parse_replica_url(
    bucket: str, parts: list[str], endpoint: str, region: str, force_path_style: bool | None
) -> None:
    rc = ReplicaConfig(
        type="s3",
        bucket=bucket,
        path="/".join(parts),
        endpoint=endpoint,
        region=region,
        force_path_style=force_path_style,
    )
    u = rc.to_replica_url()
    assert u.s3 is not None
    assert u.s3.force_path_style is (bool(endpoint) if force_path_style is None else force_path_style)
    assert u.s3.region == (region or None)
    reparsed = parse_replica_url(rc.to_url())
    if parts:
        assert reparsed == u
    else:  # a URL cannot say "empty prefix": it parses as "."
        assert reparsed.s3 is not None and attrs.evolve(reparsed.s3, path="") == u.s3


# --------------------------------------------------------------------------------------------
# Ad-hoc configuration


def test_config_from_args(tmp_path: Path) -> None:
    cfg = config_from_args("app.db", "s3://bkt/app", base_dir=str(tmp_path))
    (db,) = cfg.dbs
    assert db.path == f"{tmp_path}/app.db" and db.meta_path == f"{tmp_path}/.app.db-litestream"
    assert db.replica is not None and db.replica.sync_interval == S and db.replica.url == "s3://bkt/app"
    assert attrs.evolve(cfg, dbs=()) == Config()
    with pytest.raises(ConfigError, match=r"^must specify at least one replica URL for app\.db$"):
        config_from_args("app.db", [])
    with pytest.raises(
        ConfigError, match=r"^multiple replicas on a single database are no longer supported$"
    ):
        config_from_args("app.db", ["s3://a/b", "s3://c/d"])
    with pytest.raises(ConfigError, match=r"^replica url scheme required: /plain/path$"):
        config_from_args("app.db", "/plain/path")


# --------------------------------------------------------------------------------------------
# load_config


def test_load_config_path_resolution(tmp_path: Path) -> None:
    f = tmp_path / "ls.yml"
    f.write_text("addr: from-file\n")
    cfg = load_config(str(f), environ={})
    assert cfg.addr == "from-file" and cfg.config_path == str(f)
    assert load_config(environ={"LITESTREAM_CONFIG": str(f)}).addr == "from-file"
    other = tmp_path / "other.yml"
    with pytest.raises(ConfigError) as info:
        load_config(str(other), environ={"LITESTREAM_CONFIG": str(f)})
    assert str(info.value) == f"config file not found: {other}"
    if not Path("/etc/litestream.yml").exists():
        with pytest.raises(ConfigError, match=r"^config file not found: /etc/litestream\.yml$"):
            load_config(environ={"LITESTREAM_CONFIG": ""})


def test_load_config_relative_path_uses_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ls.yml").write_text("dbs:\n  - path: data.db\n    replica:\n      path: bk\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("ls.yml", environ={})
    assert cfg.config_path == f"{tmp_path}/ls.yml"
    assert cfg.dbs[0].path == f"{tmp_path}/data.db"


def test_config_file_not_found_matches_litestream(tmp_path: Path) -> None:
    exe = shutil.which("litestream")
    if exe is None:
        pytest.skip("the litestream binary is not installed")
    r = subprocess.run(
        [exe, "databases", "-config", "nope.yml"], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.yml"), environ={})
    assert r.stderr.strip() == f"Error: {info.value}"


# --------------------------------------------------------------------------------------------
# dir: entries


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "d"
    for rel in ("a.db", "b.sqlite", "sub/c.db", "sub/deeper/d.db", "z.db"):
        make_db(root / rel)
    (root / "notdb.db").write_text("SQLite format 2 - not really")
    (root / "empty.db").write_bytes(b"")
    (root / "a.db-wal").write_bytes(b"")
    (root / "emptydir").mkdir()
    return root


def test_is_sqlite_database(tree: Path) -> None:
    assert is_sqlite_database(str(tree / "a.db"))
    assert not is_sqlite_database(str(tree / "notdb.db"))
    assert not is_sqlite_database(str(tree / "empty.db"))
    assert not is_sqlite_database(str(tree / "missing.db"))
    assert not is_sqlite_database(str(tree / "sub"))


def test_find_sqlite_databases(tree: Path) -> None:
    d = str(tree)
    assert find_sqlite_databases(d, "*.db", False) == [f"{d}/a.db", f"{d}/z.db"]
    assert find_sqlite_databases(d, "*.db", True) == [
        f"{d}/a.db",
        f"{d}/sub/c.db",
        f"{d}/sub/deeper/d.db",
        f"{d}/z.db",
    ]
    assert find_sqlite_databases(d, "*", False) == [f"{d}/a.db", f"{d}/b.sqlite", f"{d}/z.db"]
    assert find_sqlite_databases(d, "[a-c]*", True) == [f"{d}/a.db", f"{d}/b.sqlite", f"{d}/sub/c.db"]
    assert find_sqlite_databases(d, "[^a]?db", True) == [f"{d}/sub/c.db", f"{d}/sub/deeper/d.db", f"{d}/z.db"]
    assert find_sqlite_databases(d, "?.db", True) == [
        f"{d}/a.db",
        f"{d}/sub/c.db",
        f"{d}/sub/deeper/d.db",
        f"{d}/z.db",
    ]
    assert find_sqlite_databases(str(tree / "a.db"), "*.db", False) == [f"{d}/a.db"]  # a file as the root


def test_find_does_not_follow_symlinked_directories(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tree, target_is_directory=True)
    assert find_sqlite_databases(str(link), "*.db", True) == []  # Go's Walk lstat()s the root
    (tree / "sub" / "l.db").symlink_to(tree / "a.db")
    assert f"{tree}/sub/l.db" in find_sqlite_databases(str(tree), "*.db", True)


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [
        ("*.db", "x.db", True),
        ("*.db", ".db", True),
        ("*.db", "x.db-wal", False),
        ("a?c", "abc", True),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "bx", False),
        ("[^a-c]x", "dx", True),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("[\\]]", "]", True),
        ("[z-a]", "m", False),
    ],
)
def test_go_match(pattern: str, name: str, matched: bool) -> None:
    assert go_match(pattern, name) is matched


@pytest.mark.parametrize("pattern", ["[", "[a", "[]", "[a-", "[-a]", "\\", "x[^", "[a-]"])
def test_go_match_bad_patterns(pattern: str) -> None:
    with pytest.raises(ConfigError, match=r"^syntax error in pattern$"):
        go_match(pattern, "abc")


@given(st.text(st.sampled_from("ab*?."), max_size=6), st.text(st.sampled_from("ab."), max_size=6))
def test_go_match_agrees_with_fnmatch_on_simple_patterns(pattern: str, name: str) -> None:
    assert go_match(pattern, name) == fnmatch.fnmatchcase(name, pattern)


def dir_config(tree: Path, extra: str, replica: str = "url: s3://bkt/base") -> Config:
    return parse(
        f"dbs:\n  - dir: {tree}\n    pattern: '*.db'\n    recursive: true\n"
        f"{extra}    replica:\n      {replica}\n",
        tree.parent,
    )


def test_dir_entries_replica_and_default_meta_paths(tree: Path) -> None:
    dbs = expand_dir_entries(dir_config(tree, ""))
    d = str(tree)
    assert [db.path for db in dbs] == [f"{d}/a.db", f"{d}/sub/c.db", f"{d}/sub/deeper/d.db", f"{d}/z.db"]
    assert [db.meta_path for db in dbs] == [default_meta_path(db.path) for db in dbs]
    urls = [db.replica.url for db in dbs if db.replica is not None]
    assert urls == [
        "s3://bkt/base/a.db",
        "s3://bkt/base/sub/c.db",
        "s3://bkt/base/sub/deeper/d.db",
        "s3://bkt/base/z.db",
    ]
    assert all(not db.dir and not db.pattern and not db.recursive and not db.watch for db in dbs)
    u = dbs[1].replica.to_replica_url() if dbs[1].replica else None
    assert u is not None and u.s3 is not None and u.s3.path == "base/sub/c.db"


def test_dir_entries_meta_dir_and_meta_path(tree: Path, tmp_path: Path) -> None:
    d = str(tree)
    with_dir = expand_dir_entries(dir_config(tree, f"    meta-dir: {tmp_path}/m\n"))
    assert [db.meta_path for db in with_dir] == [
        f"{tmp_path}/m/a.db-litestream",
        f"{tmp_path}/m/sub/c.db-litestream",
        f"{tmp_path}/m/sub/deeper/d.db-litestream",
        f"{tmp_path}/m/z.db-litestream",
    ]
    with_path = expand_dir_entries(dir_config(tree, "    meta-path: meta\n"))
    assert [db.meta_path for db in with_path] == [
        f"{tmp_path}/meta/.a.db-litestream",
        f"{tmp_path}/meta/sub/.c.db-litestream",
        f"{tmp_path}/meta/sub/deeper/.d.db-litestream",
        f"{tmp_path}/meta/.z.db-litestream",
    ]
    assert all(db.meta_dir is None for db in with_dir + with_path) and d


@pytest.mark.parametrize(
    ("replica", "expected"),
    [
        ("path: backups", ["{tmp}/backups/a.db", "{tmp}/backups/sub/c.db"]),
        ("url: file:///abs/bk", ["file:///abs/bk/a.db", "file:///abs/bk/sub/c.db"]),
        ("url: s3://bkt", ["s3://bkt/a.db", "s3://bkt/sub/c.db"]),
        (
            "url: 's3://bkt/my%20dir?region=x'",
            ["s3://bkt/my%20dir/a.db?region=x", "s3://bkt/my%20dir/sub/c.db?region=x"],
        ),
        ("type: s3\n      bucket: b", ["a.db", "sub/c.db"]),
        ("type: gs\n      bucket: b\n      path: /pre/", ["/pre/a.db", "/pre/sub/c.db"]),
    ],
)
def test_dir_entries_replica_locations(tree: Path, tmp_path: Path, replica: str, expected: list[str]) -> None:
    dbs = expand_dir_entries(dir_config(tree, "", replica))[:2]
    got = [(db.replica.url or db.replica.path) if db.replica else None for db in dbs]
    assert got == [e.format(tmp=tmp_path) for e in expected]


def test_dir_entry_errors(tree: Path, tmp_path: Path) -> None:
    def fails(text: str) -> str:
        with pytest.raises(ConfigError) as info:
            expand_dir_entries(parse(text, tmp_path))
        return str(info.value)

    assert fails(f"dbs:\n  - dir: {tree}\n    pattern: '*.xx'\n    replica:\n      path: /r\n") == (
        f"no SQLite databases found in directory {tree} with pattern *.xx"
    )
    empty = parse(
        f"dbs:\n  - dir: {tree}/emptydir\n    pattern: '*'\n    watch: true\n    replica:\n      path: /r\n",
        tmp_path,
    )
    assert expand_dir_entries(empty) == []
    assert fails(f"dbs:\n  - dir: {tree}\n    pattern: '[a'\n    replica:\n      path: /r\n") == (
        f"failed to scan directory {tree}: syntax error in pattern"
    )
    assert fails("dbs:\n  - dir: nonexist\n    pattern: '*'\n    replica:\n      path: /r\n") == (
        f"failed to scan directory {tmp_path}/nonexist: lstat {tmp_path}/nonexist: no such file or directory"
    )
    assert fails(f"dbs:\n  - dir: {tree}\n    pattern: 'a.db'\n    replica:\n      type: s3\n") == (
        f"failed to create DB for {tree}/a.db: bucket required for s3 replica"
    )
    assert fails(f"dbs:\n  - dir: {tree}\n    pattern: 'a.db'\n") == (
        f"failed to create DB for {tree}/a.db: must specify replica for database"
    )


def test_dir_entry_file_replica_without_path_uses_the_relative_path(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (db,) = expand_dir_entries(
        parse(f"dbs:\n  - dir: {tree}\n    pattern: a.db\n    replica:\n      type: file\n", tmp_path)
    )
    assert db.replica is not None and db.replica.to_url() == f"file://{tmp_path}/a.db"


def test_meta_path_collision(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = dir_config(tree, "")
    a = str(tree / "a.db")
    monkeypatch.setattr(config_discover, "find_sqlite_databases", lambda *_: [a, a])
    with pytest.raises(ConfigError) as info:
        expand_dir_entries(cfg)
    assert str(info.value) == (
        f"meta-path collision: databases {a} and {a} would share meta-path "
        f"{tree}/.a.db-litestream, causing replication state corruption"
    )


def test_path_entries_pass_through(tree: Path) -> None:
    cfg = parse(
        f"dbs:\n  - path: /x.db\n    replica:\n      path: /r\n"
        f"  - dir: {tree}\n    pattern: z.db\n    replica:\n      path: /r\n"
    )
    dbs = expand_dir_entries(cfg)
    assert dbs[0] is cfg.dbs[0] and [db.path for db in dbs] == ["/x.db", f"{tree}/z.db"]
    assert db_from_dir_entry(cfg.dbs[1], f"{tree}/z.db") == dbs[1]
    assert isinstance(dbs[1], DBConfig) and dbs[1].replica is not None and dbs[1].replica.path == "/r/z.db"


def test_dir_derivation_matches_litestream(tree: Path, tmp_path: Path) -> None:
    """``replicate -once`` creates the meta and replica directories our derivation predicts."""
    exe = shutil.which("litestream")
    if exe is None:
        pytest.skip("the litestream binary is not installed")
    text = (
        f"dbs:\n  - dir: {tree}\n    pattern: '*.db'\n    recursive: true\n    meta-path: {tmp_path}/meta\n"
        f"    replica:\n      url: file://{tmp_path}/rep\n"
    )
    (tmp_path / "ls.yml").write_text(text)
    r = subprocess.run(
        [exe, "replicate", "-once", "-config", str(tmp_path / "ls.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    for db in expand_dir_entries(parse(text, tmp_path)):
        assert db.meta_path is not None and Path(db.meta_path, "ltx", "0").is_dir()
        assert db.replica is not None
        assert Path(parse_replica_url(db.replica.to_url()).path, "ltx", "0").is_dir()


@pytest.mark.parametrize(
    "text,key,line",
    [
        ("dbs:\n  - path: /a\n    replica:\n      url: file:///r\n      bogus: 1\n", "bogus", 5),
        ("snapshot:\n  interval: 1h\n  retension: 2h\n", "retension", 3),
        ("dbs: []\nretention:\n  enabled: false\nl0-retension: 1m\n", "l0-retension", 4),
    ],
)
def test_unknown_keys_are_errors_naming_key_and_line(text: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError, match=f"unknown configuration key '{key}' on line {line}"):
        parse(text)
