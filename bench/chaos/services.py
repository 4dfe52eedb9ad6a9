"""The stack on loopback, started and stopped by the rig: nothing of the machine's own services is touched.

- `Postgres`: a private cluster made with Debian's `initdb` in the run's folder, on a free port, run as the
  `postgres` user (PostgreSQL refuses root), its socket in its data folder;
- `Redis`: `redis-server` on a free port, no persistence;
- the S3 server: moto's, as the tests start it (`tests.s3.S3Server`), with a public-read bucket;
- `Replica`: gunicorn with deploy/gunicorn.conf.py and production settings, in its own process group so that
  a kill takes the master and its workers at once, as a container's kill would;
- `Nginx`: deploy/nginx.conf rendered for the replicas (an upstream block of three servers) and the S3
  server, in the foreground, with its prefix and temporary folders in the run's folder;
- `Worker`: a task worker per replica (`manage.py task_worker`: db_worker, the database backend on the rig's
  PostgreSQL, so the workers share one queue), in its own process group like a replica; and one relay
  (`manage.py deliver_webhooks --every`), which enqueues what a dead worker's claims left once they lapse;
  a `Supervisor` starts either again when it exits by itself, as compose's restart policy does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from bench.server import free_port

if TYPE_CHECKING:
    from tests.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
NGINX_ROOT = ROOT / ".venv" / "nginx" / "root"
BUCKET = "imagery-chaos"


def wait_until(predicate: object, *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  # loopback URLs only
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/<version>/bin")
    return versions[-1].parent


class Postgres:
    """A throwaway cluster: `initdb` into `folder`, `pg_ctl start`/`stop -m fast` on a free port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        self.bin = _postgres_bin()
        self.log = folder / "postgres.log"
        self.url = f"postgres://postgres@{HOST}:{self.port}/imagery"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, stdout=subprocess.DEVNULL, cwd="/")

    def start(self) -> None:
        self.data.mkdir(parents=True)
        self.log.touch()
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            for path in (self.data, self.log):
                os.chown(path, user.pw_uid, user.pw_gid)
            self.folder.chmod(0o755)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        self.resume()
        import psycopg

        with psycopg.connect(f"postgresql://postgres@{HOST}:{self.port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE imagery")

    def resume(self) -> None:
        """`pg_ctl start`, waiting until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses={HOST} -c max_connections=60 -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: sessions are ended, the cluster shuts down cleanly."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")


class Redis:
    """`redis-server` on a free port, in the foreground, no persistence; stop and start again at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    HOST,
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                cwd=self.folder,
                stdout=log,
                stderr=log,
            )
        wait_until(self._answers, timeout=10, what="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections are accepted (by the kernel), nothing answers: a hung server, a partition."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)


def replica_environment(
    *, folder: Path, database_url: str, redis_url: str, s3_endpoint: str, public: str
) -> dict:
    """Production settings for a replica (README, "Production settings" and "Running on S3")."""
    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY

    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "IMAGERY_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": f"{HOST},localhost",
        "IMAGERY_AUTH": "write",
        "NUM_PROXIES": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_ADDRESSING_STYLE": "path",
        # Files are fetched through nginx's read-only /s3/ path, as in compose.yaml.
        "AWS_S3_CUSTOM_DOMAIN": f"{public}/s3/{BUCKET}",
        "AWS_S3_URL_PROTOCOL": "http:",
        # As in compose.yaml: stored files and renditions are sent by nginx (X-Accel-Redirect).
        "FILE_ACCEL_REDIRECT": "/_stored/",
        # Small replicas on a shared 2-core machine: 2 processes each, of the default 4 threads (of which
        # the store's guard leaves one for requests that need only the database).
        "WEB_CONCURRENCY": "2",
        # The shared limit the rig checks (checks.rate_limit_*); the load spreads its uploads over many keys,
        # and all of it comes from one address (the rig), so the per-address upload limit is off. Reads keep
        # the default per-address limit (6000/minute, far above the load), so every request asks Redis.
        "THROTTLE_UPLOADS_PER_KEY": "20/minute",
        "THROTTLE_UPLOADS_PER_ADDRESS": "",
        # The task queue in this PostgreSQL (one queue the workers share: a delete's renditions, webhook
        # deliveries) and webhooks to the rig's receiver
        # on loopback over http. Short timeouts and backoff keep the run short: a try to a receiver that is
        # down is refused at once, and retried after 1-4 s (jittered) rather than up to an hour.
        "TASK_BACKEND": "database",
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_CONNECT_TIMEOUT": "1",
        "WEBHOOK_READ_TIMEOUT": "2",
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "WEBHOOK_RETRY_MAX_SECONDS": "4",
        "WEBHOOK_RELAY_SECONDS": "2",
        # A killed worker's claims lapse after 15 s (plus one try's timeouts) rather than 60: the queue
        # drains sooner after the worker fault, and the run is shorter (event_checks.DRAINED_WITHIN_S).
        "WEBHOOK_CLAIM_LEASE_SECONDS": "15",
        # First renders keep their default budgets (THROTTLE_RENDER_*_PER_ADDRESS): the load's renditions
        # meet them (429), and the rendition check renders under forwarded addresses of its own
        # (checks.renditions_serve).
    }


