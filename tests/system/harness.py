"""Shared helpers of the system tests (tests/system/*_test.py) -- Python 3.11 stdlib only.

Not a test: run.sh runs *_test.py only. A test imports it from its own directory, so that
`python3 tests/system/x_test.py` works from anywhere:

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness  # noqa: E402

What is here:
  - the server binary: resolve_bin() / find_binary() (DS_BIN), private_copy();
  - free_port(), wait_for();
  - HTTP: request() (one request on a fresh connection), Connection (one keep-alive
    connection), get_status();
  - API keys: create_key() (`durable-sessions keys create`, the key is the last stdout line);
  - Server: `durable-sessions serve` on a free loopback port with a given data dir, started and
    waited for (GET /readyz == 200), stopped with SIGTERM (SIGKILL if it hangs) or killed;
  - the end of a run: keep_or_remove() (the temp dir), summary() (`N passed, M failed`),
    setup_failed().

Environment read here:
  DS_BIN            server binary (default build/durable-sessions; a relative path is taken from
                    the current directory if it exists there, else from the repo root)
  DS_READY_TIMEOUT  seconds to wait for /readyz (default 30)
  DS_KEEP_DATA      1 = keep the temp dir (always kept on failure)
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = float(os.environ.get("DS_READY_TIMEOUT", "30"))

Response = tuple[int, dict, bytes]  # (status, headers with lower-case names, body)


def make_log(tag: str) -> Callable[[str], None]:
    """A log function printing `[tag] msg` (flushed)."""

    def log(msg: str) -> None:
        print(f"[{tag}] {msg}", flush=True)

    return log


# --------------------------------------------------------------------------
# Binary, ports, polling
# --------------------------------------------------------------------------


def resolve_bin(env: str = "DS_BIN", default: str = "build/durable-sessions") -> Path:
    """$env (default `default`); a relative path is taken from the current directory if it
    exists there, else from the repo root."""
    p = Path(os.environ.get(env, default))
    if not p.is_absolute():
        p = (Path.cwd() / p) if (Path.cwd() / p).exists() else (REPO_ROOT / p)
    return p


def find_binary(log: Callable[[str], None]) -> Path | None:
    """The server binary (DS_BIN), or None (after logging why) if it is not an executable file."""
    binary = resolve_bin()
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    log(f"ERROR: server binary not found or not executable: {binary} (build it or set DS_BIN)")
    return None


def private_copy(binary: Path, directory: Path) -> Path:
    """Copies the binary into `directory` so a concurrent rebuild of build/ cannot break a run."""
    dest = directory / binary.name
    shutil.copy2(binary, dest)
    return dest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float, what: str, interval: float = 0.1):
    """Polls pred() until it returns something truthy (returned); exceptions count as not yet.
    Raises AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - polling
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


def request(port: int, method: str, path: str, body: bytes | str | None = None,
            headers: dict | None = None, timeout: float = 10.0) -> Response:
    """One request on a fresh connection to HOST:port."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def get_status(port: int, path: str, timeout: float = 2.0) -> int:
    """Status of GET path, 0 if the request failed (nothing listening, reset, timeout)."""
    try:
        return request(port, "GET", path, timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return 0


class Connection:
    """One keep-alive connection, opened on first use and again after an error or a
    `Connection: close` answer. `port` may be changed (e.g. after a server restart): it is used
    the next time a connection is opened."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None) -> Response:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
        except BaseException:
            self.close()
            raise
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if (hdrs.get("connection") or "").lower() == "close":
            self.close()
        return r.status, hdrs, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --------------------------------------------------------------------------
# CLI and server process
# --------------------------------------------------------------------------


def cli(binary: Path, *args: str) -> subprocess.CompletedProcess:
    """Runs `binary args...` (30 s limit), capturing text output."""
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30)


def create_key(binary: Path, data_dir: Path, tenant: str) -> str:
    """`keys create --data-dir DIR --tenant T`; returns the key (the last stdout line)."""
    r = cli(binary, "keys", "create", "--data-dir", str(data_dir), "--tenant", tenant)
    if r.returncode != 0:
        raise RuntimeError(f"keys create --tenant {tenant} exited {r.returncode}: {r.stderr.strip()[:300]}")
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError("keys create printed nothing")
    return lines[-1]


