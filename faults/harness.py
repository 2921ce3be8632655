"""The local platform as the fault commands run it (faults/run, faults/schema).

Every service runs as its own process under a small supervisor that restarts whatever
dies (a Procfile runner stops everything when one process exits, which is the opposite of
what a fault run needs). The MongoDB-wire server and NATS keep their data in the run's
own directory; every port is picked free at start. NATS runs with the users of
infra/nats_auth.py (each service connects as itself), as one node or, for
`faults/run --nats-cluster`, a loopback cluster of three. Standard library only.
"""

import base64
import http.cookiejar
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
import nats_auth  # noqa: E402  (the NATS users, as in production)
from ports import free_port  # noqa: E402  (below the ephemeral range)

VENV = ROOT / ".dev" / "venv"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
BIN = TARGET / "debug"
SERVICES = ["auth", "tickets", "orders", "expiration", "payments", "query", "posts", "comments", "moderation"]
# Dev-only signing key of these throwaway runs; never used anywhere else.
JWT_KEY = "faults-only-jwt-key-faults-only-jwt-key-00"


def log(msg, who="faults"):
    print(f"[{who} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def prepare():
    """Installs the pinned dev servers (first run only) and builds every binary."""
    subprocess.run(["bash", "-c", f"source {ROOT}/dev/lib.sh && ensure_venv"], check=True)
    subprocess.run(["cargo", "build", "--locked", "--bins"], cwd=ROOT, check=True)


class Supervised:
    """A process restarted whenever it dies, until stopped."""

    def __init__(self, name, cmd, env, logdir):
        self.name, self.cmd, self.env = name, cmd, {**os.environ, **env}
        self.log = open(logdir / f"{name}.log", "a")
        self.proc = None
        self.stopping = False
        self.restarts = 0
        self.lock = threading.Lock()
        self.start()
        threading.Thread(target=self.watch, daemon=True).start()

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def watch(self):
        while not self.stopping:
            time.sleep(0.2)
            with self.lock:
                if not self.stopping and self.proc.poll() is not None:
                    self.restarts += 1
                    time.sleep(0.3)
                    self.start()

    def signal(self, sig):
        with self.lock:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)

    def restart(self, grace=10):
        """Graceful stop, then start (for the servers: keeps their data)."""
        with self.lock:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.start()

    def stop(self):
        with self.lock:
            self.stopping = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Nats:
    """NATS with the users of infra/nats_auth.py (fresh dev-only passwords): one node, or a
    loopback cluster of `nodes` JetStream servers whose streams keep a copy on each."""

    def __init__(self, work, logs, nodes=1):
        users = [*nats_auth.USERS, nats_auth.HARNESS]
        self.passwords = {user: f"dev-{secrets.token_hex(16)}" for user in users}
        env = {nats_auth.password_variable(user): password for user, password in self.passwords.items()}
        self.ports = [free_port() for _ in range(nodes)]
        self.monitor_ports = [free_port() for _ in range(nodes)]
        routes = [free_port() for _ in range(nodes)] if nodes > 1 else []
        self.nodes = []
        for n, port in enumerate(self.ports):
            cluster = (f"n{n}", routes[n], [p for m, p in enumerate(routes) if m != n]) if routes else None
            config = work / f"nats-{n}.conf"
            config.write_text(nats_auth.nats_config("local", port=port, local_cluster=cluster))
            cmd = [str(VENV / "bin" / "nats-server"), "-c", str(config), "--jetstream",
                   "--store_dir", str(work / f"nats-{n}"), "-m", str(self.monitor_ports[n])]
            self.nodes.append(Supervised("nats" if nodes == 1 else f"nats-{n}", cmd, env, logs))
        self.replicas = nodes

    def url(self, user):
        """The URL `user` connects with: every node, its own credentials."""
        password = self.passwords[user]
        return ",".join(f"nats://{user}:{password}@127.0.0.1:{port}" for port in self.ports)

    def wait(self):
        return all(wait_port(port) for port in self.ports)

    def leader(self, stream):
        """The node leading `stream` (a cluster), from any node's monitoring endpoint."""
        for monitor in self.monitor_ports:
            try:
                url = f"http://127.0.0.1:{monitor}/jsz?accounts=true&streams=true"
                with urllib.request.urlopen(url, timeout=3) as response:
                    jsz = json.loads(response.read())
            except OSError:
                continue
            for account in jsz.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    leader = (detail.get("cluster") or {}).get("leader")
                    if detail.get("name") == stream and leader:
                        return next(node for n, node in enumerate(self.nodes) if f"n{n}" == leader)
        return None


