#include "api/errors.h"

#include <nlohmann/json.hpp>

namespace berth::api {

http::response error_response(const error& e) {
  const auto& row = info(e.code);
  nlohmann::json entry = {{"code", row.wire}, {"message", row.message}};
  if (!e.detail.empty()) entry["detail"] = e.detail;
  http::response res;
  res.status = static_cast<unsigned>(e.http_status());
  res.headers.set(http::beast::http::field::content_type, "application/json");
  res.body = nlohmann::json{{"errors", nlohmann::json::array({std::move(entry)})}}.dump();
  return res;
}

}  // namespace berth::api
