"""A throwaway PostgreSQL cluster on a loopback port, from the server's own binaries.

Used by ``.ci/run`` (before the virtualenv exists, so stdlib only), by the ``pg_dsn`` session
fixture when no server is configured, and by ``bench/bench_django.py``::

    python3 tests/pgcluster.py start DIR   # prints the DSN; DIR must not exist or be empty
    python3 tests/pgcluster.py stop DIR    # stops the server and removes DIR

The binaries are Debian's (``apt-get install postgresql``: ``/usr/lib/postgresql/*/bin``)
or any ``initdb``/``pg_ctl`` on ``PATH``. As root (CI), the cluster runs as the ``postgres``
user through ``runuser``, since the server refuses to run as root. The cluster trusts local
connections and runs without fsync: it exists for tests only.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile

#: where the tests and the Django example read the server to use from
ENV_DSN = "DEVFORMANCE_PG_DSN"
SUPERUSER = "postgres"
DATA = "data"
LOG = "server.log"
#: server settings for a test cluster: nothing waits for the disk
SETTINGS = (
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)
INSTALL_HINT = (
    "PostgreSQL is needed: install Debian's server (apt-get install -y postgresql), which "
    f"the tests start as a throwaway cluster, or set {ENV_DSN} to an existing server, e.g. "
    f"{ENV_DSN}=postgresql://USER:PASSWORD@127.0.0.1:5432/postgres (a role that may create "
    "databases). .ci/run does the former."
)


class ClusterError(RuntimeError):
    """The cluster could not be created, started or stopped."""


def find_bindir() -> str | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest, else PATH's, else None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: [int(p) if p.isdigit() else 0 for p in path.split("/")[4].split(".")],
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ClusterError("running as root needs runuser (util-linux) to start PostgreSQL")
    return [runuser, "-u", SUPERUSER, "--", *command]


def _run(command: list[str], what: str) -> None:
    proc = subprocess.run(
        _as_server_user(command), capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise ClusterError(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")


def start(folder: str, bindir: str | None = None) -> str:
    """Create and start a cluster under ``folder``; return its DSN (superuser, no password)."""
    bindir = bindir or find_bindir()
    if bindir is None:
        raise ClusterError(INSTALL_HINT)
    os.makedirs(folder, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, SUPERUSER, SUPERUSER)
    os.chmod(folder, 0o700)
    data = os.path.join(folder, DATA)
    _run(
        [
            os.path.join(bindir, "initdb"),
            "-D",
            data,
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        "initdb",
    )
    port = free_port()
    options = " ".join(
        [f"-p {port}", "-c listen_addresses=127.0.0.1", f"-k {folder}"]
        + [f"-c {setting}" for setting in SETTINGS]
    )
    _run(
        [
            os.path.join(bindir, "pg_ctl"),
            "-D",
            data,
            "-l",
            os.path.join(folder, LOG),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        "pg_ctl start",
    )
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"


def stop(folder: str, bindir: str | None = None) -> None:
    """Stop the cluster under ``folder`` (if it runs) and remove the folder."""
    bindir = bindir or find_bindir()
    data = os.path.join(folder, DATA)
    try:
        if bindir is not None and os.path.exists(os.path.join(data, "postmaster.pid")):
            _run(
                [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                "pg_ctl stop",
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def temporary_folder() -> str:
    """A new folder for a cluster, that the server user can reach (not under a 0700 parent)."""
    return tempfile.mkdtemp(prefix="devformance-pg-", dir="/tmp" if os.path.isdir("/tmp") else None)


def main(argv: list[str]) -> int:
    """``start DIR`` (prints the DSN) or ``stop DIR``."""
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: pgcluster.py start|stop DIR", file=sys.stderr)
        return 2
    action, folder = argv
    try:
        if action == "start":
            print(start(folder))
        else:
            stop(folder)
    except ClusterError as exc:
        print(f"pgcluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
