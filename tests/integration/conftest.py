"""Real processes and servers: the moto S3 server, replica targets of both kinds, no leftover processes."""

from tests.support.processes import _no_leftover_processes, s3_server, target

__all__ = ["_no_leftover_processes", "s3_server", "target"]
