"""nginx in front of the app for a benchmark: deploy/nginx.conf as it ships, pointed at one local app
server and its media folder (the app's `FILE_ACCEL_REDIRECT=/_stored/` lets nginx send stored files).

The nginx binary is Debian's, unpacked by the Makefile (the deploy tools: `.venv/nginx/root`), or any
other passed with `--nginx`. Only addresses change in the configuration, as in the chaos rig.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from server import HOST, free_port

ROOT = Path(__file__).resolve().parent.parent
DAEMON_OFF = ("-g", "daemon off;")


class NginxFront:
    """nginx (foreground, a child of the bench) in front of `app_port`; use as a context manager."""

    def __init__(
        self,
        binary: Path,
        folder: Path,
        *,
        app_port: int,
        media_root: Path,
        s3_port: int | None = None,
        cache: bool = True,
    ) -> None:
        self.binary, self.folder, self.app_port, self.media_root = binary, folder, app_port, media_root
        self.cache = cache  # False: the file endpoint's cache off, every request reaches the app
        self.s3_port = s3_port
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def render(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = f"    access_log {self.folder}/access.log imagery_json;"
        source = (ROOT / "deploy" / "nginx.conf").read_text()
        cache = self.folder / "cache"
        # pattern: (replacement, how many lines it must match)
        replacements = {
            r"^    listen 80;$": (f"    listen {HOST}:{self.port};", 1),
            # The public server and the one behind the file cache each name the app.
            r"^    set \$app_upstream http://app:8000;$": (
                f"    set $app_upstream http://{HOST}:{self.app_port};",
                2,
            ),
            r"^    access_log /dev/stdout imagery_json;$": (log, 1),
            # The server behind the file cache: its address, and the upstream naming it.
            r"127\.0\.0\.1:8081;$": (f"{HOST}:{free_port()};", 2),
            r"^proxy_cache_path /var/cache/nginx/imagery ": (f"proxy_cache_path {cache} ", 1),
        }
        if not self.cache:
            replacements[r"^        proxy_cache \$imagery_files_cache;$"] = ("        proxy_cache off;", 1)
        if self.s3_port is not None:
            s3 = f"{HOST}:{self.s3_port}"
            replacements[r"^    set \$s3_upstream http://s3:9000;$"] = (
                f"    set $s3_upstream http://{s3};",
                2,
            )
            replacements[r"^        proxy_set_header Host s3:9000;$"] = (
                f"        proxy_set_header Host {s3};",
                1,
            )
        for pattern, (replacement, times) in replacements.items():
            source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
            if count != times:
                raise RuntimeError(f"deploy/nginx.conf changed shape: {pattern!r} matched {count} times")
        source = source.replace("alias /data/media/;", f"alias {self.media_root}/;")
        server = self.folder / "nginx-server.conf"
        server.write_text(source)
        prefix = self.folder / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        mime_types = self.binary.parents[2] / "etc" / "nginx" / "mime.types"
        main = self.folder / "nginx.conf"
        main.write_text(
            f"""worker_processes auto;
pid {prefix}/nginx.pid;
error_log stderr;
events {{ worker_connections 1024; }}
http {{
    include {mime_types};
    sendfile on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {server};
}}
"""
        )
        return main

    def __enter__(self) -> NginxFront:
        config = self.render()
        with (self.folder / "nginx.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "-p",
                    str(self.folder / "nginx"),
                    "-e",
                    "stderr",
                    "-c",
                    str(config),
                    *DAEMON_OFF,
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.folder / 'nginx.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not answer in 15 s")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
