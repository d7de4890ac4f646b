// The errors of the S3 client: a small enum a caller can act on, with the HTTP status, S3's error
// code and a message for the log. The message names the operation and the object ("GET
// bucket/key: 404 NoSuchKey ..."), never a credential or a signature. It is for logs only: a store
// maps the code to Berth's error table and sends clients nothing of it.
// Thread-safety: value types.
#pragma once

#include <expected>
#include <string>

namespace berth::s3 {

enum class errc {
  not_found,            // 404: NoSuchKey, NoSuchUpload, NoSuchBucket
  precondition_failed,  // 412
  range_invalid,        // 416: the Range is past the end
  denied,               // 401/403: bad credentials, signature, clock skew, permissions
  invalid,              // any other 4xx: the request was wrong (EntityTooSmall, InvalidPart, ...)
  throttled,            // 429 or SlowDown, still so after every retry
  unavailable,          // network failure, timeout, deadline, 5xx after every retry
  aborted,              // the caller's body source or sink stopped the transfer
};

struct error {
  errc code = errc::unavailable;
  int status = 0;        // HTTP status, 0 when no answer came
  std::string s3_code;   // "NoSuchKey", "" when the answer had no body
  std::string message;   // for the log
};

template <class T>
using result = std::expected<T, error>;

// The error an S3 answer with a non-2xx `status` (or a 200 whose body is an <Error> document)
// stands for. `body` may be empty (HEAD). `what` names the request ("GET bucket/key").
error error_from_response(std::string_view what, int status, std::string_view body);

// Whether a request that failed with `e` may succeed if sent again (5xx, throttling, network).
bool retryable(const error& e);

}  // namespace berth::s3
