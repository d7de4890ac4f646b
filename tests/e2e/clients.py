"""Real OCI clients (skopeo, podman, buildah, containerd's ctr) and a tiny raw-HTTP client, isolated from
the machine.

`Clients(tmp_dir)` gives each test its own world: a private HOME (so the per-user policy.json and
registries.d win over /etc), its own registries.conf, auth file, storage.conf (vfs driver, graph root and
run root under tmp_dir) and containers.conf (cgroupfs, file events, tmp dir under tmp_dir). No configuration
is taken from /etc/containers except the read-only short-name aliases. One known leak: as root, all three
tools keep their blob-info cache in /var/lib/containers/cache and offer no flag to move it; it only holds
hints (which repository had which blob) that the tools verify with HEAD before use. The registry is plain HTTP on 127.0.0.1, so every command
that talks to it carries the tls flag (--tls-verify=false, or --src-/--dest-tls-verify=false for copies).

The raw-HTTP helpers open one connection per call, so they are safe to use from many threads at once.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from urllib.parse import urlsplit

import pytest

import images
from e2eauth import ADMIN_PASSWORD, ADMIN_USER, auth_json, basic
from images import sha256

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])

CLIENT_TIMEOUT = 120


class ClientError(AssertionError):
    pass


LOCAL_REGISTRY_RE = re.compile(r"(?:^|docker://|//)(127\.0\.0\.1:\d+)")


class Clients:
    """skopeo/podman/buildah runners confined to `root` (a fresh temp dir).

    With `credentials` (user, password) — the fixture admin by default — every 127.0.0.1:PORT registry
    named in a command's arguments gets those credentials in the auth file (REGISTRY_AUTH_FILE) before
    the command runs, so the tools authenticate exactly as they would after `login`. None: anonymous."""

    def __init__(self, root: str, credentials=(ADMIN_USER, ADMIN_PASSWORD)):
        self.root = root
        self.env = self._isolated_env(root)
        self.credentials = credentials
        self.auth_file = self.env["REGISTRY_AUTH_FILE"]

    def _grant_hosts(self, args):
        if not self.credentials:
            return
        hosts = set()
        for a in args:
            hosts.update(LOCAL_REGISTRY_RE.findall(str(a)))
        if not hosts:
            return
        with open(self.auth_file) as f:
            doc = json.load(f)
        auths = doc.setdefault("auths", {})
        missing = [h for h in hosts if h not in auths]
        if missing:
            auths.update(auth_json(missing, *self.credentials)["auths"])
            with open(self.auth_file, "w") as f:
                json.dump(doc, f)

    @staticmethod
    def _isolated_env(root: str) -> dict:
        home = os.path.join(root, "home")
        conf_dir = os.path.join(home, ".config", "containers")
        tmp = os.path.join(root, "tmp")
        registries_d = os.path.join(conf_dir, "registries.d")
        for d in (registries_d, tmp, os.path.join(root, "run")):
            os.makedirs(d, exist_ok=True)
        files = {
            "policy.json": json.dumps({"default": [{"type": "insecureAcceptAnything"}]}),
            "registries.conf": 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
            "auth.json": "{}",
            "storage.conf": (f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/storage"\n'
                             f'runroot = "{root}/run"\n'),
            # Root in a container without systemd: cgroupfs and file events are what work here.
            # Signatures (none are made) would go under root, not /var/lib/containers/sigstore.
            "registries.d/default.yaml": f"default-docker:\n  lookaside: file://{root}/sigstore\n",
            "containers.conf": (f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                                f'tmp_dir = "{tmp}"\n'),
        }
        paths = {}
        for name, text in files.items():
            paths[name] = os.path.join(conf_dir, name)
            with open(paths[name], "w") as f:
                f.write(text)
        return {
            **os.environ,
            "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "TMPDIR": tmp,
            "CONTAINERS_REGISTRIES_CONF": paths["registries.conf"],
            "REGISTRY_AUTH_FILE": paths["auth.json"],
            "CONTAINERS_STORAGE_CONF": paths["storage.conf"],
            "CONTAINERS_CONF": paths["containers.conf"],
        }

    def run(self, *cmd, check=True) -> subprocess.CompletedProcess:
        """Run a client; with check=True a non-zero exit fails the test with the client's stderr."""
        self._grant_hosts(cmd)
        proc = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        if check and proc.returncode != 0:
            raise ClientError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def skopeo(self, *args, check=True):
        return self.run("skopeo", *args, check=check)

    def podman(self, *args, check=True):
        return self.run("podman", *args, check=check)

    def buildah(self, *args, check=True):
        return self.run("buildah", *args, check=check)

    # Common skopeo verbs against a plain-HTTP registry.
    def copy_to(self, src: str, dest: str, *flags):
        return self.skopeo("copy", "--retry-times=0", "--dest-tls-verify=false", *flags, src, dest)

    def copy_from(self, src: str, dest: str, *flags):
        return self.skopeo("copy", "--retry-times=0", "--src-tls-verify=false", *flags, src, dest)

    def inspect_raw(self, ref: str) -> bytes:
        return self.skopeo("inspect", "--tls-verify=false", "--raw", ref).stdout.encode()

    def inspect(self, ref: str) -> dict:
        return json.loads(self.skopeo("inspect", "--tls-verify=false", ref).stdout)


