// Berth's configuration: defaults, then the YAML file (--config), then command-line flags.
// Reference: README.md "Configuration".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "http/server.h"
#include "policy/authenticator.h"
#include "policy/federation_config.h"
#include "policy/policy.h"

namespace berth::app {

struct config {
  std::string listen = "127.0.0.1:5000";
  std::string data = "./berth-data";
  std::string log_level = "info";  // trace, debug, info, warn, error, off
  std::optional<http::tls_files> tls;
  bool trust_forwarded_headers = false;
  std::size_t manifest_max_bytes = 4 * 1024 * 1024;
  std::size_t max_page = 10000;
  int threads = 0;  // I/O threads; 0: one per core
  int shutdown_grace_seconds = 30;
  int upload_idle_hours = 24;  // an upload session that received nothing for this long is discarded
  int body_idle_seconds = 30;  // a body in or out that makes no progress for this long: the connection closes
  std::size_t max_connections = 0;              // 0: derived from RLIMIT_NOFILE (http::default_max_connections)
  std::size_t max_connections_per_address = 0;  // 0: a quarter of max_connections

  // auth:
  std::string service = "berth";        // the token service name
  int token_lifetime_seconds = 300;     // access tokens
  int refresh_token_lifetime_seconds = 7 * 86400;
  int failed_login_limit = 10;          // per source address and window; 0 disables
  int failed_login_window_seconds = 60;

  // namespaces:, default_namespace:, grants: (namespace grants are folded into policy.grants)
  policy::policy_config policy;
  // users: (config users; their password hashes are argon2id PHC strings)
  std::vector<policy::config_user> users;
  // federation:
  std::vector<policy::federation_issuer> federation;
};

// Reads the YAML file at `path` over the defaults. Throws std::runtime_error naming the file and the
// key when the file cannot be read, is not YAML, has an unknown key or a value of the wrong type.
config load_config(const std::string& path);

}  // namespace berth::app
