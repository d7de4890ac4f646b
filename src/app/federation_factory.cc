#include "app/federation_factory.h"

#include <memory>

#include "http/client.h"

namespace berth::app {

std::shared_ptr<const policy::federation> make_federation(const config& c) {
  if (c.federation.empty()) return nullptr;
  auto fetch = [](const std::string& url, const std::string& ca_file) {
    return http::https_get(url, http::client_options{.ca_file = ca_file});
  };
  return std::make_shared<const policy::federation>(c.federation, fetch);
}

policy::federation_verifier verifier_of(std::shared_ptr<const policy::federation> fed) {
  if (!fed) return {};
  return [fed](std::string_view token) { return fed->verify(token); };
}

}  // namespace berth::app
