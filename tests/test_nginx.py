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
    # Per path (with its query): the status and headers to answer instead of 200 and `answer`.
    answers: dict[str, tuple[int, dict[str, str]]] = field(default_factory=dict)

    def start(self) -> int:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                # What was asked, so that a client can tell which request an answer came from.
                body = json.dumps({**dict(self.headers), "request": len(stub.seen)}).encode()
                status, headers = stub.answers.get(self.path, (200, stub.answer))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
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
    folder: Path, *, port: int, app_port: int, s3_port: int, cache: Path, media: Path, trusted_front: str = ""
) -> Path:
    """deploy/nginx.conf with its addresses, upstreams, cache and media folders on this machine (each line
    matched as often as the file has it)."""
    source = (ROOT / "deploy" / "nginx.conf").read_text()
    # pattern: (replacement, how many lines it must match)
    replacements = {
        r"^    listen 80;$": (f"    listen 127.0.0.1:{port};", 1),
        # The public server and the one behind the file cache each name the upstreams.
        r"^    set \$app_upstream http://app:8000;$": (
            f"    set $app_upstream http://127.0.0.1:{app_port};",
            2,
        ),
        r"^    set \$s3_upstream http://s3:9000;$": (f"    set $s3_upstream http://127.0.0.1:{s3_port};", 2),
        # The server behind the file cache: its listening address and the upstream naming it.
        r"127\.0\.0\.1:8081;$": (f"127.0.0.1:{free_port()};", 2),
        r"^proxy_cache_path /var/cache/nginx/imagery ": (f"proxy_cache_path {cache} ", 1),
        # The filesystem stack's media volume: a folder of this run.
        r"^        alias /data/media/\$imagery_media;$": (f"        alias {media}/$imagery_media;", 1),
        r"^    access_log /dev/stdout imagery_json;$": (
            f"    access_log {folder}/access.log imagery_json;",
            1,
        ),
    }
    if trusted_front:
        # What an operator adds for a TLS terminator in front (README, "Deploy").
        replacements[r"^geo \$imagery_trusted_front \{\n    default 0;$"] = (
            f"geo $imagery_trusted_front {{\n    default 0;\n    {trusted_front} 1;",
            1,
        )
    for pattern, (replacement, times) in replacements.items():
        source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
        assert count == times, f"deploy/nginx.conf changed shape: {pattern!r} matched {count} times"
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
    cache: Path  # nginx's proxy_cache_path
    media: Path  # the media volume (filesystem storage)
    access_log: Path


