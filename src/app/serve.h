// The composition root: opens the stores the config names (app/backends.h), builds the API and the
// HTTP server on them, serves until SIGINT/SIGTERM, then shuts down gracefully.
#pragma once

#include "app/config.h"

namespace berth::app {

// Runs the registry. Returns the process exit code. Throws std::runtime_error on start-up errors
// (data directory not writable, address in use, bad TLS files).
int serve(const config& c);

}  // namespace berth::app
