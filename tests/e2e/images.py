"""Test images generated offline, byte for byte reproducible: no network, no pulls.

An image is built in memory (layers as gzipped tars, an OCI config, an OCI manifest) and can be written
as an OCI image layout directory that skopeo/podman read with the `oci:` transport. A multi-arch image is
an OCI image index over several such images. Everything is deterministic (tar and gzip mtimes are 0), so
the same arguments always give the same digests, and different `files` always give different ones.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass
class Image:
    """One single-platform image: its manifest, config and layers, all as exact bytes."""
    manifest: Blob
    config: Blob
    layers: list
    platform: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self):
        return [self.config, *self.layers]


@dataclass
class Index:
    """A multi-platform image: an OCI image index over `images`."""
    manifest: Blob
    images: list

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self):
        return [b for img in self.images for b in [img.manifest, *img.blobs()]]


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def make_layer(files: dict) -> Blob:
    """A gzipped tar holding `files` ({path: bytes}), mode 0644, owned by root, mtime 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[path]))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return Blob(OCI_LAYER_GZIP, packed.getvalue())


def uncompressed_digest(layer: Blob) -> str:
    return sha256(gzip.decompress(layer.data))


def make_image(files: dict, arch="amd64", os_name="linux", extra_layers=()) -> Image:
    """An image whose first layer holds `files`; `extra_layers` ({path: bytes} each) are stacked on top."""
    layers = [make_layer(files), *(make_layer(f) for f in extra_layers)]
    config = Blob(OCI_CONFIG, canonical_json({
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [uncompressed_digest(l) for l in layers]},
    }))
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [l.descriptor() for l in layers],
    }))
    return Image(manifest, config, layers, {"architecture": arch, "os": os_name})


def make_index(images) -> Index:
    manifest = Blob(OCI_INDEX, canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [img.manifest.descriptor(platform=img.platform) for img in images],
    }))
    return Index(manifest, list(images))


def make_multiarch(name: str, arches=("amd64", "arm64", "ppc64le")) -> Index:
    """An index with one image per architecture, each with its own file content."""
    return make_index([make_image({f"{name}-{a}.txt": f"{name} for {a}\n".encode()}, arch=a) for a in arches])


def write_oci_layout(path: str, image, tag: str = "latest") -> str:
    """Write `image` (Image or Index) as an OCI layout at `path`; returns the skopeo reference `oci:path:tag`."""
    blob_dir = os.path.join(path, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    for blob in [image.manifest, *image.blobs()]:
        with open(os.path.join(blob_dir, blob.digest.split(":", 1)[1]), "wb") as f:
            f.write(blob.data)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {"schemaVersion": 2, "manifests": [
        image.manifest.descriptor(annotations={"org.opencontainers.image.ref.name": tag})]}
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump(index, f)
    return f"oci:{path}:{tag}"


def read_oci_layout(path: str, tag: str = "latest"):
    """Read back what skopeo wrote to `oci:path:tag`: (manifest bytes, {digest: blob bytes})."""
    with open(os.path.join(path, "index.json")) as f:
        index = json.load(f)
    (desc,) = [d for d in index["manifests"]
               if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    blobs = {}
    blob_dir = os.path.join(path, "blobs", "sha256")
    for name in os.listdir(blob_dir):
        with open(os.path.join(blob_dir, name), "rb") as f:
            blobs["sha256:" + name] = f.read()
    return blobs[desc["digest"]], blobs


def tar_rootfs(files: dict) -> bytes:
    """An uncompressed tar of `files`, as input for `podman import`."""
    return gzip.decompress(make_layer(files).data)
