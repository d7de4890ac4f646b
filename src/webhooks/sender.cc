#include "webhooks/sender.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "core/unix_time.h"
#include "http/client.h"
#include "policy/policy.h"

namespace berth::webhooks {
namespace {

constexpr std::size_t max_in_flight = 8;  // sends at a time (pool threads a dead receiver can hold)

// RFC 3339 UTC with milliseconds.
std::string rfc3339(std::int64_t ms) {
  const std::chrono::sys_seconds t{std::chrono::seconds(ms / 1000)};
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", t, ms % 1000);
}

}  // namespace

std::chrono::milliseconds retry_delay(std::int64_t attempts, std::chrono::milliseconds base) {
  const std::int64_t doublings = std::clamp<std::int64_t>(attempts - 1, 0, 12);  // 2^12 > 3600
  return std::min(base * (std::int64_t{1} << doublings), base * 3600);
}

std::string event_body(const meta::webhook_delivery& d, std::string_view host) {
  nlohmann::json body = {{"id", d.event_id},        {"type", d.event},          {"time", rfc3339(d.at_ms)},
                         {"repository", d.repository}, {"tag", d.tag},          {"digest", d.digest},
                         {"mediaType", d.media_type}, {"size", d.size},         {"actor", d.actor},
                         {"host", host}};
  if (!d.source.empty()) body["source"] = d.source;
  return body.dump();
}

std::string signature(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(body.data()),
       body.size(), mac, &length);
  std::string out = "sha256=";
  for (unsigned int i = 0; i < length; ++i) fmt::format_to(std::back_inserter(out), "{:02x}", mac[i]);
  return out;
}

sender::sender(meta::webhook_records& records, blocking_pool& pool, const webhooks_config& config, std::string host,
               ops::metrics& metrics)
    : records_(records),
      pool_(pool),
      config_(config),
      host_(std::move(host)),
      metrics_(metrics),
      poll_(std::min<std::chrono::milliseconds>(std::chrono::seconds(1),
                                                std::chrono::milliseconds(config.retry_base_ms))) {
  std::vector<std::string_view> names;
  for (const auto& h : config_.hooks) names.push_back(h.name);
  metrics_.set_webhooks(std::move(names));
}

meta::webhook_records::event_router make_router(const webhooks_config& config) {
  return [&config](std::string_view type, std::string_view repository) {
    std::vector<std::string> out;
    for (const auto& h : config.hooks) {
      if (std::find(h.events.begin(), h.events.end(), type) == h.events.end()) continue;
      if (std::any_of(h.repositories.begin(), h.repositories.end(),
                      [&](const std::string& p) { return policy::pattern_matches(p, repository); }))
        out.push_back(h.name);
    }
    return out;
  };
}

const webhook_config* sender::find(std::string_view name) const {
  for (const auto& h : config_.hooks) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

sender::sent sender::send(const webhook_config& h, std::string_view type, std::string_view id,
                          const std::string& body) const {
  const std::map<std::string, std::string> headers = {
      {"Content-Type", "application/json"},
      {"User-Agent", "Berth-Webhook"},
      {"X-Berth-Event", std::string(type)},
      {"X-Berth-Delivery", std::string(id)},
      {"X-Berth-Signature", signature(h.secret, body)},
  };
  http::client_options options;
  options.ca_file = h.ca_file;
  options.timeout = std::chrono::seconds(h.timeout_seconds);
  options.max_bytes = 64 * 1024;  // the answer is read and dropped
  auto reply = http::send_request("POST", h.url, headers, body, options);
  if (!reply) return {0, reply.error().detail};
  if (reply->status < 200 || reply->status > 299) return {reply->status, fmt::format("HTTP {}", reply->status)};
  return {reply->status, ""};
}

awaitable<void> sender::deliver(meta::webhook_delivery d) {
  const webhook_config* h = find(d.webhook);
  sent outcome{0, "no such webhook in the configuration"};
  if (h != nullptr) {
    const std::string body = event_body(d, host_);
    const std::string id = std::to_string(d.id);
    outcome = co_await pool_.run([&] { return send(*h, d.event, id, body); });
  }
  const std::int64_t now = unix_millis();
  meta::delivery_attempt a{meta::delivery_state::delivered, outcome.status, outcome.error, now, now};
  ops::webhook_outcome counted = ops::webhook_outcome::delivered;
  if (!outcome.error.empty()) {
    const auto base = std::chrono::milliseconds(config_.retry_base_ms);
    const bool expired = now - d.at_ms >= std::chrono::duration_cast<std::chrono::milliseconds>(retry_window).count();
    a.state = expired ? meta::delivery_state::failed : meta::delivery_state::pending;
    a.next_at_ms = now + retry_delay(d.attempts + 1, base).count();
    counted = expired ? ops::webhook_outcome::given_up : ops::webhook_outcome::failed;
    spdlog::warn("webhook {}: delivery {} ({} {}) failed: {}{}", d.webhook, d.id, d.event, d.repository,
                 outcome.error, expired ? "; giving up" : "");
  }
  if (h != nullptr) metrics_.webhook_delivery(static_cast<std::size_t>(h - config_.hooks.data()), counted);
  auto recorded = co_await records_.finish_delivery(d.id, a);
  if (!recorded) spdlog::warn("webhook {}: cannot record delivery {} (it will be sent again)", d.webhook, d.id);
  --in_flight_;
}

awaitable<void> sender::run() {
  auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer timer(executor);
  // A claim outlives the longest send (the client's deadline covers the whole exchange) and the
  // record of its outcome, so no other instance takes a delivery still being sent; a claim of a
  // process that died ends with it (SQLite, which the server owns) or after this long (PostgreSQL).
  std::int64_t lease_ms = 0;
  for (const auto& h : config_.hooks) lease_ms = std::max<std::int64_t>(lease_ms, (h.timeout_seconds + 10) * 1000LL);
  while (!stopped_) {
    const std::size_t room = max_in_flight - in_flight_.load();
    std::size_t claimed = 0;
    if (room > 0) {
      auto batch = co_await records_.claim_deliveries(unix_millis(), lease_ms, room);
      if (batch) {
        claimed = batch->size();
        for (auto& d : *batch) {
          ++in_flight_;
          boost::asio::co_spawn(executor, deliver(std::move(d)), boost::asio::detached);
        }
      }
    }
    if (claimed == room && room > 0) continue;  // more may be due
    timer.expires_after(poll_);
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
}

awaitable<result<unsigned>> sender::ping(std::string_view name, std::string_view actor) {
  const webhook_config* h = find(name);
  if (h == nullptr) co_return fail(errc::name_unknown, fmt::format("no webhook named {} in the configuration", name));
  thread_local std::mt19937_64 random{std::random_device{}()};
  const std::string id = fmt::format("ping-{:016x}", random());
  const nlohmann::json body = {{"id", id}, {"type", "ping"},  {"time", rfc3339(unix_millis())},
                               {"webhook", h->name}, {"actor", actor}, {"host", host_}};
  const std::string text = body.dump();
  const sent outcome = co_await pool_.run([&] { return send(*h, "ping", id, text); });
  if (outcome.status == 0) co_return fail(errc::unavailable, fmt::format("webhook {}: {}", h->name, outcome.error));
  co_return outcome.status;
}

}  // namespace berth::webhooks
