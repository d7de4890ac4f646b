"""HTTP/1.1 at the byte level, through raw sockets: message framing (RFC 9112), the deadline on a
request body that stops arriving, the connection caps, bytes that are not UTF-8, and Range (RFC 9110).

No test waits a fixed time: each waits for what the server does (an answer, a close) with a bound."""
import socket
import time

import pytest

from e2eauth import basic
from ociclient import OCTET, Client, digest_of, path_of, random_bytes, with_query
from test_server import wait_for_log

NAME = "http/framing"
AUTH = basic()
WAIT = 15  # seconds: the bound on every wait for the server


def connect(registry, source="127.0.0.1"):
    host, port = registry.host.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=WAIT, source_address=(source, 0))


def request_bytes(method, target, headers=(), body=b"", host=True):
    """A request exactly as given: `headers` is a list of (name, value) sent in order, nothing added
    but Host (unless host=False)."""
    head = [f"{method} {target} HTTP/1.1".encode("latin-1")]
    if host:
        head.append(b"Host: registry")
    for name, value in headers:
        head.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def read_answer(sock, pending=b""):
    """Reads one response (Content-Length framed). Returns (Answer, bytes read past it)."""
    data = pending
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection closed before a response; got {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("the connection closed inside a response body")
        rest += chunk
    return Answer(status, headers, rest[:length]), rest[length:]


def read_until_closed(sock, timeout=WAIT):
    """Everything the server sends until it closes the connection; fails when it does not close it
    within `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        pytest.fail(f"the server did not close the connection within {timeout} s (got {data!r})")


def exchange(registry, raw, source="127.0.0.1"):
    """Sends `raw` on a fresh connection; returns (first answer, everything after it until the close)."""
    with connect(registry, source) as s:
        s.sendall(raw)
        answer, rest = read_answer(s)
        return answer, rest + read_until_closed(s)


def start_with(make_registry, tmp_path, limits):
    config = tmp_path / "berth.yml"
    config.write_text("limits:\n" + "".join(f"  {k}: {v}\n" for k, v in limits.items()))
    return make_registry(extra_args=["--config", str(config)])


# ---- item 1: a body that stops arriving ------------------------------------------------------------

def test_a_token_request_whose_body_never_comes_is_closed_after_the_idle_time(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"body_idle_seconds": 1})
    with connect(registry) as s:
        s.sendall(request_bytes("POST", "/token", [("Content-Type", "application/x-www-form-urlencoded"),
                                                   ("Content-Length", "100")]))
        started = time.monotonic()
        data = read_until_closed(s)
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"Connection: close" in data, data
    assert waited >= 0.9, "closed before the idle time"


def test_a_body_that_keeps_trickling_is_not_cut(make_registry, tmp_path):
    """The deadline tracks progress: it is on each wait for bytes, not on the whole body."""
    registry = start_with(make_registry, tmp_path, {"body_idle_seconds": 1})
    oci = Client(registry)
    location = oci.start_upload(NAME)
    data = random_bytes(3000)
    with connect(registry) as s:
        s.sendall(request_bytes("PATCH", path_of(location), [("Authorization", AUTH), ("Content-Type", OCTET),
                                                              ("Content-Length", str(len(data)))]))
        # A slow client: 3000 bytes over about 1.5 s, each pause far below the idle time, their sum
        # above it. The sleeps are the client's pace (what is under test), not a synchronisation.
        deadline = time.monotonic() + 1.5
        for i in range(0, len(data), 100):
            s.sendall(data[i:i + 100])
            time.sleep(max(0.0, min(0.05, deadline - time.monotonic())))
        answer, _ = read_answer(s)
    assert answer.status == 202, answer
    assert answer.header("Range") == f"0-{len(data) - 1}"


def test_a_stalled_patch_releases_its_upload_for_a_retry_on_a_new_connection(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"body_idle_seconds": 1})
    oci = Client(registry)
    blob = random_bytes(1 << 20)
    sent = 100 * 1024
    location = oci.start_upload(NAME)

    stalled = connect(registry)
    stalled.sendall(request_bytes("PATCH", path_of(location), [("Authorization", AUTH), ("Content-Type", OCTET),
                                                                ("Content-Length", str(len(blob)))]))
    stalled.sendall(blob[:sent])
    # The client stalls. The server gives up on the body, answers and closes.
    data = read_until_closed(stalled)
    stalled.close()
    assert data.startswith(b"HTTP/1.1 408 "), data

    # The upload is free again (not 409) and kept the bytes that did arrive.
    status = oci.get(location)
    assert status.status == 204, status
    assert status.header("Range") == f"0-{sent - 1}"
    resumed = oci.patch(status.header("Location"), blob[sent:],
                        headers={"Content-Type": OCTET, "Content-Range": f"{sent}-{len(blob) - 1}"})
    assert resumed.status == 202, resumed
    done = oci.put(with_query(resumed.header("Location"), digest=digest_of(blob)), b"")
    assert done.status == 201, done
    assert oci.get(f"/v2/{NAME}/blobs/{digest_of(blob)}").body == blob


def test_a_client_that_stops_reading_a_blob_is_cut_off(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"body_idle_seconds": 1})
    oci = Client(registry)
    data = random_bytes(32 << 20)  # far more than the socket buffers between us hold
    oci.push_blob(NAME, data)
    host, port = registry.host.rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(WAIT)
        s.connect((host, int(port)))
        s.sendall(request_bytes("GET", f"/v2/{NAME}/blobs/{digest_of(data)}", [("Authorization", AUTH)]))
        wait_for_log(registry, "in the middle of a message; closing")
        received = read_until_closed(s)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < len(data), "the server kept the connection for a client that read nothing"


# ---- item 1: connection caps -----------------------------------------------------------------------

def test_past_the_per_address_cap_a_connection_gets_429_and_others_are_served(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"max_connections": 8, "max_connections_per_address": 2})
    holders = [connect(registry) for _ in range(2)]  # silent: counted from the accept on
    try:
        answer, _ = exchange(registry, request_bytes("GET", "/v2/", [("Authorization", AUTH)]))
        assert answer.status == 429, answer
        assert answer.header("Retry-After"), answer
        assert answer.header("Connection") == "close"
        # Another address is served.
        other, _ = exchange(registry, request_bytes("GET", "/v2/", [("Authorization", AUTH), ("Connection", "close")]),
                            source="127.0.0.2")
        assert other.status == 200, other
    finally:
        for h in holders:
            h.close()


def test_past_the_total_cap_a_connection_gets_503_with_retry_after(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"max_connections": 4, "max_connections_per_address": 2})
    holders = [connect(registry, source) for source in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2")]
    try:
        started = time.monotonic()
        answer, _ = exchange(registry, request_bytes("GET", "/v2/", [("Authorization", AUTH)]), source="127.0.0.3")
        assert answer.status == 503, answer
        assert answer.header("Retry-After"), answer
        assert time.monotonic() - started < 5, "answered at once, not after a timeout"
    finally:
        for h in holders:
            h.close()


def test_at_the_total_cap_an_idle_keep_alive_connection_makes_room(make_registry, tmp_path):
    registry = start_with(make_registry, tmp_path, {"max_connections": 2, "max_connections_per_address": 2})
    idle = connect(registry)
    idle.sendall(request_bytes("GET", "/v2/", [("Authorization", AUTH)]))
    first, _ = read_answer(idle)
    assert first.status == 200
    busy = connect(registry)  # a new connection that has not sent its request: not idle
    try:
        # The server may not have seen `idle` go back to waiting yet: until it has, a new connection
        # is turned away (503, or closed while the previous 503 is still in flight). Try again.
        deadline = time.monotonic() + WAIT
        while True:
            with connect(registry, "127.0.0.2") as s:
                s.sendall(request_bytes("GET", "/v2/", [("Authorization", AUTH), ("Connection", "close")]))
                raw = read_until_closed(s)
            if not (raw == b"" or raw.startswith(b"HTTP/1.1 503 ")) or time.monotonic() > deadline:
                break
        assert raw.startswith(b"HTTP/1.1 200 "), raw
        assert read_until_closed(idle) == b"", "the idle keep-alive connection was closed to make room"
    finally:
        idle.close()
        busy.close()


# ---- item 2: framing -------------------------------------------------------------------------------

SMUGGLED = b"GET /v2/_catalog HTTP/1.1\r\nHost: registry\r\nAuthorization: " + AUTH.encode() + b"\r\n\r\n"


@pytest.mark.parametrize("codings, status", [
    (["xchunked"], 400),
    (["chunked, identity"], 400),
    (["identity"], 400),
    (["chunked", "chunked"], 400),
    (["gzip, chunked"], 501),
    (["gzip", "chunked"], 501),
])
def test_a_transfer_coding_other_than_chunked_is_refused_and_the_connection_closed(registry, codings, status):
    headers = [("Authorization", AUTH)] + [("Transfer-Encoding", c) for c in codings]
    answer, after = exchange(registry, request_bytes("POST", f"/v2/{NAME}/blobs/uploads/", headers, SMUGGLED))
    assert answer.status == status, answer
    assert answer.header("Connection") == "close"
    assert after == b"", "the body was run as a second request"


@pytest.mark.parametrize("headers", [
    [("Content-Length", str(len(SMUGGLED))), ("Transfer-Encoding", "chunked")],
    [("Transfer-Encoding", "chunked"), ("Content-Length", str(len(SMUGGLED)))],
    [("Transfer-Encoding", "identity"), ("Content-Length", str(len(SMUGGLED)))],
    [("Transfer-Encoding", "xchunked"), ("Content-Length", str(len(SMUGGLED)))],
])
def test_content_length_with_transfer_encoding_is_refused(registry, headers):
    answer, after = exchange(registry, request_bytes("POST", f"/v2/{NAME}/blobs/uploads/",
                                                     [("Authorization", AUTH), *headers], SMUGGLED))
    assert answer.status == 400, answer
    assert after == b""


def test_a_request_without_host_is_400(registry):
    answer, _ = exchange(registry, request_bytes("GET", "/v2/", [("Authorization", AUTH)], host=False))
    assert answer.status == 400, answer
    assert answer.header("Connection") == "close"
    # HTTP/1.0 has no Host requirement.
    with connect(registry) as s:
        s.sendall(b"GET /v2/ HTTP/1.0\r\nAuthorization: " + AUTH.encode() + b"\r\n\r\n")
        assert read_answer(s)[0].status == 200


def test_two_host_fields_are_400(registry):
    answer, _ = exchange(registry, request_bytes("GET", "/v2/", [("Authorization", AUTH), ("Host", "other")]))
    assert answer.status == 400, answer


def test_an_obsolete_folded_header_line_is_400(registry):
    raw = request_bytes("GET", "/v2/", [("Authorization", AUTH), ("X-Folded", "first\r\n second")])
    answer, _ = exchange(registry, raw)
    assert answer.status == 400, answer
    assert answer.header("Connection") == "close"


def test_a_plain_request_still_keeps_the_connection(registry):
    with connect(registry) as s:
        s.sendall(request_bytes("GET", "/v2/", [("Authorization", AUTH)]) * 2)
        first, rest = read_answer(s)
        second, _ = read_answer(s, rest)
    assert (first.status, second.status) == (200, 200)


# ---- item 4: bytes that are not UTF-8 ----------------------------------------------------------------

def assert_envelope(answer, status, code):
    import json
    assert answer.status == status, answer
    assert answer.header("Content-Type").startswith("application/json"), answer
    doc = json.loads(answer.body)
    assert doc["errors"][0]["code"] == code, doc


@pytest.mark.parametrize("method, target, status, code", [
    ("GET", b"/v2/probe/names/manifests/\xff\xfe", 404, "MANIFEST_UNKNOWN"),
    ("HEAD", b"/v2/probe/names/manifests/\xff\xfe", 404, None),
    ("PUT", b"/v2/probe/names/manifests/\xff\xfe", 400, "TAG_INVALID"),
    ("DELETE", b"/v2/probe/names/manifests/\xff\xfe", 400, "TAG_INVALID"),
    ("GET", b"/v2/\xff\xfe/manifests/latest", 400, "NAME_INVALID"),
    ("GET", b"/v2/probe/names/blobs/sha256:\xff\xfe", 400, "DIGEST_INVALID"),
    ("GET", b"/v2/probe/names/blobs/uploads/\xff\xfe", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("GET", b"/v2/probe/names/tags/list?last=\xff\xfe", 404, "NAME_UNKNOWN"),
    ("DELETE", b"/api/v1/users/\xff\xfe", 404, "UNSUPPORTED"),
])
def test_bytes_that_are_not_utf8_get_the_right_4xx_and_keep_the_connection(registry, method, target, status, code):
    head = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: registry\r\nAuthorization: " + AUTH.encode() + \
        b"\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 0\r\n\r\n"
    with connect(registry) as s:
        s.sendall(head + request_bytes("GET", "/v2/", [("Authorization", AUTH)]))
        answer, rest = read_answer(s) if method != "HEAD" else read_head_answer(s)
        if code:
            assert_envelope(answer, status, code)
        else:
            assert answer.status == status, answer
        after, _ = read_answer(s, rest)
        assert after.status == 200, "the connection stays usable"


def read_head_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    return Answer(int(head.split(b" ")[1]), {}, b""), rest


# ---- item 5: Range ---------------------------------------------------------------------------------

@pytest.fixture
def blob(registry):
    data = random_bytes(1000)
    oci = Client(registry)
    oci.push_blob(NAME, data)
    return oci, f"/v2/{NAME}/blobs/{digest_of(data)}", data


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "items=0-5", "bytes=5-1", "bytes=abc", "bytes 0-5"])
def test_a_range_the_server_does_not_serve_is_ignored(blob, value):
    oci, url, data = blob
    r = oci.get(url, headers={"Range": value})
    assert r.status == 200, r
    assert r.body == data
    assert r.header("Content-Range") is None


def test_a_single_byte_range_is_still_206_and_an_unsatisfiable_one_416(blob):
    oci, url, data = blob
    r = oci.get(url, headers={"Range": "bytes=5-9"})
    assert r.status == 206, r
    assert r.body == data[5:10]
    assert r.header("Content-Range") == f"bytes 5-9/{len(data)}"
    r = oci.get(url, headers={"Range": "bytes=1000-"})
    assert r.status == 416, r
    assert r.header("Content-Range") == f"bytes */{len(data)}"
