"""The app under gunicorn for the HTTP part of the benchmark, and a plain client for it.

`AppServer` migrates a fresh SQLite database in a temporary DATA_DIR, creates an API key (uploads need
one), starts gunicorn with deploy/gunicorn.conf.py on a free local port with one sync worker (so there is
one process to measure), and stops it again. It runs in development mode with the app's defaults, except:
the encoder and limit settings are pinned to the `EncodeOptions()` and `Limits()` defaults (so the app
encodes exactly like the bare pipeline it is compared with), files stay on the local filesystem, and the
upload rate limits are raised out of reach (checked, never hit). `env` changes any of that (the read
benchmark: PostgreSQL, production mode, the configured number of workers).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "IMAGERY_ENV")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def multipart(fields: dict[str, str], file_field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type, built once and posted many times."""
    boundary = f"bench-{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class AppServer:
    """gunicorn serving config.wsgi from a throwaway data folder; use as a context manager."""

    def __init__(self, data_dir: Path, *, port: int | None = None, env: dict[str, str | None] | None = None):
        """`env`: variables to set on top of the defaults above; None removes one."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_path = data_dir / "gunicorn.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.api_key: str | None = None
        # Imported here: the read benchmark's client processes import this module and need none of it.
        from images.pixels.processing import EncodeOptions, Limits

        defaults_enc, defaults_lim = EncodeOptions(), Limits()
        self.env = {
            # Only what a process needs, so no DATABASE_URL, REDIS_URL or S3 setting of the caller leaks in;
            # IMAGERY_ENV passes (`make bench` runs the app in development mode, as `make run` does).
            **{k: v for k, v in os.environ.items() if k in _PASSED_THROUGH},
            "PYTHONDONTWRITEBYTECODE": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            # No SECRET_KEY to set up: development mode makes one up (production would refuse to start).
            "IMAGERY_ENV": "development",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
            "MEDIA_ROOT": str(data_dir / "media"),
            "SECRET_KEY": secrets.token_urlsafe(50),
            "STORAGE_BACKEND": "filesystem",
            "REDIS_URL": "",
            "THROTTLE_UPLOADS_PER_KEY": "1000000/hour",
            "THROTTLE_UPLOADS_PER_ADDRESS": "1000000/hour",
            "WEB_CONCURRENCY": "1",
            "IMAGE_JPEG_QUALITY": str(defaults_enc.jpeg_quality),
            "IMAGE_WEBP_QUALITY": str(defaults_enc.webp_quality),
            "IMAGE_AVIF_QUALITY": str(defaults_enc.avif_quality),
            "IMAGE_MAX_PIXELS": str(defaults_lim.max_pixels),
        }
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = value

    def __enter__(self) -> AppServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = Path(sys.executable).parent
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )
        self.api_key = self.create_api_key()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(bin_dir / "gunicorn"),
                    "config.wsgi",
                    "--config",
                    "deploy/gunicorn.conf.py",
                    "--bind",
                    f"{HOST}:{self.port}",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self._wait_ready()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def create_api_key(self) -> str:
        """A fresh API key from `manage.py apikey create`."""
        done = subprocess.run(
            [sys.executable, "manage.py", "apikey", "create", f"bench-{secrets.token_hex(4)}"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py apikey create failed: {done.stderr}")
        return done.stdout.strip()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail()}")
            try:
                status, _ = self.request("GET", "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of gunicorn's log (it lives in the temporary folder, gone after the run)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def worker_pid(self) -> int:
        """The one worker: the gunicorn master's child."""
        assert self._process is not None
        master = self._process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {children}")
        return int(children[0])

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        """One request on a new connection (no keep-alive), read to the end."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
        try:
            headers = {"Connection": "close"}
            if self.api_key:
                headers["Authorization"] = f"Bearer {self.api_key}"
            if content_type:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def forget_stored_files(self) -> None:
        """Delete stored files, so the next upload of the same bytes writes its file again.

        Names are content hashes: without this, every repeat of one upload would skip the storage write.
        """
        shutil.rmtree(self.data_dir / "media" / "images", ignore_errors=True)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    return next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "?")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak since the process started) of `pid`, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return {key: int(value) for key, value in values.items()}
