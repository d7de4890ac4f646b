#include "meta/webhook_records.h"

#include <fmt/format.h>

#include <array>
#include <random>

namespace berth::meta {

std::string_view to_string(delivery_state s) {
  static constexpr std::array<std::string_view, 3> names = {"pending", "delivered", "failed"};
  return names[static_cast<std::size_t>(s)];
}

std::string webhook_records::new_event_id() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  return fmt::format("{:016x}{:016x}", random(), random());
}

}  // namespace berth::meta
