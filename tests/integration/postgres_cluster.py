"""A private PostgreSQL cluster the fault suite may crash: ``initdb`` into a temporary directory,
started on a free port, holding a copy of the pytest test database.

``crash()`` is ``pg_ctl stop -m immediate``: the postmaster SIGQUITs every backend and exits
without a checkpoint, so every client's connection drops, new ones are refused, and the next
``start()`` replays the WAL (crash recovery, which answers "the database system is starting up"
meanwhile) — a real PostgreSQL crash-restart, which the shared server other test runs use could
not be put through.

Binaries: those of the shared server's major version (its ``pg_dump`` must read that server):
``pg_config --bindir`` when it is that version, else Debian's ``/usr/lib/postgresql/<major>/bin``
or RHEL's ``/usr/pgsql-<major>/bin``. PostgreSQL refuses to run as root: run as root, the cluster
runs as the ``postgres`` system user (``MEDAI_ITEST_PG_OS_USER`` names another), which owns the
temporary directory. Nothing skips: a missing binary or user fails with what to install or set.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore", "psql")


class ClusterUnavailable(RuntimeError):
    """The machine cannot run a private cluster; the message says what is missing."""


def binaries_for(major: int) -> Path:
    """The directory holding PostgreSQL ``major``'s server and client programs."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--version", "--bindir"], capture_output=True, text=True, check=False
        )
        lines = result.stdout.split("\n")
        if result.returncode == 0 and lines[0].split()[1].split(".")[0] == str(major):
            candidates.append(Path(lines[1].strip()))
    candidates += [Path(f"/usr/lib/postgresql/{major}/bin"), Path(f"/usr/pgsql-{major}/bin")]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in TOOLS):
            return directory
    tried = ", ".join(str(c) for c in candidates)
    raise ClusterUnavailable(
        f"the fault suite runs a private PostgreSQL {major} cluster (the shared test server's "
        f"major version) and needs {', '.join(TOOLS)}; none of {tried} has them all. Install "
        f"the server package (Debian: postgresql-{major})."
    )


def os_user_for_cluster() -> pwd.struct_passwd | None:
    """The system user the cluster runs as: None (this process's user) unless we are root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("MEDAI_ITEST_PG_OS_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ClusterUnavailable(
            f"running as root, the private PostgreSQL cluster must run as another user (initdb "
            f"and postgres refuse root) and the system user {name!r} does not exist: create it "
            f"(Debian's postgresql package does) or set MEDAI_ITEST_PG_OS_USER to an existing one"
        ) from None


@dataclass
class PostgresCluster:
    bindir: Path
    directory: Path  # owned by the cluster's user; holds data/ and the server log
    port: int
    superuser: str  # the database role the tests connect as
    os_user: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    @classmethod
    def create(cls, *, major: int, port: int, superuser: str) -> PostgresCluster:
        bindir = binaries_for(major)
        os_user = os_user_for_cluster()
        directory = Path(tempfile.mkdtemp(prefix="medai-faults-pg-"))
        if os_user is not None:
            os.chown(directory, os_user.pw_uid, os_user.pw_gid)
        cluster = cls(bindir, directory, port, superuser, os_user)
        cluster._as_owner(
            "initdb",
            "--pgdata",
            str(cluster.data),
            "--username",
            superuser,
            "--auth",
            "trust",  # 127.0.0.1 only, a throw-away cluster: like the shared test server
            "--encoding",
            "UTF8",
            "--no-sync",  # a scratch cluster: nothing to keep if the machine itself crashes
        )
        return cluster

    def _as_owner(self, tool: str, *args: str, timeout: float = 120) -> str:
        user = self.os_user.pw_name if self.os_user is not None else None
        result = subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,  # readable by the cluster's user (root's cwd may not be)
            user=user,
        )
        if result.returncode != 0:
            raise ClusterUnavailable(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}"
                f"{result.stderr}\n{self.server_log()[-3000:]}"
            )
        return result.stdout

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """Start and wait until it accepts connections (after crash recovery, if any)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories='{self.directory}' -c max_connections=60"
        )
        self._as_owner(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w"
        )

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every backend killed, no checkpoint (a crash)."""
        self._as_owner("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def recovered_from_crash(self) -> bool:
        """The server log shows WAL replay after an unclean stop (crash recovery ran)."""
        return "automatic recovery in progress" in self.server_log()

    def copy_database(
        self, *, name: str, host: str, port: int, user: str, password: str = ""
    ) -> None:
        """Create ``name`` here with the schema and rows of ``name`` on the given server
        (``password``: the test server's, when its DATABASE_URL carries one)."""
        target = ["--host", "127.0.0.1", "--port", str(self.port), "--username", self.superuser]
        self._client("psql", *target, "--dbname", "postgres", "-c", f'CREATE DATABASE "{name}"')
        source = ["--host", host, "--port", str(port), "--username", user]
        dump = self.directory.parent / f"{self.directory.name}.dump"
        try:
            self._client(
                "pg_dump",
                *source,
                "--format",
                "custom",
                "--file",
                str(dump),
                name,
                password=password,
            )
            # Owners and grants: the app roles live in the shared cluster only; here, as on the
            # test server, everything connects as the superuser.
            self._client(
                "pg_restore", *target, "--dbname", name, "--no-owner", "--no-acl", str(dump)
            )
        finally:
            dump.unlink(missing_ok=True)

    def _client(self, tool: str, *args: str, password: str = "") -> None:
        # The password goes by environment, never on the command line (ps shows arguments).
        env = {**os.environ, "PGPASSWORD": password} if password else None
        result = subprocess.run(
            [str(self.bindir / tool), "--no-password", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterUnavailable(f"{tool} failed ({result.returncode}): {result.stderr}")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.crash()
            except (ClusterUnavailable, subprocess.TimeoutExpired):
                time.sleep(1)
        shutil.rmtree(self.directory, ignore_errors=True)
