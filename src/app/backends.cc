#include "app/backends.h"

#include <fmt/core.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "auth/pg_identity_store.h"
#include "core/read_file.h"
#include "meta/pg_metadata_store.h"
#include "storage/s3_blob_store.h"

namespace berth::app {
namespace {

// A secret from `file` (trailing whitespace trimmed) or, when no file is named, from the environment
// variable `env`. `what` names it in messages, which never carry the secret itself.
std::string secret(const std::string& file, const char* env, std::string_view what, std::string_view key) {
  std::string value;
  if (!file.empty()) {
    try {
      value = read_file(file);
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(fmt::format("{}: {} ({})", what, e.what(), key));
    }
  } else if (const char* v = std::getenv(env); v != nullptr) {
    value = v;
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  if (value.empty())
    throw std::runtime_error(file.empty() ? fmt::format("{}: give `{}` or set {}", what, key, env)
                                          : fmt::format("{}: {} is empty ({})", what, file, key));
  return value;
}

storage::s3_blob_options s3_options(const config::s3_storage& s3) {
  storage::s3_blob_options o;
  o.client.endpoint = s3.endpoint;
  o.client.bucket = s3.bucket;
  o.client.region = s3.region;
  o.client.virtual_hosted = !s3.path_style;
  o.client.transport.ca_file = s3.ca_file;
  o.client.creds.access_key =
      secret(s3.access_key_file, "AWS_ACCESS_KEY_ID", "storage.s3", "storage.s3.access_key_file");
  o.client.creds.secret_key =
      secret(s3.secret_key_file, "AWS_SECRET_ACCESS_KEY", "storage.s3", "storage.s3.secret_key_file");
  o.prefix = s3.prefix;
  o.redirect_downloads = s3.redirect_downloads;
  return o;
}

}  // namespace

stores open_stores(const config& c, blocking_pool& pool, opener who) {
  stores s;
  const std::filesystem::path data(c.data);
  if (who == opener::server) {
    s.blobs = c.storage == config::storage_driver::s3 ? storage::make_s3_blob_store(s3_options(c.s3), pool)
                                                      : storage::make_fs_blob_store(c.data, pool);
  }
  if (c.metadata == config::metadata_driver::postgres) {
    pg::pool_config pc;
    pc.conninfo = secret(c.postgres.url_file, "BERTH_POSTGRES_URL", "metadata.postgres", "metadata.postgres.url_file");
    pc.max_connections = c.postgres.max_connections;
    s.pg_threads = std::make_unique<boost::asio::thread_pool>(2);
    s.pg = std::make_shared<pg::pool>(s.pg_threads->get_executor(), std::move(pc));
    s.meta = meta::make_pg_metadata_store(s.pg);
    s.identities = auth::make_pg_identity_store(s.pg);
    return s;
  }
  const auto meta_db = (data / "berth.db").string();
  const auto auth_db = (data / "auth.db").string();
  if (who == opener::offline_check) {
    if (!std::filesystem::exists(auth_db))
      throw std::runtime_error(fmt::format("{} does not exist: pass the registry's --data directory", auth_db));
    // A server may be running on this directory: its uploads keep their leases. No berth.db yet:
    // nothing was pushed, and the check must not create one.
    if (std::filesystem::exists(meta_db)) s.meta = meta::make_sqlite_metadata_store(meta_db, meta::upload_leases::keep);
  } else {
    s.meta = meta::make_sqlite_metadata_store(meta_db);
  }
  s.identities = auth::make_sqlite_identity_store(auth_db, pool);
  return s;
}

}  // namespace berth::app
