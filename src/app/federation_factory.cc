#include "app/federation_factory.h"

#include <stdexcept>

namespace berth::app {

// Until the JWT verifier is built in, a config with `federation:` cannot start.
policy::federation_verifier make_federation_verifier(const config& c) {
  if (!c.federation.empty()) throw std::runtime_error("federation: this build has no JWT support yet");
  return {};
}

}  // namespace berth::app
