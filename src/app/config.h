// Berth's configuration: defaults, then the YAML file (--config), then command-line flags.
// Reference: README.md "Configuration".
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "http/server.h"
#include "lifecycle/retention.h"
#include "ops/access_log.h"
#include "policy/authenticator.h"
#include "policy/federation_config.h"
#include "policy/policy.h"
#include "webhooks/sender.h"

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
  int upload_idle_hours = 24;       // an upload session that received nothing for this long is discarded
  int body_idle_seconds = 30;       // a body in or out that makes no progress for this long: the connection closes
  std::size_t max_connections = 0;  // 0: derived from RLIMIT_NOFILE (http::default_max_connections)
  std::size_t max_connections_per_address = 0;  // 0: a quarter of max_connections
  // gc: garbage collection (README "Garbage collection").
  double gc_grace_minutes = 60;  // links and blobs used more recently are never collected (0.05: 3 s, for tests)
  int gc_interval_minutes = 60;  // a collection runs this often; 0: only when asked (berth gc)
  int audit_retention_days = 90;  // audit.retention_days: older audit entries are deleted hourly; 0 keeps them
  bool metrics_public = false;     // metrics.public: /metrics without credentials
  ops::access_log_format access_log = ops::access_log_format::off;  // log.access: text, json or off

  // storage: where blob bytes live.
  enum class storage_driver { filesystem, s3 };
  storage_driver storage = storage_driver::filesystem;  // filesystem: under `data`
  struct s3_storage {
    std::string endpoint;  // http(s)://host[:port]
    std::string region = "us-east-1";
    std::string bucket;
    std::string prefix;  // key prefix, "" or ending in '/'
    // Credentials: from these files, else from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    std::string access_key_file;
    std::string secret_key_file;
    bool path_style = false;          // https://host/bucket/key (Ceph RGW, MinIO) rather than https://bucket.host/key
    std::string ca_file;              // a private CA for the endpoint's certificate
    bool redirect_downloads = false;  // blob GET answers 307 to a presigned URL
  } s3;
  // metadata: where repositories, manifests, tags, uploads and stored identities live.
  enum class metadata_driver { sqlite, postgres };
  metadata_driver metadata = metadata_driver::sqlite;  // sqlite: berth.db and auth.db under `data`
  struct postgres_metadata {
    std::string url_file;  // a file holding postgresql://user:pass@host:port/db?...; else BERTH_POSTGRES_URL
    std::size_t max_connections = 16;
  } postgres;

  // auth:
  std::string signing_key_file;      // the access tokens' ES256 key (PEM); "": token-signing-key.pem under `data`
  std::string service = "berth";     // the token service name
  int token_lifetime_seconds = 300;  // access tokens
  int refresh_token_lifetime_seconds = 7 * 86400;
  int failed_login_limit = 10;  // per source address and window; 0 disables
  int failed_login_window_seconds = 60;

  // namespaces:, default_namespace:, grants: (namespace grants are folded into policy.grants)
  policy::policy_config policy;
  // users: (config users; their password hashes are argon2id PHC strings)
  std::vector<policy::config_user> users;
  // federation:
  std::vector<policy::federation_issuer> federation;
  // retention: (rules, and the schedule of runs)
  lifecycle::retention_config retention;
  // webhooks: (the list, or a mapping {hooks, retry_base_ms, registry_host})
  berth::webhooks::webhooks_config webhooks;
};

// Reads the YAML file at `path` over the defaults. Throws std::runtime_error naming the file and the
// key when the file cannot be read, is not YAML, has an unknown key or a value of the wrong type.
config load_config(const std::string& path);

}  // namespace berth::app
