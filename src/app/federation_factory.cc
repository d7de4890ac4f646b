#include "app/federation_factory.h"

#include <memory>

#include "policy/federation.h"

namespace berth::app {

policy::federation_verifier make_federation_verifier(const config& c) {
  if (c.federation.empty()) return {};
  auto fed = std::make_shared<const policy::federation>(c.federation);
  return [fed](std::string_view token) { return fed->verify(token); };
}

}  // namespace berth::app