class Containerd:
    """A containerd daemon of the test's own and its `ctr` (containerd needs root). Its root, state and
    socket live in a fresh short temp dir (a unix socket path must stay under 108 bytes); the CRI plugin
    is off. Images come in from OCI archives without unpacking, so no snapshotter is needed. stop()
    ends the daemon and removes the dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ctr-")
        self.address = os.path.join(self.dir, "containerd.sock")
        config = os.path.join(self.dir, "config.toml")
        with open(config, "w") as f:
            f.write(f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                    f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.address}"\n[ttrpc]\n  address = "{self.address}.ttrpc"\n')
        self.proc = subprocess.Popen(["containerd", "--config", config], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.log = []
        for line in self.proc.stdout:
            self.log.append(line)
            if "containerd successfully booted" in line:
                break
        else:
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise ClientError("containerd exited before serving:\n" + "".join(self.log))
        threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True).start()

    def ctr(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", self.address, *args], capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT)
        if check and proc.returncode != 0:
            raise ClientError(f"ctr {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc

    def import_image(self, image, name: str, tag: str):
        """Load an images.Image into containerd's store as `name:tag` (from an OCI archive)."""
        layout = os.path.join(self.dir, f"layout-{image.manifest.digest[7:19]}")
        images.write_oci_layout(layout, image, tag)
        archive = layout + ".tar"
        with tarfile.open(archive, "w") as tar:
            for entry in os.listdir(layout):
                tar.add(os.path.join(layout, entry), arcname=entry)
        self.ctr("images", "import", "--no-unpack", "--base-name", name, archive)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- raw HTTP -------------------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())


def request(url: str, method="GET", path="/", body=None, headers=None, timeout=30, auth=basic()) -> Response:
    """One HTTP exchange on a fresh connection. `url` is the registry base URL; `path` may be absolute.
    `auth` is the Authorization header (the fixture admin by default; None: anonymous)."""
    parts = urlsplit(path if path.startswith("http") else url + path)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        headers = dict(headers or {})
        if auth and not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = auth
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def expect(resp: Response, status: int, what: str) -> Response:
    if resp.status != status:
        raise AssertionError(f"{what}: expected {status}, got {resp.status}: {resp.body[:500]!r}")
    return resp


def push_blob(url: str, repo: str, data: bytes) -> str:
    """Monolithic upload (POST then PUT ?digest=); returns the digest. Fails the test unless 201."""
    digest = sha256(data)
    start = expect(request(url, "POST", f"/v2/{repo}/blobs/uploads/"), 202, "start upload")
    location = start.header("location")
    sep = "&" if "?" in location else "?"
    expect(request(url, "PUT", f"{location}{sep}digest={digest}", data,
                   {"Content-Type": "application/octet-stream"}), 201, f"put blob {digest}")
    return digest


def put_manifest(url: str, repo: str, ref: str, data: bytes, media_type: str) -> Response:
    return request(url, "PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})


def push_image(url: str, repo: str, image, tag: str):
    """Push an images.Image's blobs then its manifest under `tag`; returns the manifest PUT response."""
    for blob in image.blobs():
        push_blob(url, repo, blob.data)
    return put_manifest(url, repo, tag, image.manifest.data, image.manifest.media_type)


def get_manifest(url: str, repo: str, ref: str) -> Response:
    return request(url, "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})


def get_blob(url: str, repo: str, digest: str) -> Response:
    """GET a blob, following a redirect if the registry hands one out."""
    resp = request(url, "GET", f"/v2/{repo}/blobs/{digest}")
    if resp.status in (301, 302, 303, 307, 308):
        resp = request(url, "GET", resp.header("location"))
    return resp


def list_tags(url: str, repo: str) -> list:
    resp = expect(request(url, "GET", f"/v2/{repo}/tags/list"), 200, f"tags of {repo}")
    return json.loads(resp.body).get("tags") or []


# ---- pytest glue --------------------------------------------------------------------------------

def require(*tools):
    """Skip marker for tests that need client binaries this machine may lack."""
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


@pytest.fixture
def clients(tmp_path):
    """A fresh, isolated client world for one test (import this fixture into the test module)."""
    return Clients(str(tmp_path / "clients"))