def manage(environment: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def create_api_keys(environment: dict[str, str], names: list[str]) -> dict[str, str]:
    """One key per name, made the way `manage.py apikey create` makes them, in one process; a name that
    starts with `admin` makes an admin key (`--admin`)."""
    script = (
        "import django, json, sys; django.setup();"
        "from rest_framework_api_key.models import APIKey; from api.models import AdminKey\n"
        "def make(n):\n"
        "    key, secret = APIKey.objects.create_key(name=n)\n"
        "    if n.startswith('admin'): AdminKey.objects.create(api_key=key)\n"
        "    return secret\n"
        "print(json.dumps({n: make(n) for n in sys.argv[1:]}))"
    )
    env = {**environment, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"creating API keys failed:\n{done.stderr[-3000:]}")
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


class Replica:
    """One app replica: gunicorn in its own process group, logging to `replica-N.log`."""

    def __init__(self, index: int, folder: Path, environment: dict[str, str]) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = folder / f"replica-{index}.log"
        self.environment = {**environment, "GUNICORN_BIND": f"{HOST}:{self.port}"}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi", "--config", "deploy/gunicorn.conf.py"],
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(
            lambda: http_status(f"{self.url}/readyz") == 200, timeout=timeout, what=f"replica {self.index}"
        )

    def kill(self) -> None:
        """SIGKILL to the master and its workers at once: nothing finishes, nothing is cleaned up."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.kill()


class Worker:
    """A task worker beside replica `index` (`manage.py task_worker`, as compose's `worker` service runs
    it: db_worker on every queue), in its own process group, logging to `worker-N.log`, under a stable
    worker id (`TASK_WORKER_ID=chaos-worker-N`: the queue's rows name it, and a restart reclaims what it
    left running). `held` while a fault keeps it down: the supervisor leaves it alone."""

    command = ("manage.py", "task_worker")

    def __init__(self, index: int, folder: Path, environment: dict[str, str]) -> None:
        self.index = index
        self.worker_id = f"chaos-worker-{index}"
        self.log_path = folder / f"worker-{index}.log"
        self.environment = {**environment, "TASK_WORKER_ID": self.worker_id}
        self.process: subprocess.Popen[bytes] | None = None
        self.held = False
        self.restarts = 0  # by the supervisor, after the process exited by itself

    def start(self) -> None:
        self.held = False
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.command],
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL to the worker's group: a batch under way is left claimed, as when a container dies."""
        self.held = True
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.held = True
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Relay(Worker):
    """`manage.py deliver_webhooks --every 1`: enqueues deliveries left overdue (a dead worker's, once its
    claims lapse), run beside the workers as the README asks."""

    command = ("manage.py", "deliver_webhooks", "--every", "1")

    def __init__(self, folder: Path, environment: dict[str, str]) -> None:
        super().__init__(0, folder, environment)
        self.worker_id = "relay"
        self.log_path = folder / "relay.log"


class Supervisor:
    """Starts again, a second later, a worker or the relay that exited by itself (not held by a fault), as
    compose's `restart: unless-stopped` does: both exit when PostgreSQL goes away."""

    def __init__(self, processes: list[Worker]) -> None:
        self.processes = processes
        self.stopping = threading.Event()
        self.log: list[dict[str, object]] = []
        self.thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(1.0):
            for process in self.processes:
                if process.exited() and not process.held:
                    assert process.process is not None
                    self.log.append(
                        {"t": time.time(), "what": process.worker_id, "exit": process.process.returncode}
                    )
                    process.restarts += 1
                    process.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


def render_nginx(*, folder: Path, port: int, replicas: list[Replica], s3_port: int) -> Path:
    """deploy/nginx.conf for this stack, inside a main configuration of the run's own; returns its path.

    The compose names become loopback addresses, the app's address becomes an upstream group of the
    replicas; nothing else of the file changes (asserted, so the rig tests the file that ships).
    """
    source = (ROOT / "deploy" / "nginx.conf").read_text()
    # pattern: (replacement, how many lines it must match)
    replacements = {
        r"^    listen 80;$": (f"    listen {HOST}:{port};", 1),
        # The public server and the one behind the file cache each name the app and the store.
        r"^    set \$app_upstream http://app:8000;$": ("    set $app_upstream http://imagery_app;", 2),
        r"^    set \$s3_upstream http://s3:9000;$": (f"    set $s3_upstream http://{HOST}:{s3_port};", 2),
        r"^        proxy_set_header Host s3:9000;$": (f"        proxy_set_header Host {HOST}:{s3_port};", 1),
        # The server behind the file cache: its address, and the upstream naming it.
        r"127\.0\.0\.1:8081;$": (f"{HOST}:{free_port()};", 2),
        r"^proxy_cache_path /var/cache/nginx/imagery ": (f"proxy_cache_path {folder / 'nginx-cache'} ", 1),
    }
    for pattern, (replacement, times) in replacements.items():
        source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
        if count != times:
            raise RuntimeError(f"deploy/nginx.conf changed shape: {pattern!r} matched {count} times")
    server = folder / "nginx-server.conf"
    server.write_text(source)
    prefix = folder / "nginx"
    prefix.mkdir(exist_ok=True)
    servers = "".join(f"        server {replica.url.removeprefix('http://')};\n" for replica in replicas)
    main = folder / "nginx.conf"
    main.write_text(
        f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr;
events {{ worker_connections 512; }}
http {{
    include {NGINX_ROOT}/etc/nginx/mime.types;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # The replicas, as Docker's DNS would list them for `--scale app=3`.
    upstream imagery_app {{
{servers}    }}
    include {server};
}}
"""
    )
    return main


class Nginx:
    """nginx in the foreground (`daemon off`), a child of the rig."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.binary = NGINX_ROOT / "usr" / "sbin" / "nginx"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, replicas: list[Replica], s3_port: int) -> None:
        if not self.binary.exists():
            raise RuntimeError(f"no nginx at {self.binary}: `make chaos` unpacks it (the deploy tools)")
        config = render_nginx(folder=self.folder, port=self.port, replicas=replicas, s3_port=s3_port)
        prefix = self.folder / "nginx"
        with (self.folder / "nginx.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "-p", str(prefix), "-e", "stderr", "-c", str(config), "-g", "daemon off;"],
                stdout=log,
                stderr=log,
            )
        wait_until(lambda: http_status(f"{self.url}/healthz") == 200, timeout=10, what="nginx")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


class Stack:
    """PostgreSQL, Redis, S3, `replicas` app replicas and nginx in a temporary folder; a context manager.

    On leaving, everything is stopped and the folder removed, unless `keep` (then its path is printed, with
    every service's log in it).
    """

    def __init__(self, *, replicas: int = 3, keep: bool = False) -> None:
        import tempfile

        self.folder = Path(tempfile.mkdtemp(prefix="imagery-chaos-"))
        self.folder.chmod(0o755)  # PostgreSQL's user and nginx's workers find their files inside
        self.keep = keep
        self.postgres = Postgres(self.folder)
        self.redis = Redis(self.folder)
        self.s3: S3Server | None = None
        self.nginx = Nginx(self.folder)
        self.replica_count = replicas
        self.replicas: list[Replica] = []
        self.workers: list[Worker] = []
        self.relay: Relay | None = None
        self.supervisor: Supervisor | None = None
        self.environment: dict[str, str] = {}
        self.api_keys: dict[str, str] = {}

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        from tests.s3 import S3Server

        self.postgres.start()
        self.redis.start()
        self.s3 = S3Server()
        self.s3.create_bucket(BUCKET)
        self.s3.allow_public_reads(BUCKET)
        self.environment = replica_environment(
            folder=self.folder,
            database_url=self.postgres.url,
            redis_url=self.redis.url,
            s3_endpoint=self.s3.endpoint,
            public=f"{HOST}:{self.nginx.port}",
        )
        manage(self.environment, "migrate", "--noinput", "-v", "0")
        self.replicas = [Replica(i, self.folder, self.environment) for i in range(1, self.replica_count + 1)]
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.wait_ready()
        self.nginx.start(self.replicas, self.s3.port)
        self.workers = [Worker(i, self.folder, self.environment) for i in range(1, self.replica_count + 1)]
        for worker in self.workers:
            worker.start()
        self.relay = Relay(self.folder, self.environment)
        self.relay.start()
        self.supervisor = Supervisor([*self.workers, self.relay])

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.nginx.stop()
        for worker in [*self.workers, *([self.relay] if self.relay else [])]:
            worker.stop()
        for replica in self.replicas:
            replica.stop()
        if self.s3 is not None:
            self.s3.resume()  # in case a fault left it stopped
            self.s3.stop()
        self.redis.stop()
        self.postgres.close()
        if self.keep:
            print(f"the run's folder (logs, database, nginx): {self.folder}")
        else:
            remove_folder(self.folder)