class Server:
    """`binary serve --listen HOST:PORT --data-dir DIR *args` on a free port, output appended to
    log_path (each start is preceded by a `===== start N NAME on port P =====` line).

    start() waits for GET /readyz == 200 (raises RuntimeError on failure; retried on another
    port, at most 3 tries, only when the picked port turned out to be taken). stop() sends
    SIGTERM and SIGKILL after `timeout` seconds; kill() sends SIGKILL."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, args: list[str] | tuple = (),
                 *, name: str = "server", env: dict | None = None,
                 log: Callable[[str], None] | None = None, announce: bool = False,
                 ready_timeout: float | None = None, listen_host: str = HOST):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.args = list(args)
        self.name = name
        self.env = env                  # the server's whole environment (None: inherit ours)
        self.log = log or make_log(name)
        self.announce = announce        # log "ready on port ..." after each start
        self.ready_timeout = READY_TIMEOUT if ready_timeout is None else ready_timeout
        self.listen_host = listen_host  # what --listen names; requests still go to HOST
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0

    def start(self) -> None:
        for attempt in range(3):
            self.port = free_port()
            self.starts += 1
            with open(self.log_path, "ab") as lf:
                lf.write(f"\n===== start {self.starts} {self.name} on port {self.port} =====\n".encode())
                lf.flush()
                self.proc = subprocess.Popen(
                    [str(self.binary), "serve", "--listen", f"{self.listen_host}:{self.port}",
                     "--data-dir", str(self.data_dir), *self.args],
                    stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, env=self.env)
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.status("/readyz") == 200:
                    if self.announce:
                        self.log(f"{self.name} ready on port {self.port} (pid {self.proc.pid})")
                    return
                time.sleep(0.02)
            rc = self.proc.poll()
            if rc is None:
                self.kill()
                raise RuntimeError(f"{self.name}: no 200 on /readyz within {self.ready_timeout:.0f}s")
            if "in use" not in self.log_tail(20).lower() or attempt == 2:
                raise RuntimeError(f"{self.name}: exited with status {rc} before becoming ready:\n"
                                   + self.log_tail(10))
            self.log(f"{self.name}: port {self.port} taken, retrying")

    def status(self, path: str, timeout: float = 2.0) -> int:
        """Status of GET path, 0 if the request failed."""
        return get_status(self.port, path, timeout)

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None, timeout: float = 10.0) -> Response:
        return request(self.port, method, path, body, headers, timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM; SIGKILL if it does not exit within `timeout` s. Returns the exit status
        (None if never started)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.log(f"WARNING: {self.name} did not exit within {timeout:.0f}s of SIGTERM; killing")
                self.kill()
        return self.proc.returncode

    def log_tail(self, lines: int = 60, access_log: bool = True) -> str:
        """The last lines of the server log; access_log=False skips the per-request lines."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        if not access_log:
            text = [ln for ln in text if not ln.startswith('{"ts"')]
        return "\n".join(text[-lines:])

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return cli(self.binary, *args)

    def create_key(self, tenant: str) -> str:
        return create_key(self.binary, self.data_dir, tenant)


# --------------------------------------------------------------------------
# End of a run
# --------------------------------------------------------------------------


def keep_or_remove(tmp: Path, failed: bool, say: Callable[[str], None] = print,
                   what: str = "temp dir") -> None:
    """Keeps `tmp` on failure or with DS_KEEP_DATA=1 (saying so), else removes it."""
    if failed:
        say(f"{what} kept for inspection: {tmp}")
    elif os.environ.get("DS_KEEP_DATA") == "1":
        say(f"{what} kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def summary(passed: int, failed: int) -> int:
    """Prints the final `N passed, M failed` line; returns the exit status (1 on any failure)."""
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


def setup_failed() -> int:
    """A setup error (e.g. no binary): one failure, exit status 2."""
    print("0 passed, 1 failed", flush=True)
    return 2
