// Webhook delivery: the worker that sends the outbox's deliveries (meta/webhook_records.h), the
// JSON body of an event and its signature. One sender per instance; instances over one database
// share the work through the store's leases.
//
// A delivery is a POST of the event's JSON with X-Berth-Event, X-Berth-Delivery (its id) and
// X-Berth-Signature: sha256=HEX(HMAC-SHA256(secret, body)). A 2xx answer delivers it; anything else
// (no answer, a timeout, another status) is retried after retry_delay(attempts), until the event is
// a day old. Sends run on the blocking pool (http/client.h blocks), at most `max_in_flight` at a
// time, so a slow or dead receiver holds a few pool threads for its timeout and nothing else: pushes
// only write the outbox row, and the sender reads the outbox in bounded batches.
// Thread-safety: run() once; ping() and the accessors from any thread.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/offload.h"
#include "meta/webhook_records.h"
#include "ops/metrics.h"

namespace berth::webhooks {

using boost::asio::awaitable;

// One webhook (README "Webhooks"): where the events of `events` in repositories matching one of
// `repositories` (globs, as grants) go, signed with the secret read from `secret_file`.
struct webhook_config {
  std::string name;
  std::string url;  // http:// or https://
  std::vector<std::string> events;        // of push, delete, promote, retention
  std::vector<std::string> repositories;  // patterns
  std::string secret_file;
  std::string secret;  // the file's content (trailing newline removed); never logged
  int timeout_seconds = 10;
  std::string ca_file;  // a PEM bundle an https:// receiver's certificate is checked against ("": the system store)
};

struct webhooks_config {
  std::vector<webhook_config> hooks;
  // The first retry's delay; each next one doubles, up to 3600 times it (1 s ... 1 h). Tests shorten it.
  int retry_base_ms = 1000;
  std::string registry_host;  // the host[:port] events name as the registry's; "": the listen address
  // Finished deliveries (delivered or given up) older than this are deleted hourly; 0 keeps them.
  int retention_days = 30;
};

// How long after an event its deliveries are given up.
inline constexpr std::chrono::hours retry_window{24};

// The delay before the next attempt of a delivery that has failed `attempts` times (>= 1):
// base * 2^(attempts - 1), at most base * 3600.
std::chrono::milliseconds retry_delay(std::int64_t attempts, std::chrono::milliseconds base);

// The JSON body of delivery `d`'s event, naming `host` as the registry's host.
std::string event_body(const meta::webhook_delivery& d, std::string_view host);
// "sha256=" and the lowercase hex HMAC-SHA256 of `body` under `secret`.
std::string signature(std::string_view secret, std::string_view body);

// The router for meta::webhook_records::route_events: the webhooks of `config` (which must outlive
// it) subscribed to an event's type and repository.
meta::webhook_records::event_router make_router(const webhooks_config& config);

class sender {
 public:
  // `config.hooks` must not be empty. The references must outlive the sender.
  sender(meta::webhook_records& records, blocking_pool& pool, const webhooks_config& config, std::string host,
         ops::metrics& metrics);

  // Claims and sends due deliveries until stop(); polls every min(1 s, retry base) when idle, and
  // ends within one poll of stop(), after the sends in flight.
  awaitable<void> run();
  void stop() { stopped_ = true; }

  const std::vector<webhook_config>& hooks() const { return config_.hooks; }
  // Sends a `ping` event to webhook `name` now, unrecorded: the answer's status. NAME_UNKNOWN when
  // there is no such webhook, UNAVAILABLE naming the cause when no answer came.
  awaitable<result<unsigned>> ping(std::string_view name, std::string_view actor);

 private:
  struct sent {
    unsigned status = 0;
    std::string error;  // "" when delivered
  };
  // Sends `body` as an event of `type` with delivery id `id` to hook `h`. Blocks.
  sent send(const webhook_config& h, std::string_view type, std::string_view id, const std::string& body) const;
  // Sends claimed delivery `d` and records its outcome.
  awaitable<void> deliver(meta::webhook_delivery d);
  const webhook_config* find(std::string_view name) const;

  meta::webhook_records& records_;
  blocking_pool& pool_;
  const webhooks_config& config_;
  std::string host_;
  ops::metrics& metrics_;
  std::chrono::milliseconds poll_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace berth::webhooks
