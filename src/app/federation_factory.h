// Builds the federation verifier of a config (empty when the config trusts no issuer).
#pragma once

#include "app/config.h"
#include "policy/authenticator.h"

namespace berth::app {

// Throws std::runtime_error when an issuer's JWKS or a rule cannot be loaded.
policy::federation_verifier make_federation_verifier(const config& c);

}  // namespace berth::app
