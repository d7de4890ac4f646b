// The composition root: the only place that names concrete backends. Builds the stores, the API and
// the HTTP server from a config, serves until SIGINT/SIGTERM, then shuts down gracefully.
#pragma once

#include "app/config.h"

namespace berth::app {

// Runs the registry. Returns the process exit code. Throws std::runtime_error on start-up errors
// (data directory not writable, address in use, bad TLS files).
int serve(const config& c);

}  // namespace berth::app
