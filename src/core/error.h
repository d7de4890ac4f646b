// The error model of Berth: one enum of OCI error codes (plus a few internal ones), one table that
// gives each its wire string, default message and HTTP status, and result<T> = std::expected<T, error>
// for every operation that can fail in an expected way. Exceptions are kept for start-up errors and
// bugs. The `detail` of an error is sent to clients, so it never carries backend messages: those
// are logged where they happen.
#pragma once

#include <chrono>
#include <expected>
#include <string>
#include <string_view>

namespace berth {

enum class errc {
  // OCI distribution-spec codes.
  blob_unknown,
  blob_upload_invalid,
  blob_upload_unknown,
  digest_invalid,
  manifest_blob_unknown,
  manifest_invalid,
  manifest_unknown,
  name_invalid,
  name_unknown,
  size_invalid,
  unauthorized,
  denied,
  unsupported,
  too_many_requests,
  // Codes Distribution adds and clients know.
  tag_invalid,
  range_invalid,         // 416: upload chunk out of order, unsatisfiable Range
  manifest_too_large,    // 413 with MANIFEST_INVALID... kept apart for the status
  pagination_invalid,
  method_not_allowed,
  upload_busy,           // 409 BLOB_UPLOAD_INVALID: another request is writing to the upload
  // HTTP: the request body stopped arriving (the server's deadline, then the connection closes).
  request_timeout,
  // Internal: the client sees UNKNOWN / UNAVAILABLE, never the cause.
  internal,
  unavailable,
};

struct error_info {
  std::string_view wire;     // e.g. "BLOB_UNKNOWN"
  std::string_view message;  // the spec's message for the code
  int status;                // default HTTP status
};

// Returns the table row for `code`. Never fails.
const error_info& info(errc code);

struct error {
  errc code = errc::internal;
  std::string detail;  // sent to the client: never a backend message, never a secret
  int status = 0;      // 0: the table's status for `code`
  std::chrono::seconds retry_after{0};  // when the client may try again (Retry-After); 0: not said

  int http_status() const { return status != 0 ? status : info(code).status; }
};

template <class T>
using result = std::expected<T, error>;

inline std::unexpected<error> fail(errc code, std::string detail = {}, int status = 0) {
  return std::unexpected(error{code, std::move(detail), status});
}

}  // namespace berth
