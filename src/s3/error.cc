#include "s3/error.h"

#include <fmt/format.h>

#include "s3/xml.h"

namespace berth::s3 {
namespace {

errc code_for(int status, std::string_view s3_code) {
  if (s3_code == "SlowDown" || s3_code == "Throttling" || status == 429) return errc::throttled;
  if (status == 404) return errc::not_found;
  if (status == 412) return errc::precondition_failed;
  if (status == 416) return errc::range_invalid;
  if (status == 401 || status == 403) return errc::denied;
  if (s3_code == "RequestTimeout") return errc::unavailable;  // a 400 that asks to be retried
  if (status >= 400 && status < 500) return errc::invalid;
  return errc::unavailable;
}

}  // namespace

error error_from_response(std::string_view what, int status, std::string_view body) {
  std::string s3_code = xml::text(body, "Code").value_or("");
  std::string detail = xml::text(body, "Message").value_or("");
  if (status == 200) status = 500;  // an <Error> sent with 200 (CompleteMultipartUpload, CopyObject)
  std::string message = fmt::format("{}: {}", what, status);
  if (!s3_code.empty()) message += " " + s3_code;
  if (!detail.empty()) message += " (" + detail + ")";
  return error{code_for(status, s3_code), status, std::move(s3_code), std::move(message)};
}

bool retryable(const error& e) { return e.code == errc::throttled || e.code == errc::unavailable; }

}  // namespace berth::s3
