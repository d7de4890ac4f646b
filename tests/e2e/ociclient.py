"""A deliberately small OCI distribution client for the HTTP-level tests (tests/e2e/test_api_*.py).

It speaks raw HTTP through http.client, one connection per request, so a test decides every header
itself: Content-Length (or none), Transfer-Encoding: chunked, Content-Range, Accept. Nothing is
retried or followed. On top of that sit a few helpers to build blobs and manifests and to push them
the plain way (POST then PUT), so a test about, say, tags does not re-implement an upload.

Not thread-safe: use one Client per thread (it holds no connection between requests anyway).
"""
import hashlib
import http.client
import json
import os
import re
import urllib.parse

import pytest

from e2eauth import basic

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

OCTET = "application/octet-stream"
# Every manifest type, so registries that negotiate (Distribution) never convert or refuse.
ACCEPT_ALL = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])

EMPTY_BLOB = b"{}"  # the OCI "empty descriptor" content, always sha256:44136fa3...
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

SPEC_ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN",
    "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
    # Codes the conformance suite also accepts (kept from the Docker registry API).
    "MANIFEST_UNVERIFIED", "TAG_INVALID",
}


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_bytes(size):
    return os.urandom(size)


def descriptor(media_type, data, **extra):
    """The descriptor of `data` (a blob or a manifest's bytes)."""
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def to_json(document):
    """Manifest bytes, indented like most clients do; tests always keep these exact bytes."""
    return json.dumps(document, indent=2).encode()


def path_of(location):
    """The path and query of a Location or Link target, which may be absolute or relative."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def with_query(url, **params):
    """Append query parameters to a URL that may already carry some (upload locations often do)."""
    sep = "&" if "?" in url else "?"
    return url + sep + urllib.parse.urlencode(params)


LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(response):
    """The path of the rel="next" Link of a paginated response, or None."""
    header = response.header("Link")
    if not header:
        return None
    m = LINK_NEXT_RE.search(header)
    assert m, f"malformed Link header: {header!r}"
    return path_of(m.group(1))


class Response:
    def __init__(self, status, headers, body, truncated=False):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive .get(), .get_all()
        self.body = body
        self.truncated = truncated  # the server sent less than its Content-Length announced

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        return json.loads(self.body)

    def error_codes(self):
        """The codes of an OCI error envelope, asserting the envelope's shape on the way."""
        ctype = self.header("Content-Type") or ""
        assert "json" in ctype, f"error body is not JSON (Content-Type {ctype!r}): {self.body[:200]!r}"
        doc = self.json()
        assert isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"], doc
        for err in doc["errors"]:
            assert isinstance(err.get("code"), str) and re.fullmatch(r"[A-Z_]+", err["code"]), err
            assert "message" not in err or isinstance(err["message"], str), err
        return [err["code"] for err in doc["errors"]]

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.body[:300]!r}>"


