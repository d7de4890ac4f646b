"""buildah against the registry: build from scratch, push, and check with skopeo that what comes back out
is what buildah built (manifest digest, config, file content)."""
import gzip
import io
import json
import tarfile

import images
from clients import clients, require  # noqa: F401 (fixture)

pytestmark = require("buildah", "skopeo")


def file_in_layer(layer: bytes, path: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        return tar.extractfile(path).read()


def test_build_from_scratch_push_and_pull_back_with_skopeo(registry, clients, tmp_path):
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"built by buildah from scratch\n")
    ctr = clients.buildah("from", "scratch").stdout.strip()
    clients.buildah("copy", ctr, str(payload), "/data/payload.txt")
    clients.buildah("config", "--arch", "amd64", "--os", "linux", "--label", "e2e=buildah", ctr)
    image_id = clients.buildah("commit", "-q", ctr, "localhost/built:v1").stdout.strip()
    digest_file = tmp_path / "digest"
    clients.buildah("push", "--tls-verify=false", "--digestfile", str(digest_file),
                    "localhost/built:v1", f"docker://{registry.host}/e2e/built:v1")

    out = tmp_path / "pulled"
    clients.copy_from(f"docker://{registry.host}/e2e/built:v1", f"oci:{out}:v1")
    manifest_bytes, blobs = images.read_oci_layout(str(out), "v1")

    assert images.sha256(manifest_bytes) == digest_file.read_text().strip()
    manifest = json.loads(manifest_bytes)
    config = blobs[manifest["config"]["digest"]]
    assert images.sha256(config) == "sha256:" + image_id
    assert config == clients.skopeo("inspect", "--config", "--raw", "containers-storage:localhost/built:v1").stdout.encode()
    assert json.loads(config)["config"]["Labels"]["e2e"] == "buildah"
    (layer,) = manifest["layers"]
    assert file_in_layer(blobs[layer["digest"]], "data/payload.txt") == payload.read_bytes()
