// Builds the federation of a config (its keys fetched over HTTPS), and its verifier.
#pragma once

#include <memory>

#include "app/config.h"
#include "policy/authenticator.h"
#include "policy/federation.h"

namespace berth::app {

// Null when the config trusts no issuer. Throws std::runtime_error when an issuer's JWKS or a rule
// cannot be loaded.
std::shared_ptr<const policy::federation> make_federation(const config& c);

// The verifier of make_federation(c) (empty when the config trusts no issuer); throws as it does.
policy::federation_verifier make_federation_verifier(const config& c);

}  // namespace berth::app
