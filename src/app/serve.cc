#include "app/serve.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>

#include "api/audit.h"
#include "api/registry_api.h"
#include "app/backends.h"
#include "app/data_lock.h"
#include "app/federation_factory.h"
#include "app/router.h"
#include "auth/identity_store.h"
#include "auth/password.h"
#include "auth/rate_limiter.h"
#include "auth/secret.h"
#include "auth/token_service.h"
#include "core/offload.h"
#include "core/sync_wait.h"
#include "core/unix_time.h"
#include "gc/collector.h"
#include "http/server.h"
#include "lifecycle/platforms.h"
#include "policy/authenticator.h"
#include "policy/live_policy.h"
#include "policy/policy.h"
#include "uploads/upload_service.h"
#include "webhooks/sender.h"

namespace berth::app {
namespace {

// A scheduled collection; a failure is logged (by the stores) and the next one tries again.
boost::asio::awaitable<void> collect_garbage(meta::metadata_store& meta, storage::blob_store& blobs,
                                             std::chrono::milliseconds grace, api::operations& ops) {
  gc::collector collector(meta, blobs, &ops.gc_progress(), &ops.gc_orphans());
  auto run = co_await collector.run(grace, false);
  api::count_gc_run(ops.metrics(), false, run);
  if (!run) {
    spdlog::warn("scheduled garbage collection failed: {}", info(run.error().code).wire);
    co_await api::audit_scheduled_run(meta, "gc_run", "error", info(run.error().code).wire);
    co_return;
  }
  const std::string done = api::describe_gc_run(*run);
  co_await api::audit_scheduled_run(meta, "gc_run", "ok", done);
}

// Deletions an interrupted collection left marked, finished before the first request: a push of
// one of those digests would otherwise be refused (503) until the next collection.
boost::asio::awaitable<void> finish_deletions(meta::metadata_store& meta, storage::blob_store& blobs) {
  gc::collector collector(meta, blobs);
  auto done = co_await collector.finish_interrupted();
  if (!done) {
    spdlog::warn("finishing an interrupted garbage collection failed: {}; the next collection finishes it",
                 info(done.error().code).wire);
  } else if (done->blobs > 0) {
    spdlog::info("finished deleting {} blob(s) ({} bytes) an interrupted garbage collection had marked",
                 done->blobs, done->bytes);
  }
}

// The platforms of the image manifests stored before Berth recorded them, read from their config
// blobs once after the upgrade, beside the first requests.
boost::asio::awaitable<void> read_platforms(meta::metadata_store& meta, storage::blob_store& blobs) {
  auto n = co_await lifecycle::read_platforms(meta, blobs);
  if (!n) {
    spdlog::warn("reading the platforms of images stored before they were recorded failed: {} {}; the next start "
                 "goes on", info(n.error().code).wire, n.error().detail);
  } else if (*n > 0) {
    spdlog::info("read the platforms of {} image manifest(s) stored before they were recorded", *n);
  }
}

// The hourly clean-up: upload sessions idle for `idle`, audit entries older than `audit_days`, and
// finished webhook deliveries older than `delivery_days` (0: kept).
boost::asio::awaitable<void> purge(uploads::upload_service& service, std::chrono::hours idle,
                                   meta::metadata_store& meta, int audit_days, int delivery_days) {
  const auto n = co_await service.purge(idle);
  if (n > 0) spdlog::info("discarded {} upload(s) idle for {}h or more", n, idle.count());
  const auto days_ago = [](int days) { return unix_millis() - std::int64_t{days} * 86'400'000; };
  if (audit_days > 0) {
    auto pruned = co_await meta.audit().prune(days_ago(audit_days));
    if (pruned && *pruned > 0) spdlog::info("deleted {} audit entries older than {} days", *pruned, audit_days);
  }
  if (delivery_days > 0) {
    auto pruned = co_await meta.webhooks().prune_deliveries(days_ago(delivery_days));
    if (pruned && *pruned > 0)
      spdlog::info("deleted {} finished webhook deliveries older than {} days", *pruned, delivery_days);
  }
}

// A scheduled retention run (retention.interval_minutes): logs what it deleted, or why it failed.
boost::asio::awaitable<void> run_retention(meta::metadata_store& meta, const lifecycle::retention_config& config,
                                           policy::live_policy& policies, ops::metrics& metrics) {
  auto pol = co_await policies.current();
  if (!pol) {
    spdlog::error("retention: {}", pol.error().detail);
    metrics.retention_failed();
    co_return;
  }
  auto plans = co_await lifecycle::plan(meta, config, std::nullopt, unix_millis(), lifecycle::immutable_tags(**pol));
  if (!plans) {
    spdlog::error("retention: {}", plans.error().detail);
    metrics.retention_failed();
    co_await api::audit_scheduled_run(meta, "retention_run", "error", plans.error().detail);
    co_return;
  }
  auto deleted = co_await lifecycle::apply(meta, std::move(*plans));
  api::count_retention_run(metrics, deleted);
  if (!deleted) {
    spdlog::error("retention: {}", deleted.error().detail);
    co_await api::audit_scheduled_run(meta, "retention_run", "error", deleted.error().detail);
    co_return;
  }
  const std::string done = api::describe_retention_run(*deleted);
  co_await api::audit_scheduled_run(meta, "retention_run", "ok", done);
  for (const auto& p : *deleted) {
    spdlog::info("retention: {}: deleted {} tag(s) and {} manifest(s) ({} untagged for longer than untagged_days)",
                 p.repository, p.tags.size(), p.manifests.size(), p.untagged);
  }
}

// Writes `text` to a new file `path` readable by its owner only.
void write_private_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot create {}", path));
  (void)::fchmod(fd, 0600);
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("cannot write {}", path));
}

