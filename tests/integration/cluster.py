"""A local Spindle cluster for integration tests: spindle-local in a scratch directory,
plus a small independent StorPool API client (urllib, no project code)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BIN = os.environ.get("SPINDLE_BIN_DIR", os.path.join(os.path.dirname(__file__), "../../build/bin"))


class ApiError(Exception):
    def __init__(self, status, error):
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error


class Cluster:
    """Starts with up(), stops every process with down() (by PID, via spindle-local)."""

    def __init__(self, keep=False, base=None):
        """base: the directory to make the cluster's directory in (default: the temp dir)."""
        self.dir = tempfile.mkdtemp(prefix="spindle-it-", dir=base)
        self.keep = keep
        self.conf = {}

    def local(self, *args, timeout=120):
        return subprocess.run([os.path.join(BIN, "spindle-local"), *args, "--dir", self.dir],
                              check=True, capture_output=True, text=True, timeout=timeout)

    def up(self):
        try:
            self.local("up")
        except subprocess.CalledProcessError as e:
            print(e.stdout, e.stderr)
            self.dump_logs()
            raise
        self.conf = {}
        with open(os.path.join(self.dir, "storpool.conf")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    break
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    self.conf[k] = v
        return self

    def down(self):
        self.local("down")

    def cleanup(self):
        try:
            self.down()
        finally:
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        logdir = os.path.join(self.dir, "log")
        for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
            with open(os.path.join(logdir, name), errors="replace") as f:
                tail = f.read()[-3000:]
            print(f"--- {name} ---\n{tail}")

    @property
    def nbd_socket(self):
        return os.path.join(self.dir, "nbd.sock")

    def nbd_uri(self, export):
        return f"nbd+unix:///{export}?socket={self.nbd_socket}"

    def api(self, method, path, body=None, timeout=30):
        host = self.conf.get("SP_API_HTTP_HOST", "127.0.0.1")
        url = f"http://{host}:{self.conf['SP_API_HTTP_PORT']}{path}"
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Storpool v1:{self.conf['SP_AUTH_TOKEN']}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                reply = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, json.loads(e.read()).get("error")) from None
        if "error" in reply:
            raise ApiError(200, reply["error"])
        return reply["data"]

    def get(self, path):
        return self.api("GET", "/ctrl/1.0/" + path)

    def post(self, path, body=None):
        return self.api("POST", "/ctrl/1.0/" + path, body)


def wait_until(what, fn, timeout_s=30.0, interval_s=0.1):
    """Polls fn() until it returns a truthy value; fails after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval_s)
    raise TimeoutError(f"timed out waiting for {what}: {last}")