def start_front(
    folder: Path, *, trusted_front: str = "", app_answer: dict[str, str] | None = None
) -> Iterator[Front]:
    app = Stub(answer=app_answer or {"Content-Type": "application/json"})
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
    # Outside pytest's folders, whose parents only their owner may enter: the workers read and write here.
    cache = Path(tempfile.mkdtemp(prefix="imagery-nginx-cache-"))
    cache.chmod(0o777)
    media = Path(tempfile.mkdtemp(prefix="imagery-nginx-media-"))
    media.chmod(0o755)
    config = render(
        folder,
        port=port,
        app_port=app.start(),
        s3_port=s3.start(),
        cache=cache,
        media=media,
        trusted_front=trusted_front,
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
        yield Front(f"http://127.0.0.1:{port}", app, s3, cache, media, folder / "access.log")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(media, ignore_errors=True)
        app.stop()
        s3.stop()
        shutil.rmtree(cache, ignore_errors=True)


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


def access_log(front: Front, *, lines: int) -> str:
    """The access log once it holds `lines` lines: nginx writes a request's line after it has sent the
    answer, so under load the last line can still be on its way when the client has its answer."""
    text = ""
    for _ in range(200):
        text = front.access_log.read_text() if front.access_log.exists() else ""
        if text.count("\n") >= lines:
            break
        time.sleep(0.05)  # waiting for nginx's write; nothing is asserted on time
    return text


def test_the_access_log_never_holds_a_signature(front: Front) -> None:
    secret = "Zk3SeCrEtSiGnAtUrE0123456789abcdefghijklmno"
    for query in [f"width=320&expires=2000000000&kid=k1&sig={secret}", f"sig={secret}&width=320"]:
        assert fetch(f"{front.url}/images/12/file?{query}")[0] == 200  # the stub app answers
    assert fetch(f"{front.url}/images?title=sig")[0] == 200
    # The app reads a %-escaped name as the name (and the log must not care about case either).
    for query in [f"%73ig={secret}", f"width=320&%53%49%47={secret}", f"SIG={secret}"]:
        assert fetch(f"{front.url}/images/12/file?{query}")[0] == 200
    log = access_log(front, lines=6)
    assert secret not in log
    assert '"path":"/images/12/file?(signed)"' in log
    assert '"path":"/images?title=sig"' in log  # other queries are logged as they came


def test_the_access_log_never_holds_an_upload_urls_secret(front: Front) -> None:
    secret = "Qx7SeCrEtUpLoAd_-0123456789abcdefghijklmnop"
    upload = "/uploads/9b2f4c1e-0d6a-4f5e-8a4b-2c3d4e5f6a7b"
    assert fetch(f"{front.url}{upload}/{secret}")[0] == 200  # the stub app answers
    assert fetch(f"{front.url}{upload}")[0] == 200
    # The same view, reached by escapes or doubled slashes: the secret is still left out.
    for path in [
        f"/%75ploads/{upload[9:]}/{secret}",
        f"//uploads/{upload[9:]}/{secret}",
        f"{upload}%2F{secret}",
    ]:
        assert fetch(f"{front.url}{path}")[0] == 200
    log = access_log(front, lines=5)
    assert secret not in log
    assert f'"path":"{upload}/(secret)"' in log
    assert f'"path":"{upload}"' in log  # the state's path has no secret


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


# --- /_stored/s3/: what nginx sends from the bucket once the app answered X-Accel-Redirect -----------

RENDITION = f"renditions/{DIGEST}/w320.5f4d78fb28.webp"


@pytest.fixture(scope="module")
def accel_front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """An app that answers every request as images/sending.py does with FILE_ACCEL_REDIRECT=/_stored/."""
    yield from start_front(
        tmp_path_factory.mktemp("nginx-accel"),
        app_answer={"X-Accel-Redirect": f"/_stored/s3/imagery/{RENDITION}", "ETag": '"app-etag"'},
    )


def test_a_file_sent_for_the_app_reaches_the_bucket_without_the_clients_credentials(
    accel_front: Front,
) -> None:
    sent = {
        # IMAGERY_AUTH=all: every file request carries the client's API key, which is the app's to read.
        "Authorization": "Bearer aBcDeFgH.the-clients-secret",
        "Cookie": "sessionid=1",
        "X-Amz-Security-Token": "token",
    }
    status, headers, _ = fetch(f"{accel_front.url}/images/1/file?width=320&format=webp", headers=sent)
    assert status == 200 and headers["ETag"] == '"app-etag"'
    assert "authorization" in {name.lower() for name in accel_front.app.seen[0]["headers"]}
    (seen,) = accel_front.s3.seen
    assert seen["path"] == f"/imagery/{RENDITION}"  # the app's target, without the client's query
    names = {name.lower() for name in seen["headers"]}
    assert not {"authorization", "cookie", "x-amz-security-token"} & names, seen["headers"]


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


# --- The cache of GET /images/{id}/file ------------------------------------------------------------

PUBLIC = {
    "Content-Type": "image/jpeg",
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
RENDITION = f"renditions/{DIGEST}/w320.1f0c9a2b7d.jpg"


def public(etag: str = '"w320.1f0c9a2b7d"', **more: str) -> tuple[int, dict[str, str]]:
    return 200, {**PUBLIC, "ETag": etag, **more}


def app_paths(front: Front) -> list[str]:
    return [r["path"] for r in front.app.seen]


def test_a_public_file_answer_is_sent_from_the_cache_the_second_time(front: Front) -> None:
    path = "/images/1/file?width=320&format=jpeg"
    front.app.answers[path] = public(**{"X-Request-ID": "the-first"})
    first = fetch(front.url + path, headers={"X-Request-ID": "the-first"})
    second = fetch(front.url + path, headers={"X-Request-ID": "the-second"})
    assert first[0] == second[0] == 200
    assert app_paths(front) == [path]
    assert second[2] == first[2]
    for name in ("Content-Type", "Cache-Control", "ETag", "X-Content-Type-Options"):
        assert second[1][name] == first[1][name] == front.app.answers[path][1][name]
    assert (first[1]["X-Cache-Status"], second[1]["X-Cache-Status"]) == ("MISS", "HIT")
    # Each answer carries its own request's id, not the one kept with the first.
    assert (first[1]["X-Request-ID"], second[1]["X-Request-ID"]) == ("the-first", "the-second")


def test_what_nginx_sends_for_an_x_accel_redirect_is_what_the_cache_keeps(front: Front) -> None:
    path = "/images/2/file?width=320&format=jpeg"
    _, headers = public(**{"X-Accel-Redirect": f"/_stored/s3/imagery/{RENDITION}"})
    del headers["Content-Type"]  # the app sends none with a redirect: the stored file's is taken
    front.app.answers[path] = (200, headers)
    first, second = fetch(front.url + path), fetch(front.url + path)
    assert app_paths(front) == [path]
    assert [r["path"] for r in front.s3.seen] == [f"/imagery/{RENDITION}"]
    assert first[0] == second[0] == 200 and second[2] == first[2]
    assert json.loads(second[2])["request"] == 1  # the bucket's bytes, sent once by nginx
    assert second[1]["Content-Type"] == "image/jpeg"
    assert second[1]["Cache-Control"] == PUBLIC["Cache-Control"]
    assert second[1]["ETag"] == '"w320.1f0c9a2b7d"'
    assert "x-accel-redirect" not in {h.lower() for h in second[1]}


@pytest.mark.parametrize(
    "answer",
    [
        public(
            **{"Cache-Control": "private, max-age=31536000, immutable"}
        ),  # a key was needed (IMAGERY_AUTH=all)
        public(**{"Cache-Control": "no-store"}),
        public(**{"Cache-Control": "public, no-cache"}),
        (200, {"Content-Type": "image/jpeg"}),  # the app said nothing: nothing is kept
        (404, {"Content-Type": "application/problem+json"}),
        (503, {"Content-Type": "application/problem+json", "Retry-After": "5"}),
        public(**{"Vary": "Origin"}),  # varies on what the key does not hold
        public(**{"Set-Cookie": "a=b"}),
    ],
    ids=["private", "no-store", "no-cache", "no-cache-control", "404", "503", "vary-origin", "set-cookie"],
)
def test_an_answer_not_marked_public_is_never_kept(front: Front, answer: tuple[int, dict[str, str]]) -> None:
    path = f"/images/3/file?width=320&case={len(front.app.answers)}"
    front.app.answers[path] = answer
    assert fetch(front.url + path)[0] == fetch(front.url + path)[0] == answer[0]
    assert app_paths(front) == [path, path]


def test_only_the_file_endpoint_is_cached(front: Front) -> None:
    front.app.answers["/images/4"] = public()
    fetch(f"{front.url}/images/4"), fetch(f"{front.url}/images/4")
    assert app_paths(front) == ["/images/4", "/images/4"]


def test_format_auto_is_kept_once_per_format_the_app_would_choose(front: Front) -> None:
    path = "/images/5/file?width=320"
    front.app.answers[path] = public(Vary="Accept")
    chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
    firefox = "image/avif,image/webp,*/*"
    safari = (
        "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,"
        "image/*;q=0.8,*/*;q=0.5"
    )
    old_edge = "image/webp,image/apng,image/*,*/*;q=0.8"
    cases = [
        (chrome, "image/avif,image/webp"),
        (firefox, "image/avif,image/webp"),
        (safari, "image/avif,image/webp"),
        (old_edge, "image/webp"),
        ("image/avif;q=0, image/webp", "image/webp"),
        ("image/avif;q=0.5", "image/avif"),
        ("image/avifx,image/webps", "*/*"),
        ("*/*", "*/*"),
        ("", "*/*"),
    ]
    answers = {}
    for accept, canonical in cases:
        status, headers, body = fetch(front.url + path, headers={"Accept": accept} if accept else {})
        assert status == 200 and headers["Vary"] == "Accept"
        # The answer is the one made for this client's choice, whoever asked first.
        assert json.loads(body)["Accept"] == canonical, accept
        answers.setdefault(canonical, body)
        assert body == answers[canonical]
    # The app saw each choice once, as the canonical Accept nginx sends.
    assert [r["headers"]["Accept"] for r in front.app.seen] == list(answers)


def test_a_request_with_a_key_is_neither_served_from_nor_kept_in_the_cache(front: Front) -> None:
    path = "/images/6/file?width=320&format=jpeg"
    front.app.answers[path] = public()
    key = {"Authorization": "Bearer k"}
    fetch(front.url + path, headers=key), fetch(front.url + path, headers=key)
    assert app_paths(front) == [path, path]  # not kept
    fetch(front.url + path), fetch(front.url + path, headers=key)
    assert app_paths(front) == [path] * 4  # the keyless answer kept, not given to the key
    assert all(r["headers"].get("Authorization") == "Bearer k" for r in front.app.seen[::3])


def test_head_and_get_share_an_entry_and_a_head_gets_no_body(front: Front) -> None:
    path = "/images/7/file?width=320&format=jpeg"
    front.app.answers[path] = public()
    status, headers, body = fetch(front.url + path, method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["ETag"] == '"w320.1f0c9a2b7d"'
    get = fetch(front.url + path)
    assert get[0] == 200 and json.loads(get[2])["request"] == 1 and get[1]["X-Cache-Status"] == "HIT"
    assert [(r["method"], r["path"]) for r in front.app.seen] == [("GET", path)]


def test_if_none_match_is_answered_304_by_nginx_and_never_cached(front: Front) -> None:
    path = "/images/8/file?width=320&format=jpeg"
    front.app.answers[path] = public()
    etag = {"If-None-Match": '"w320.1f0c9a2b7d"'}
    # A conditional first request: the app is asked unconditionally, so what is kept is the whole answer.
    assert fetch(front.url + path, headers=etag)[0] == 304
    assert "If-None-Match" not in front.app.seen[0]["headers"]
    assert fetch(front.url + path, headers=etag)[0] == 304
    status, _, body = fetch(front.url + path)
    assert status == 200 and json.loads(body)["request"] == 1
    assert fetch(front.url + path, headers={"If-None-Match": '"other"'})[0] == 200
    assert app_paths(front) == [path]


def test_the_key_holds_the_host_and_the_query_string(front: Front) -> None:
    base = "/images/9/file"
    for query in ("?width=320", "?width=640", "?width=320&format=jpeg"):
        front.app.answers[base + query] = public()
    for query in ("?width=320", "?width=640", "?width=320&format=jpeg", "?width=320"):
        fetch(front.url + base + query)
    fetch(front.url + base + "?width=320", headers={"Host": "other.example"})
    # The same width again is kept; another Host is another entry.
    kept = [base + "?width=320", base + "?width=640", base + "?width=320&format=jpeg"]
    assert app_paths(front) == [*kept, base + "?width=320"]
    assert front.app.seen[-1]["headers"]["Host"] == "other.example"


def test_the_app_is_told_the_client_address_once_through_both_hops(front: Front) -> None:
    path = "/images/10/file?width=320"
    front.app.answers[path] = public()
    fetch(front.url + path, headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    (seen,) = front.app.seen
    # nginx appends the address it saw (the client's) once; the hop behind the cache appends nothing.
    assert seen["headers"]["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"


def test_emptying_the_cache_folder_purges_every_kept_answer(tmp_path: Path) -> None:
    # What a takedown does (README, "Renditions"): nginx keeps running and asks the app again.
    path = "/images/11/file?width=320&format=jpeg"
    for cached in start_front(tmp_path):
        cached.app.answers[path] = public()
        fetch(cached.url + path), fetch(cached.url + path)
        assert app_paths(cached) == [path]
        kept = [f for f in cached.cache.rglob("*") if f.is_file()]
        assert kept
        for file in kept:
            file.unlink()
        assert fetch(cached.url + path)[1]["X-Cache-Status"] == "MISS"
        assert app_paths(cached) == [path, path]