// First start with no identities: the user `admin`, with every action everywhere. The password is
// BERTH_ADMIN_PASSWORD, or a random one printed once and kept in DATA/admin-password (0600).
// Runs before the server starts, so it waits for the store here.
void bootstrap_admin(const config& c, auth::identity_store& identities) {
  if (!c.users.empty()) return;
  auto has = sync_wait(identities.has_users());
  if (!has) throw std::runtime_error("identity store: cannot read users (see log)");
  if (*has) return;
  std::string password;
  bool generated = false;
  if (const char* env = std::getenv("BERTH_ADMIN_PASSWORD"); env != nullptr && *env != '\0') {
    password = env;
  } else {
    password = auth::random_password();
    generated = true;
  }
  const auto created = sync_wait(identities.create_first_admin(auth::hash_password(password)));
  if (!created) throw std::runtime_error("identity store: cannot create the admin user (see log)");
  if (!*created) return;  // another instance on the same database created it first
  if (generated) {
    const auto file = (std::filesystem::path(c.data) / "admin-password").string();
    write_private_file(file, password + "\n");
    fmt::print("berth: first start: created user admin with password {} (also in {}, mode 0600; shown once)\n",
               password, file);
  } else {
    fmt::print("berth: first start: created user admin with the password from BERTH_ADMIN_PASSWORD\n");
  }
  std::fflush(stdout);
}

// The quotas of `namespaces` (quota_bytes, max_repositories: the config's, the admin API's), for the store.
meta::namespace_limits namespace_limits(const std::vector<policy::namespace_rule>& namespaces) {
  meta::namespace_limits out;
  for (const auto& ns : namespaces) {
    if (ns.quota_bytes || ns.max_repositories)
      out[ns.name] = meta::namespace_limit{ns.quota_bytes, ns.max_repositories, ns.source == policy::origin::api};
  }
  return out;
}

// Every connection is a descriptor: take what the hard limit allows, as Go's runtime does. The soft
// limit is often 1024 for the sake of select(2), which nothing in Berth uses.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  (void)::setrlimit(RLIMIT_NOFILE, &limit);  // refused above fs.nr_open: the soft limit stays
}

}  // namespace

