"""Every default has one home (:mod:`replica.defaults`), and ``replicate DB URL`` binds like a config file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from replica import defaults as d
from replica import uploader
from replica.cli.binding import config_from_command_line, discoverer, replication_options
from replica.compaction import CompactionOptions
from replica.config import Config, DBConfig, ReplicaSettings, parse_config
from replica.daemon import ReplicationOptions
from replica.defaults import default_meta_path
from replica.monitor import DBOptions
from replica.retention import RetentionSettings


def test_classes_take_their_defaults_from_the_one_home() -> None:
    s = d.seconds
    assert DBOptions() == DBOptions(
        meta_path=None,
        monitor_interval=s(d.DEFAULT_MONITOR_INTERVAL),
        checkpoint_interval=s(d.DEFAULT_CHECKPOINT_INTERVAL),
        busy_timeout=s(d.DEFAULT_BUSY_TIMEOUT),
        min_checkpoint_page_count=d.DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
        truncate_page_n=d.DEFAULT_TRUNCATE_PAGE_N,
    )
    opts = ReplicationOptions()
    assert (opts.sync_interval, opts.max_batch, opts.shutdown_timeout, opts.shutdown_interval) == (
        s(d.DEFAULT_SYNC_INTERVAL),
        d.DEFAULT_MAX_SYNC_LTX_FILES,
        s(d.DEFAULT_SHUTDOWN_SYNC_TIMEOUT),
        s(d.DEFAULT_SHUTDOWN_SYNC_INTERVAL),
    )
    assert (
        opts.compaction
        == CompactionOptions()
        == CompactionOptions(
            levels=d.DEFAULT_LEVEL_INTERVALS,
            snapshot_interval=d.DEFAULT_SNAPSHOT_INTERVAL,
            snapshot_retention=d.DEFAULT_SNAPSHOT_RETENTION,
            l0_retention=d.DEFAULT_L0_RETENTION,
            l0_retention_check_interval=d.DEFAULT_L0_RETENTION_CHECK_INTERVAL,
        )
    )
    assert RetentionSettings() == RetentionSettings(d.DEFAULT_SNAPSHOT_RETENTION, d.DEFAULT_L0_RETENTION)
    cfg, db, rs = Config(), DBConfig(), ReplicaSettings()
    assert tuple(lv.interval for lv in cfg.levels) == d.DEFAULT_LEVEL_INTERVALS
    assert (cfg.snapshot_interval, cfg.snapshot_retention) == (
        d.DEFAULT_SNAPSHOT_INTERVAL,
        d.DEFAULT_SNAPSHOT_RETENTION,
    )
    assert (db.monitor_interval, db.checkpoint_interval, db.busy_timeout) == (
        d.DEFAULT_MONITOR_INTERVAL,
        d.DEFAULT_CHECKPOINT_INTERVAL,
        d.DEFAULT_BUSY_TIMEOUT,
    )
    assert (rs.sync_interval, rs.max_sync_ltx_files) == (
        d.DEFAULT_SYNC_INTERVAL,
        d.DEFAULT_MAX_SYNC_LTX_FILES,
    )
    assert uploader.MAX_CONCURRENT_UPLOADS == d.DEFAULT_UPLOAD_CONCURRENCY
    assert d.seconds(dt.timedelta(milliseconds=1500)) == 1.5


def test_command_line_binds_like_a_one_database_config_file(tmp_path: Path) -> None:
    db, url = str(tmp_path / "app.db"), f"file://{tmp_path / 'replica'}"
    from_args, _ = config_from_command_line(db, url, environ={})
    from_file = parse_config(f"dbs:\n  - path: {db}\n    replica:\n      url: {url}\n", environ={})
    (a,), (b,) = from_args.dbs, from_file.dbs
    assert replication_options(from_args, a) == replication_options(from_file, b)
    assert replication_options(from_args, a) == ReplicationOptions(
        db=DBOptions(meta_path=default_meta_path(db))
    )
    assert from_args.logging == from_file.logging
    assert list(discoverer(from_args)()) == list(discoverer(from_file)()) == [db]


def test_command_line_defaults_to_a_replica_beside_the_database(tmp_path: Path) -> None:
    db = str(tmp_path / "app.db")
    cfg, open_client = config_from_command_line(db, None, environ={"LOG_LEVEL": "debug"})
    (dbc,) = cfg.dbs
    assert dbc.replica is not None and dbc.replica.url == f"file://{db}-replica"
    assert open_client(dbc).url.path == f"{db}-replica"
    assert cfg.logging.level == "debug"
