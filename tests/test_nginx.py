"""deploy/nginx.conf, run: what reaches the bucket through `/s3/`, the scheme the app is told, what is hidden.

nginx runs from the file that ships, with only its listening address and its two upstreams pointed at stub
servers of this process that record every request that reaches them. Needs an nginx binary: `make
deploy-check` unpacks Debian's into `.venv/nginx` and runs this file with IMAGERY_REQUIRE_NGINX=1, so that
there a missing nginx fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX_ROOT = Path(os.environ.get("NGINX_ROOT", ROOT / ".venv" / "nginx" / "root"))
NGINX = NGINX_ROOT / "usr" / "sbin" / "nginx"

if not NGINX.is_file():
    if os.environ.get("IMAGERY_REQUIRE_NGINX"):
        raise RuntimeError(f"no nginx at {NGINX} (make deploy-check unpacks it)")
    pytest.skip(f"no nginx at {NGINX}: `make deploy-check` runs these", allow_module_level=True)

DIGEST = "3fa1" + "0" * 56 + "00e9"
FILE = f"images/3f/a1/{DIGEST}.jpg"


@dataclass
class Stub:
    """An HTTP server that records each request (method, path with query, headers) and answers 200."""

    answer: dict[str, str]
    seen: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> int:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                body = json.dumps(dict(self.headers)).encode()
                self.send_response(200)
                for name, value in stub.answer.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_HEAD = do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(
    folder: Path, *, port: int, app_port: int, s3_port: int, media: Path, trusted_front: str = ""
) -> Path:
    """deploy/nginx.conf with its address and upstreams on this machine (each line matched exactly once)."""
    source = (ROOT / "deploy" / "nginx.conf").read_text()
    replacements = {
        r"^    listen 80;$": f"    listen 127.0.0.1:{port};",
        r"^    set \$app_upstream http://app:8000;$": f"    set $app_upstream http://127.0.0.1:{app_port};",
        r"^    set \$s3_upstream http://s3:9000;$": f"    set $s3_upstream http://127.0.0.1:{s3_port};",
        # The filesystem stack's media volume: a folder of this run.
        r"^        alias /data/media/\$imagery_media;$": f"        alias {media}/$imagery_media;",
        r"^    access_log /dev/stdout imagery_json;$": f"    access_log {folder}/access.log imagery_json;",
    }
    if trusted_front:
        # What an operator adds for a TLS terminator in front (README, "Deploy").
        replacements[r"^    default 0;$"] = f"    default 0;\n    {trusted_front} 1;"
    for pattern, replacement in replacements.items():
        source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf changed shape: {pattern!r} matched {count} times"
    (folder / "server.conf").write_text(source)
    main = folder / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    include {NGINX_ROOT}/etc/nginx/mime.types;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/server.conf;
}}
"""
    )
    return main


@dataclass
class Front:
    url: str
    app: Stub
    s3: Stub
    media: Path  # the media volume (filesystem storage)
    access_log: Path


def start_front(folder: Path, *, trusted_front: str = "") -> Iterator[Front]:
    app = Stub(answer={"Content-Type": "application/json"})
    s3 = Stub(
        answer={
            "Content-Type": "image/jpeg",
            "x-amz-version-id": "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY",
            "x-amz-request-id": "17E0A1B2C3D4E5F6",
            "x-minio-deployment-id": "9d8e7f60-0000-4000-8000-000000000000",
        }
    )
    port = free_port()
    folder.chmod(0o755)  # nginx's workers run unprivileged when the master is root
    # Outside pytest's temporary folders, which nginx's unprivileged workers cannot enter.
    media = Path(tempfile.mkdtemp(prefix="imagery-nginx-media-"))
    media.chmod(0o755)
    config = render(
        folder, port=port, app_port=app.start(), s3_port=s3.start(), media=media, trusted_front=trusted_front
    )
    process = subprocess.Popen(  # noqa: S603  # a fixed binary and our own configuration
        [
            str(NGINX),
            "-p",
            str(folder),
            "-e",
            str(folder / "error.log"),
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError((folder / "error.log").read_text()) from None
                time.sleep(0.05)  # waiting for nginx to listen; nothing is asserted on time
        app.seen.clear()
        yield Front(f"http://127.0.0.1:{port}", app, s3, media, folder / "access.log")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(media, ignore_errors=True)
        app.stop()
        s3.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    yield from start_front(tmp_path_factory.mktemp("nginx"))


@pytest.fixture(autouse=True)
def nothing_seen_yet(request: pytest.FixtureRequest) -> None:
    if "front" in request.fixturenames:
        front = request.getfixturevalue("front")
        front.app.seen.clear()
        front.s3.seen.clear()


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})  # noqa: S310  # ours
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # our own nginx
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def raw_status(front: Front, target: str) -> int:
    """The status nginx answers a request line sent as is (urllib would normalise some of these paths)."""
    host, port = front.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return int(conn.recv(64).split()[1])


# --- /media/: a public stored file's name and nothing else --------------------------------------------


def test_media_serves_public_files_only_never_a_private_images(front: Front) -> None:
    """The filesystem stack: private images' files (private/images/…) share the volume and must not pass."""
    public, private = f"images/3f/a1/{DIGEST}.jpg", f"private/images/3f/a1/{DIGEST}.jpg"
    for name in (public, private, f"private/renditions/{DIGEST}/w320.abc.webp"):
        path = front.media / name
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 bytes")
        path.chmod(0o644)
    status, headers, body = fetch(f"{front.url}/media/{public}")
    assert (status, body) == (200, b"\xff\xd8 bytes")
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for target in [
        f"/media/{private}",
        f"/media/private/renditions/{DIGEST}/w320.abc.webp",
        f"/media/images/../{private}",
        "/media/private/",
        "/media/",
    ]:
        assert raw_status(front, target) in (400, 404), target
    assert front.app.seen == []