int serve(const config& c) {
  spdlog::set_level(spdlog::level::from_str(c.log_level));
  // Each password check (argon2id) allocates 19 MiB. glibc raises its mmap threshold after the first
  // such block is freed, so later ones came from the heap and stayed resident (idle RSS 32 MiB after
  // one login, 66 MiB peak). A fixed threshold keeps big blocks mmapped: freed means returned.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  std::filesystem::create_directories(c.data);
  raise_descriptor_limit();
  const data_lock lock(c.data);  // before anything in the directory is opened

  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int io_threads = c.threads > 0 ? c.threads : cores;
  // fsync-bound work: enough threads that concurrent commits overlap. Every S3 call (s3::client
  // blocks) holds one of them for a network round trip, so S3 storage gets more.
  const int blocking_threads =
      c.storage == config::storage_driver::s3 ? std::max(16, 8 * cores) : std::max(4, 2 * cores);
  blocking_pool pool(static_cast<std::size_t>(blocking_threads));

  auto opened = open_stores(c, pool, opener::server);
  storage::blob_store& blobs = *opened.blobs;
  meta::metadata_store& meta = *opened.meta;
  meta.set_limits(namespace_limits(c.policy.namespaces));
  auth::identity_store& identities = *opened.identities;
  uploads::upload_service uploads(blobs, meta.uploads(), pool);
  bootstrap_admin(c, identities);
  // The quotas of the admin API's namespaces apply from the first policy built after a change,
  // which every request builds before it touches a store.
  policy::live_policy policies(c.policy, identities, [&meta](const std::vector<policy::namespace_rule>& namespaces) {
    meta.set_limits(namespace_limits(namespaces));
  });
  const auto federation = make_federation(c);
  policy::authenticator authn(identities, pool, c.users, verifier_of(federation));
  const std::string signing_key = c.signing_key_file.empty()
                                      ? (std::filesystem::path(c.data) / "token-signing-key.pem").string()
                                      : c.signing_key_file;
  auto tokens = auth::make_jwt_token_service(signing_key, c.service, std::chrono::seconds(c.token_lifetime_seconds),
                                             std::chrono::seconds(c.refresh_token_lifetime_seconds));
  auth::rate_limiter limiter(static_cast<std::size_t>(std::max(0, c.failed_login_limit)),
                             std::chrono::seconds(c.failed_login_window_seconds));

  api::api_options options;
  options.manifest_max_bytes = c.manifest_max_bytes;
  options.max_page = c.max_page;
  options.trust_forwarded_headers = c.trust_forwarded_headers;
  options.scheme = c.tls ? "https" : "http";
  options.retention = c.retention;
  options.gc_grace =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::duration<double, std::ratio<60>>(c.gc_grace_minutes));
  api::auth_services auth{policies, authn, identities, limiter, *tokens, c.service};
  auth.federation = federation;
  api::operations_options ops_options;
  ops_options.metrics_public = c.metrics_public;
  ops_options.access_log = c.access_log;
  api::operations ops(ops_options);
  // Webhooks: the store records the events of the configured webhooks from here on; the sender
  // starts with the server (below) and sends what an earlier run left undelivered.
  std::optional<webhooks::sender> hooks;
  if (!c.webhooks.hooks.empty()) {
    meta.webhooks().route_events(webhooks::make_router(c.webhooks));
    hooks.emplace(meta.webhooks(), pool, c.webhooks, c.webhooks.registry_host.empty() ? c.listen : c.webhooks.registry_host,
                  ops.metrics());
    options.webhooks = &*hooks;
  }
  api::registry_api api(blobs, uploads, meta, pool, options, auth, ops);

  // Abandoned uploads (and old audit entries and webhook deliveries) go at start-up, before the first request can ask for
  // one, then every hour.
  const std::chrono::hours upload_idle(c.upload_idle_hours);
  sync_wait(purge(uploads, upload_idle, meta, c.audit_retention_days, c.webhooks.retention_days));
  sync_wait(finish_deletions(meta, blobs));

  boost::asio::io_context ioc(io_threads);
  http::server_options server_options;
  server_options.listen = c.listen;
  server_options.tls = c.tls;
  server_options.body_idle_timeout = std::chrono::seconds(c.body_idle_seconds);
  server_options.max_connections = c.max_connections;
  server_options.max_connections_per_address = c.max_connections_per_address;
  router routes;
  const http::handler registry = [&api](http::request& req) { return api.handle(req); };
  for (const char* prefix : {"/v2", "/token", "/api/v1", "/health", "/metrics"}) routes.mount(prefix, registry);
  http::server server(ioc, server_options, [&routes](http::request& req) { return routes(req); });
  ops.metrics().set_connections_source([&server] { return server.open_connections(); });
  const auto endpoint = server.listen();
  server.start();
  if (hooks) boost::asio::co_spawn(ioc, hooks->run(), boost::asio::detached);
  boost::asio::co_spawn(ioc, read_platforms(meta, blobs), boost::asio::detached);

  boost::asio::steady_timer purge_timer(ioc);
  std::function<void(const boost::system::error_code&)> purge_later = [&](const boost::system::error_code& ec) {
    if (ec) return;
    boost::asio::co_spawn(ioc, purge(uploads, upload_idle, meta, c.audit_retention_days, c.webhooks.retention_days), boost::asio::detached);
    purge_timer.expires_after(std::chrono::hours(1));
    purge_timer.async_wait(purge_later);
  };
  purge_timer.expires_after(std::chrono::hours(1));
  purge_timer.async_wait(purge_later);

  boost::asio::steady_timer retention_timer(ioc);
  const std::chrono::minutes retention_interval(c.retention.interval_minutes);
  std::function<void(const boost::system::error_code&)> retain_later = [&](const boost::system::error_code& ec) {
    if (ec) return;
    boost::asio::co_spawn(ioc, run_retention(meta, c.retention, policies, ops.metrics()), boost::asio::detached);
    retention_timer.expires_after(retention_interval);
    retention_timer.async_wait(retain_later);
  };
  if (retention_interval.count() > 0) {
    retention_timer.expires_after(retention_interval);
    retention_timer.async_wait(retain_later);
  }
  // Garbage collection every gc.interval_minutes (the first one interval after start-up).
  boost::asio::steady_timer gc_timer(ioc);
  const std::chrono::minutes gc_interval(c.gc_interval_minutes);
  std::function<void(const boost::system::error_code&)> collect_later = [&](const boost::system::error_code& ec) {
    if (ec) return;
    boost::asio::co_spawn(ioc, collect_garbage(meta, blobs, options.gc_grace, ops), boost::asio::detached);
    gc_timer.expires_after(gc_interval);
    gc_timer.async_wait(collect_later);
  };
  if (gc_interval.count() > 0) {
    gc_timer.expires_after(gc_interval);
    gc_timer.async_wait(collect_later);
  }

  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    ops.stopping();  // before the log line, which tells the tests (and operators) that it has begun
    spdlog::info("signal {}: finishing requests in flight, then stopping", signo);
    purge_timer.cancel();
    retention_timer.cancel();
    gc_timer.cancel();
    if (hooks) hooks->stop();
    server.shutdown(std::chrono::seconds(c.shutdown_grace_seconds));
  });

  const std::string host =
      endpoint.address().is_v6() ? fmt::format("[{}]", endpoint.address().to_string()) : endpoint.address().to_string();
  fmt::print("berth listening on {}://{}:{} (data {})\n", options.scheme, host, endpoint.port(), c.data);
  std::fflush(stdout);

  std::vector<std::jthread> threads;
  for (int i = 1; i < io_threads; ++i) threads.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  threads.clear();
  pool.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace berth::app
