// AWS Signature Version 4 for S3: the Authorization header of a request, and presigned URLs (the
// same signature carried in the query). The signer works on a description of the request (method,
// unencoded path and query, headers) and returns strings; it does no I/O.
//
// S3's flavour: the path is URI-encoded once (other AWS services encode it twice) and never
// normalised; query parameters are encoded and sorted; the payload hash is the hex SHA-256 of the
// body or UNSIGNED-PAYLOAD. The query the client sends is canonical_query() of the same parameters,
// so what is signed is byte for byte what is sent.
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::s3 {

// The secret is used to sign and never appears in a returned string, a URL or an error.
struct credentials {
  std::string access_key;
  std::string secret_key;
};

// Who the request is for: region and service of the credential scope.
struct scope {
  std::string region = "us-east-1";
  std::string service = "s3";
};

using params = std::vector<std::pair<std::string, std::string>>;  // (name, value), unencoded

struct request_to_sign {
  std::string method;
  std::string path;    // unencoded, starting with '/': "/bucket/some key"
  params query;        // unencoded
  params headers;      // the headers to sign, as sent; must include Host (and X-Amz-Date for header auth)
  std::string payload_hash;  // hex SHA-256 of the body, or kUnsignedPayload
};

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// RFC 3986 percent-encoding of everything but the unreserved characters (A-Z a-z 0-9 - . _ ~), and
// but '/' when `keep_slash` (paths).
std::string uri_encode(std::string_view text, bool keep_slash = false);

// "name=value&..." with names and values encoded, sorted by name then value; "" for no parameters.
std::string canonical_query(const params& query);

// "20150830T123600Z", the X-Amz-Date form of `time`.
std::string amz_date(std::chrono::system_clock::time_point time);

// The hex SHA-256 of `bytes` (for payload hashes).
std::string sha256_hex(std::string_view bytes);

// The steps, exposed so tests can check each against the AWS test suite.
std::string canonical_request(const request_to_sign& request);
std::string string_to_sign(std::string_view date, const scope& scope, std::string_view canonical_request);
std::string signature(std::string_view secret_key, std::string_view date, const scope& scope,
                      std::string_view string_to_sign);

// The Authorization header value for `request`, signed at `date` (which must equal its X-Amz-Date).
std::string authorization(const credentials& creds, const scope& scope, std::string_view date,
                          const request_to_sign& request);

// The query string of a presigned request: request.query plus the X-Amz-* parameters and the
// signature, canonical (encoded and sorted). Valid for `expires` after `date`.
// REQUIRES: request.headers has Host and no X-Amz-Date (the date travels in the query).
std::string presigned_query(const credentials& creds, const scope& scope, std::string_view date,
                            std::chrono::seconds expires, request_to_sign request);

}  // namespace berth::s3