def test_the_access_log_never_holds_a_signature(front: Front) -> None:
    secret = "Zk3SeCrEtSiGnAtUrE0123456789abcdefghijklmno"
    for query in [f"width=320&expires=2000000000&kid=k1&sig={secret}", f"sig={secret}&width=320"]:
        assert fetch(f"{front.url}/images/12/file?{query}")[0] == 200  # the stub app answers
    assert fetch(f"{front.url}/images?title=sig")[0] == 200
    log = front.access_log.read_text()
    assert secret not in log
    assert '"path":"/images/12/file?(signed)"' in log
    assert '"path":"/images?title=sig"' in log  # other queries are logged as they came


# --- /s3/: a stored file's name and nothing else ---------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["", "?list-type=2", "?versions", "?versionId=3/L4kqtJlcpXroDTDmJ", "?response-content-type=text/html"],
)
def test_a_file_reaches_the_bucket_without_its_query_string(front: Front, query: str) -> None:
    status, headers, _ = fetch(f"{front.url}/s3/imagery/{FILE}{query}")
    assert status == 200
    assert [(r["method"], r["path"]) for r in front.s3.seen] == [("GET", f"/imagery/{FILE}")]
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # MinIO's facts about the object (its version id among them) stay inside.
    assert not {"x-amz-version-id", "x-amz-request-id", "x-minio-deployment-id"} & {
        h.lower() for h in headers
    }


def test_only_conditional_and_range_headers_reach_the_bucket(front: Front) -> None:
    sent = {
        "If-None-Match": '"abc"',
        "Range": "bytes=0-9",
        "Authorization": "AWS4-HMAC-SHA256 Credential=stolen",
        "X-Amz-Security-Token": "token",
        "Cookie": "sessionid=1",
    }
    assert fetch(f"{front.url}/s3/imagery/{FILE}", headers=sent)[0] == 200
    (seen,) = front.s3.seen
    names = {name.lower() for name in seen["headers"]}
    assert {"if-none-match", "range"} <= names
    assert not {"authorization", "x-amz-security-token", "cookie"} & names


@pytest.mark.parametrize(
    "target",
    [
        "/s3/imagery/?list-type=2",  # list the bucket
        "/s3/imagery?list-type=2",
        "/s3/imagery/?versions",  # list every version
        "/s3/imagery/",
        "/s3/",
        "/s3/?x-id=ListBuckets",
        "/s3/minio/health/live",  # MinIO's own paths
        "/s3/minio/admin/v3/info",
        "/s3/imagery/renditions/" + DIGEST + "/w320.webp",  # served by the app, not the bucket
        "/s3/imagery/private/images/3f/a1/" + DIGEST + ".jpg",  # a private image's file: signed URLs only
        "/s3/imagery/private/renditions/" + DIGEST + "/w320.webp",
        "/s3/imagery/images/3f/a1/",
        "/s3/imagery/images/3f/a1/" + DIGEST + ".html",
        "/s3/imagery/images/3f/a1/" + DIGEST.upper() + ".jpg",
        "/s3/imagery/images/3f/a1/" + DIGEST + ".jpg/",
        "/s3/imagery/images/3f/a1/" + DIGEST + ".jpg%3Fversions",
        "/s3/imagery/images/3f/a1/../../../other/" + FILE,
        "/s3/imagery/images/3f/a1/" + DIGEST + ".jpg/../../../../?list-type=2",
        "/s3/other-bucket/..%2Fimagery%2F?list-type=2",
    ],
)
def test_nothing_else_reaches_the_bucket(front: Front, target: str) -> None:
    status = raw_status(front, target)
    assert status in (400, 404), (target, status)
    assert front.s3.seen == [], front.s3.seen


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_bucket_is_read_only(front: Front, method: str) -> None:
    assert fetch(f"{front.url}/s3/imagery/{FILE}", method=method)[0] == 403
    assert front.s3.seen == []


# --- What the app is told -------------------------------------------------------------------------


def app_saw(front: Front, headers: dict[str, str]) -> dict[str, str]:
    status, _, body = fetch(f"{front.url}/images", headers=headers)
    assert status == 200
    return {name.lower(): value for name, value in json.loads(body).items()}


def test_a_client_cannot_claim_https(front: Front) -> None:
    assert app_saw(front, {"X-Forwarded-Proto": "https"})["x-forwarded-proto"] == "http"
    assert app_saw(front, {})["x-forwarded-proto"] == "http"


def test_a_trusted_front_proxy_can_say_https(tmp_path: Path) -> None:
    # The operator lists the TLS terminator in front (here: this machine, which sends the requests).
    for trusted in start_front(tmp_path, trusted_front="127.0.0.1"):
        assert app_saw(trusted, {"X-Forwarded-Proto": "https"})["x-forwarded-proto"] == "https"
        assert app_saw(trusted, {"X-Forwarded-Proto": "http"})["x-forwarded-proto"] == "http"
        assert app_saw(trusted, {"X-Forwarded-Proto": "gopher"})["x-forwarded-proto"] == "http"


@pytest.mark.parametrize("path", ["/readyz", "/metrics"])
def test_probes_for_the_network_are_404_and_never_reach_the_app(front: Front, path: str) -> None:
    assert fetch(f"{front.url}{path}")[0] == 404
    assert front.app.seen == []


def test_everything_else_reaches_the_app(front: Front) -> None:
    assert fetch(f"{front.url}/healthz")[0] == 200
    assert [r["path"] for r in front.app.seen] == ["/healthz"]
