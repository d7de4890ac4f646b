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

// The verifier of `fed` (empty when it is null).
policy::federation_verifier verifier_of(std::shared_ptr<const policy::federation> fed);

}  // namespace berth::app
