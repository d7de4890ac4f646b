// Webhook deliveries, an outbox kept in the metadata store: the store methods that change what
// a webhook reports (put_manifest, promote, delete_manifest, delete_tag) add one delivery per
// subscribed webhook in the same transaction as the change, so an acknowledged change never loses
// its event. A worker (app/webhooks.h) claims due deliveries, sends them and records the outcome.
//
// Times are unix milliseconds from the caller's clock. Claims are leases: a claimed delivery is not
// handed out again until its lease ends, so several instances over one database share the work
// without sending a delivery twice while its sender lives.
// Thread-safety: every method may be called concurrently, except route_events (see there).
// Errors as in metadata_store.h.
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "meta/tag_records.h"

namespace berth::meta {

// The event types, as configured and sent (X-Berth-Event).
inline constexpr std::string_view event_push = "push";
inline constexpr std::string_view event_delete = "delete";
inline constexpr std::string_view event_promote = "promote";
inline constexpr std::string_view event_retention = "retention";

// The type of the event a change stamped `stamp` makes: a push or a promotion (stamp.source set)
// when it sets content, a deletion or a retention deletion when it removes some.
inline std::string_view event_type(const push_stamp& stamp, bool removes) {
  if (removes) return stamp.cause == change_cause::retention ? event_retention : event_delete;
  return stamp.source.empty() ? event_push : event_promote;
}

enum class delivery_state { pending, delivered, failed };  // failed: given up
std::string_view to_string(delivery_state s);

struct webhook_delivery {
  std::int64_t id = 0;  // X-Berth-Delivery
  std::string webhook;
  // The event, the same for every webhook it goes to.
  std::string event_id;
  std::string event;  // push, delete, promote, retention
  std::int64_t at_ms = 0;
  std::string repository;
  std::string tag;  // "" for a change by digest
  std::string digest;
  std::string media_type;
  std::uint64_t size = 0;  // the manifest's bytes
  std::string actor;       // as push_stamp::by
  std::string source;      // a promotion's source, else ""
  // The delivery.
  delivery_state state = delivery_state::pending;
  std::int64_t attempts = 0;
  unsigned status = 0;  // the last answer's HTTP status, 0 when none came
  std::string last_error;
  std::int64_t next_at_ms = 0;  // when a pending delivery is due
  std::int64_t updated_at_ms = 0;
};

// The outcome of one attempt, as the sender decided it.
struct delivery_attempt {
  delivery_state state = delivery_state::pending;  // pending: try again at next_at_ms
  unsigned status = 0;
  std::string_view error;
  std::int64_t next_at_ms = 0;
  std::int64_t at_ms = 0;
};

class webhook_records {
 public:
  // The names of the webhooks subscribed to events of `type` in `repository`.
  using event_router = std::function<std::vector<std::string>(std::string_view type, std::string_view repository)>;

  virtual ~webhook_records() = default;

  // From now on, changes add a delivery for each webhook `router` names (none before this call).
  // REQUIRES: called before the store's first write; `router` is thread-safe.
  void route_events(event_router router) { router_ = std::move(router); }

  // Up to `n` deliveries due at `now_ms` (pending, next_at_ms reached, no live lease), oldest due
  // first, each leased until now_ms + lease_ms.
  virtual awaitable<result<std::vector<webhook_delivery>>> claim_deliveries(std::int64_t now_ms,
                                                                            std::int64_t lease_ms, std::size_t n) = 0;
  // Records attempt `a` on delivery `id` (one more attempt) and ends its lease; false when no such delivery.
  virtual awaitable<result<bool>> finish_delivery(std::int64_t id, const delivery_attempt& a) = 0;
  // The deliveries of `webhook`, newest first, with ids below `before_id` (0 for the start), at most
  // `n`; with `failed_only`, those not delivered that failed at least once.
  virtual awaitable<result<std::vector<webhook_delivery>>> deliveries(std::string_view webhook, bool failed_only,
                                                                      std::int64_t before_id, std::size_t n) = 0;
  // Makes delivery `id` pending and due at `now_ms` (it keeps its id and body); false when none.
  virtual awaitable<result<bool>> redeliver(std::int64_t id, std::int64_t now_ms) = 0;
  // Deletes the finished deliveries (delivered or given up) last changed before `before_ms`, so the
  // outbox does not grow for ever (webhooks.retention_days); a pending one is never deleted, however
  // old. Returns how many it deleted.
  virtual awaitable<result<std::uint64_t>> prune_deliveries(std::int64_t before_ms) = 0;

 protected:
  // The webhooks that `type` events in `repository` go to (none before route_events).
  std::vector<std::string> subscribers(std::string_view type, std::string_view repository) const {
    return router_ ? router_(type, repository) : std::vector<std::string>{};
  }
  // A new event id: 32 random hex digits.
  static std::string new_event_id();

 private:
  event_router router_;
};

}  // namespace berth::meta
