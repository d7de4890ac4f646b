#include "policy/live_policy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace berth::policy {

policy_config with_stored_namespaces(const policy_config& config, const std::vector<auth::namespace_record>& stored) {
  policy_config out = config;
  for (const auto& record : stored) {
    const bool declared =
        std::ranges::any_of(config.namespaces, [&](const namespace_rule& ns) { return ns.name == record.name; });
    if (declared) continue;
    auto ns = parse_namespace_settings(record.name, record.settings, origin::api);
    if (!ns) {
      spdlog::error("namespace {} in the identity store is skipped: {}", record.name, ns.error().detail);
      continue;
    }
    out.namespaces.push_back(std::move(*ns));
  }
  return out;
}

live_policy::live_policy(policy_config config, auth::identity_store& store, namespaces_hook on_build)
    : config_(std::move(config)), store_(store), on_build_(std::move(on_build)) {}

auth::awaitable<result<std::shared_ptr<const policy>>> live_policy::current() {
  // Read before the namespaces: a write after this read advances it again, and the next call rebuilds.
  const auto generation = store_.generation();
  {
    std::lock_guard lock(mutex_);
    if (built_ && built_under_ == generation) co_return built_;
  }
  auto stored = co_await store_.namespaces();
  std::lock_guard lock(mutex_);
  if (!stored) {
    if (!built_) co_return std::unexpected(std::move(stored.error()));
    spdlog::warn("the namespaces of the admin API cannot be read; deciding by those read before: {}",
                 stored.error().detail);
    co_return built_;
  }
  const auto built = with_stored_namespaces(config_, *stored);
  auto fresh = std::make_shared<const policy>(built);
  // Several requests may rebuild at once: keep the one read under the newest generation.
  if (!built_ || generation >= built_under_) {
    if (on_build_) on_build_(built.namespaces);
    built_ = fresh;
    built_under_ = generation;
  }
  co_return fresh;
}

}  // namespace berth::policy