def assert_error(response, status, *codes):
    """`response` has status `status` (an int or a tuple of allowed ints) and an OCI error envelope
    whose first code is one of `codes`."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status in allowed, response
    found = response.error_codes()
    if codes:
        assert found[0] in codes, f"expected one of {codes}, got {found}"
    return found


class Client:
    """`auth` is the Authorization header sent with every request unless a request gives its own
    (None: anonymous). The default is the fixture registry's admin."""

    def __init__(self, registry, timeout=15, auth=basic()):
        self.host = registry.host
        self.timeout = timeout
        self.auth = auth

    # ---- raw HTTP -------------------------------------------------------------------------------

    def request(self, method, url, body=None, headers=None, chunks=None, content_length=True):
        """One request on a fresh connection.

        body: bytes sent with a Content-Length of their size (unless headers give one, or
        content_length is False). chunks: an iterable of bytes sent with Transfer-Encoding: chunked
        instead. Headers are sent exactly as given otherwise.
        """
        headers = dict(headers or {})
        names = {k.lower() for k in headers}
        if chunks is not None:
            headers["Transfer-Encoding"] = "chunked"
        elif body is not None and content_length and "content-length" not in names:
            headers["Content-Length"] = str(len(body))
        conn = self.begin(method, url, headers)
        try:
            if chunks is not None:
                for chunk in chunks:
                    if chunk:
                        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            elif body:
                conn.send(body)
            resp = conn.getresponse()
            try:
                body = resp.read()
            except http.client.IncompleteRead as e:
                # A body shorter than its Content-Length: keep what came; tests about framing
                # check Response.truncated.
                return Response(resp.status, resp.headers, e.partial, truncated=True)
            return Response(resp.status, resp.headers, body)
        finally:
            conn.close()

    def begin(self, method, url, headers):
        """Opens a fresh connection and sends the request line and `headers`; the caller sends the
        body (if any) with conn.send, reads conn.getresponse() and closes the connection."""
        conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
        conn.putrequest(method, path_of(url), skip_accept_encoding=True)
        if self.auth and "authorization" not in {k.lower() for k in headers}:
            headers = {**headers, "Authorization": self.auth}
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        return conn

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def head(self, url, **kw):
        return self.request("HEAD", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def post(self, url, body=b"", **kw):
        return self.request("POST", url, body=body, **kw)

    def put(self, url, body=b"", **kw):
        return self.request("PUT", url, body=body, **kw)

    def patch(self, url, body=b"", **kw):
        return self.request("PATCH", url, body=body, **kw)

    # ---- blobs ----------------------------------------------------------------------------------

    def start_upload(self, name):
        """POST /v2/<name>/blobs/uploads/ and return the session's Location (asserted present)."""
        r = self.post(f"/v2/{name}/blobs/uploads/", b"")
        assert r.status == 202, r
        assert r.header("Location"), r
        return r.header("Location")

    def push_blob(self, name, data):
        """Push `data` the POST-then-PUT way; returns its digest."""
        location = self.start_upload(name)
        dgst = digest_of(data)
        r = self.put(with_query(location, digest=dgst), data,
                     headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r
        return dgst

    def blob_exists(self, name, dgst):
        return self.head(f"/v2/{name}/blobs/{dgst}").status == 200

    # ---- manifests ------------------------------------------------------------------------------

    def put_manifest(self, name, reference, data, media_type=OCI_MANIFEST):
        return self.put(f"/v2/{name}/manifests/{reference}", data, headers={"Content-Type": media_type})

    def push_manifest(self, name, reference, data, media_type=OCI_MANIFEST):
        r = self.put_manifest(name, reference, data, media_type)
        assert r.status == 201, r
        return r

    def push_image(self, name, tag=None, layers=1, config=None, manifest_type=OCI_MANIFEST, **fields):
        """Push the blobs of a small image, then its manifest (by tag, or by digest if tag is None).

        Extra keyword fields (subject, artifactType, annotations) go into the manifest. Returns an
        Image with the exact bytes pushed.
        """
        docker = manifest_type == DOCKER_MANIFEST
        if config is None:
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "rootfs": {"type": "layers", "diff_ids": []},
                                 "author": random_bytes(8).hex()}).encode()
        config_type = fields.pop("config_type", DOCKER_CONFIG if docker else OCI_CONFIG)
        self.push_blob(name, config)
        layer_blobs = [random_bytes(64 + i) for i in range(layers)]
        for blob in layer_blobs:
            self.push_blob(name, blob)
        layer_type = DOCKER_LAYER if docker else OCI_LAYER
        manifest = {"schemaVersion": 2, "mediaType": manifest_type,
                    "config": descriptor(config_type, config),
                    "layers": [descriptor(layer_type, b) for b in layer_blobs], **fields}
        data = to_json(manifest)
        dgst = digest_of(data)
        response = self.push_manifest(name, tag or dgst, data, manifest_type)
        return Image(data, dgst, manifest_type, config, layer_blobs, response)

    def push_index(self, name, children, tag=None, media_type=OCI_INDEX, **fields):
        """Push an index (or Docker manifest list) over already-pushed `children` (Images)."""
        entries = [{**descriptor(c.media_type, c.data),
                    "platform": {"architecture": arch, "os": "linux"}}
                   for c, arch in zip(children, ["amd64", "arm64", "s390x", "ppc64le", "386"])]
        data = to_json({"schemaVersion": 2, "mediaType": media_type, "manifests": entries, **fields})
        dgst = digest_of(data)
        response = self.push_manifest(name, tag or dgst, data, media_type)
        return Image(data, dgst, media_type, None, [], response)

    def push_artifact(self, name, subject, artifact_type, annotations=None, blob=None):
        """Push an OCI 1.1 artifact (empty config, artifactType, one layer) referring to `subject`
        (an Image, or a descriptor dict for a subject that need not exist). Pushed by digest."""
        self.push_blob(name, EMPTY_BLOB)
        blob = blob if blob is not None else random_bytes(32)
        self.push_blob(name, blob)
        subject_desc = subject if isinstance(subject, dict) else descriptor(subject.media_type, subject.data)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                    "config": descriptor(OCI_EMPTY, EMPTY_BLOB),
                    "layers": [descriptor("application/octet-stream", blob)],
                    "subject": subject_desc}
        if annotations is not None:
            manifest["annotations"] = annotations
        data = to_json(manifest)
        dgst = digest_of(data)
        response = self.push_manifest(name, dgst, data, OCI_MANIFEST)
        return Image(data, dgst, OCI_MANIFEST, EMPTY_BLOB, [blob], response)

    def get_manifest(self, name, reference, method="GET"):
        return self.request(method, f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT_ALL})

    def tags(self, name):
        r = self.get(f"/v2/{name}/tags/list")
        assert r.status == 200, r
        return r.json().get("tags") or []


class Image:
    """What push_image/push_index/push_artifact sent: the manifest's exact bytes and its parts."""

    def __init__(self, data, digest, media_type, config, layers, response):
        self.data = data
        self.digest = digest
        self.media_type = media_type
        self.config = config
        self.layers = layers
        self.response = response  # the manifest PUT's response


@pytest.fixture
def oci(registry):
    """A Client on the fresh registry of the `registry` fixture (import this fixture by name)."""
    return Client(registry)
