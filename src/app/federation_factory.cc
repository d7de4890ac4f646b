#include "app/federation_factory.h"

#include <memory>

#include "http/client.h"
#include "policy/federation.h"

namespace berth::app {

policy::federation_verifier make_federation_verifier(const config& c) {
  if (c.federation.empty()) return {};
  auto fetch = [](const std::string& url, const std::string& ca_file) {
    return http::https_get(url, http::client_options{.ca_file = ca_file});
  };
  auto fed = std::make_shared<const policy::federation>(c.federation, fetch);
  return [fed](std::string_view token) { return fed->verify(token); };
}

}  // namespace berth::app
