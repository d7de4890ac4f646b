#include "api/errors.h"

#include <nlohmann/json.hpp>

namespace berth::api {

http::response error_response(const error& e) {
  const auto& row = info(e.code);
  // podman, skopeo, buildah and docker print `code: message` and never `detail`: what the user must
  // know (the repository, the rule, the command that fixes it) goes in the message. `detail` keeps
  // the same text for clients that read it.
  nlohmann::json entry = {{"code", row.wire}, {"message", e.detail.empty() ? row.message : e.detail}};
  if (!e.detail.empty()) entry["detail"] = e.detail;
  http::response res;
  res.status = static_cast<unsigned>(e.http_status());
  res.headers.set(http::beast::http::field::content_type, "application/json");
  // A detail may quote the request (a reference, a name), whose bytes need not be UTF-8: they are
  // replaced (U+FFFD) rather than let dump() throw, which turned a 4xx into a bare 500.
  res.body = nlohmann::json{{"errors", nlohmann::json::array({std::move(entry)})}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  return res;
}

}  // namespace berth::api