class Platform:
    """MongoDB-wire server, NATS, every service and the gateway, each supervised."""

    def __init__(self, work, expiration_window, rust_log="warn", service_env=None, nats_nodes=1):
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.mongo_port, self.gateway_port = free_port(), free_port()
        self.mongo = Supervised("mongo", [str(VENV / "bin" / "secantusd-py"), "--host", "127.0.0.1", "--port",
                                          str(self.mongo_port), "--storage-path", str(work / "mongo"),
                                          "--log-level", "WARNING"], {}, self.logs)
        self.nats = Nats(work, self.logs, nats_nodes)
        assert wait_port(self.mongo_port) and self.nats.wait(), "servers did not start"
        self.mongo_base = f"mongodb://127.0.0.1:{self.mongo_port}/?directConnection=true"
        # Tools (audit, bench-tool) connect as the unrestricted local `harness` user.
        self.nats_url = self.nats.url(nats_auth.HARNESS)
        self.ports = {name: free_port() for name in SERVICES}
        self.services = {}
        for name in SERVICES:
            env = {
                "PORT": str(self.ports[name]), "BIND_HOST": "127.0.0.1", "NATS_URL": self.nats.url(name),
                "NATS_STREAM_REPLICAS": str(self.nats.replicas),
                "JWT_KEY": JWT_KEY, "MONGO_URI": f"mongodb://127.0.0.1:{self.mongo_port}/{name}?directConnection=true",
                "EXPIRATION_WINDOW_SECONDS": str(expiration_window), "RUST_LOG": rust_log,
                "STARTUP_TIMEOUT_SECONDS": "120", "PAYMENTS_PROVIDER": "test",
                # A few buyer accounts stand for many buyers in the workload.
                "ORDERS_MAX_ACTIVE_PER_USER": "50", **(service_env or {}).get(name, {}),
            }
            self.services[name] = Supervised(name, [str(BIN / name)], env, self.logs)
        backends = ",".join(f"{n}=127.0.0.1:{p}" for n, p in self.ports.items())
        self.gateway = Supervised("gateway", [str(BIN / "gateway")], {
            "PORT": str(self.gateway_port), "GATEWAY_INGRESS": str(ROOT / "infra/k8s/base/ingress.yaml"),
            "GATEWAY_BACKENDS": backends, "RUST_LOG": rust_log}, self.logs)
        self.everything = [self.mongo, *self.nats.nodes, self.gateway, *self.services.values()]
        self.base = f"http://127.0.0.1:{self.gateway_port}"

    def wait_started(self, timeout=120):
        for name, port in self.ports.items():
            assert wait_port(port, timeout), f"{name} did not start"
        assert wait_port(self.gateway_port, timeout), "gateway did not start"

    def wait_ready(self, timeout=120):
        """Until every service's /readyz says ready (MongoDB and NATS reachable)."""
        deadline = time.monotonic() + timeout
        for name, port in self.ports.items():
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
                        if json.loads(response.read()).get("status") == "ready":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name} never became ready")
                time.sleep(0.3)

    def stop(self):
        for proc in self.everything:
            proc.stop()


class User:
    """One user of the platform: a cookie jar and JSON requests."""

    def __init__(self, base, email, password="supersecret"):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        for _ in range(100):
            status, _ = self.call("POST", "/api/users/signup", {"email": email, "password": password})
            if status == 201:
                return
            status, _ = self.call("POST", "/api/users/signin", {"email": email, "password": password})
            if status == 200:
                return
            time.sleep(0.3)
        raise RuntimeError(f"{email} could not sign up")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=15) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            text = err.read()
            try:
                return err.code, json.loads(text) if text else None
            except ValueError:
                return err.code, None
        except OSError:
            return 0, None

    def token(self):
        """The JWT of the session cookie, for `Authorization: Bearer`."""
        cookie = next(c for c in self.jar if c.name == "session")
        return json.loads(base64.b64decode(cookie.value + "=" * (-len(cookie.value) % 4)))["jwt"]
