"""The supervisor's start and stop: a stop that comes at once still replicates every database.

``Supervisor.start`` returns before the databases' starts (which claim their replicas, a
store request) have ended; a stop right after it must still wait for them and make each
database's last sync and upload.
"""

from __future__ import annotations

import time
from pathlib import Path

from replica.daemon import Replication, ReplicationOptions
from replica.restore import restore
from replica.storage import open_replica_client
from replica.supervisor import Supervisor
from tests.support.workload import ids, make_db, start_writer


def test_a_stop_right_after_start_still_ships_every_database(tmp_path: Path) -> None:
    dbs = [tmp_path / f"db{i}.db" for i in range(4)]
    for i, db in enumerate(dbs):
        make_db(db)
        assert start_writer(db, 1, 50 + i, every=0).wait(60) == 0

    def discover() -> dict[str, object]:
        time.sleep(0.3)  # a slow listing: the stop below comes before it would have ended
        return {
            str(db): (
                lambda db=db: Replication(
                    str(db),
                    open_replica_client(f"file://{tmp_path / 'r' / db.name}"),
                    ReplicationOptions(levels=()),
                )
            )
            for db in dbs
        }

    sup = Supervisor(discover, watch=False)  # type: ignore[arg-type]
    sup.start()
    assert sup.stop(), sup.incomplete
    for i, db in enumerate(dbs):
        out = tmp_path / f"out{i}.db"
        restore(open_replica_client(f"file://{tmp_path / 'r' / db.name}"), str(out))
        assert ids(out) == list(range(1, 51 + i))
