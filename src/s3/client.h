// A blocking S3 client for one bucket: objects (put, ranged get, head, delete, copy), multipart
// uploads, listings, presigned GET URLs. Requests are signed with SigV4 (s3/sigv4.h) and sent with
// libcurl (s3/transport.h): connections are reused, every call has a deadline (config.timeout, all
// retries included), and 5xx, throttling and network failures are retried with backoff.
//
// Streaming, piece by piece: put() can pull its body from a source and get() pushes the object
// into a sink, both on the calling thread, so a caller can bridge them to a coroutine with a
// queue. A large upload is driven as a multipart upload, one part per call (every part but the last
// at least 5 MiB); a long download as ranged get()s, each within the deadline.
//
// ETags come back normalised, always in double quotes (RGW sends some bare, and Ceph 16's leaves
// the one of a completed multipart upload empty: the client then asks for it with a HEAD).
// Errors are s3::error (s3/error.h); their messages never carry credentials.
// Thread-safety: every method may be called from any number of threads at once. Every method
// blocks: call them from a blocking pool, never on an I/O thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "s3/error.h"
#include "s3/sigv4.h"
#include "s3/transport.h"

namespace berth::s3 {

struct config {
  std::string endpoint;  // "http(s)://host[:port]", no path
  std::string bucket;
  std::string region = "us-east-1";
  credentials creds;
  bool virtual_hosted = false;  // https://bucket.host/key rather than https://host/bucket/key
  transport_options transport;
};

struct object_info {
  std::uint64_t size = 0;  // of the whole object, even for a ranged get
  std::string etag;
};

// Bytes [offset, offset + length) of an object.
struct byte_range {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // REQUIRES: > 0
};

struct part {
  int number = 0;
  std::string etag;
  std::uint64_t size = 0;  // filled by list_parts()
};

struct listing {
  struct entry {
    std::string key;
    std::uint64_t size = 0;
    std::string etag;
    std::chrono::system_clock::time_point last_modified;  // to the second
  };
  std::vector<entry> objects;
  std::vector<std::string> prefixes;  // common prefixes, when a delimiter was given
  std::string next_token;             // "" when this is the last page
};

// An incomplete multipart upload, as ListMultipartUploads lists it.
struct multipart_upload {
  std::string key;
  std::string upload_id;
  std::chrono::system_clock::time_point initiated;  // to the second
};

// `etag` in double quotes, whitespace trimmed.
std::string normalize_etag(std::string_view etag);

// An S3 timestamp ("2026-11-30T13:03:49.000Z", ISO 8601 in UTC as listings give LastModified), to
// the second; nullopt when `text` is not one.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

class client {
 public:
  explicit client(config cfg);

  // Creates the bucket. Succeeds if this account already owns it.
  result<void> create_bucket();

  // Stores `body` as `key`; returns its ETag.
  result<std::string> put(std::string_view key, std::string_view body);
  // Stores `size` bytes pulled from `source` as `key`; returns its ETag. Sent with an unsigned
  // payload; retried only while nothing has been pulled.
  result<std::string> put(std::string_view key, std::uint64_t size, const body_source& source);

  // Pushes the object (or `range` of it) into `sink`. Fails with not_found, range_invalid, aborted
  // (the sink returned false), or the transport's errors.
  result<object_info> get(std::string_view key, const body_sink& sink, std::optional<byte_range> range = {});
  result<object_info> head(std::string_view key);
  // Deletes `key`. Succeeds when there was no such key (S3 semantics).
  result<void> remove(std::string_view key);
  // Copies `from` to `to` within the bucket, server side; returns the new ETag.
  result<std::string> copy(std::string_view from, std::string_view to);

  // Multipart uploads. create_multipart returns the upload id.
  result<std::string> create_multipart(std::string_view key);
  // Returns the part's ETag. Part numbers are 1..10000.
  result<std::string> upload_part(std::string_view key, std::string_view upload_id, int number, std::string_view body);
  // Copies the whole object `source` (at most 5 GiB) into part `number`, server side: the bytes
  // never pass through the caller. Returns the part's ETag.
  result<std::string> upload_part_copy(std::string_view key, std::string_view upload_id, int number,
                                       std::string_view source);
  // REQUIRES: `parts` in ascending number order. Returns the object's ETag.
  result<std::string> complete_multipart(std::string_view key, std::string_view upload_id,
                                         const std::vector<part>& parts);
  result<void> abort_multipart(std::string_view key, std::string_view upload_id);
  // Every part uploaded so far, in number order (follows the pages itself).
  result<std::vector<part>> list_parts(std::string_view key, std::string_view upload_id);
  // Every multipart upload begun and neither completed nor aborted, of keys under `prefix`
  // (ListMultipartUploads; follows the pages itself).
  result<std::vector<multipart_upload>> list_multipart(std::string_view prefix);

  // One page of ListObjectsV2: keys under `prefix` after `token` (from the previous page's next_token).
  result<listing> list(std::string_view prefix, std::string_view token = {}, std::string_view delimiter = {},
                       int max_keys = 1000);

  // A URL anyone can GET `key` with, until `expires` after `now` (at most 7 days).
  std::string presign_get(std::string_view key, std::chrono::seconds expires,
                          std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

  const transport& http() const { return transport_; }

 private:
  struct target {
    std::string url;
    std::string host;
    std::string path;  // unencoded, for signing
  };
  target locate(std::string_view key, const params& query) const;
  // Signs and sends one request. `extra` headers are signed too; `unsigned_headers` (Range) are not.
  result<http_response> send(std::string_view method, std::string_view key, const params& query,
                             http_request request, params extra = {}, std::vector<std::string> unsigned_headers = {});

  config cfg_;
  std::string scheme_;     // "http" or "https"
  std::string authority_;  // host[:port] of the endpoint
  scope scope_;
  transport transport_;
};

}  // namespace berth::s3
