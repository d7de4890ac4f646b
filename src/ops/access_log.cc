#include "ops/access_log.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace berth::ops {
namespace {

// RFC 3339 in UTC with milliseconds.
std::string timestamp(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(t);
  const auto seconds = std::chrono::time_point_cast<std::chrono::seconds>(ms);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", seconds, (ms - seconds).count());
}

// `value` for a text line: "-" when empty; printable ASCII but space and '"' kept, the rest escaped
// as \xHH, so a client's string cannot forge a line or a field.
std::string field(std::string_view value, bool quoted) {
  if (value.empty()) return quoted ? "\"-\"" : "-";
  std::string out = quoted ? "\"" : "";
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '"' || c == '\\') {
      if (quoted && c == ' ') {
        out += c;
        continue;
      }
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  if (quoted) out += '"';
  return out;
}

}  // namespace

std::string format_access(const access_entry& e, access_log_format format) {
  const double seconds = std::chrono::duration<double>(e.duration).count();
  if (format == access_log_format::json) {
    nlohmann::json line{{"time", timestamp(e.time)},
                        {"remote_address", e.remote_address},
                        {"identity", e.identity},
                        {"method", e.method},
                        {"route", e.route},
                        {"repository", e.repository},
                        {"status", e.status},
                        {"bytes_in", e.bytes_in},
                        {"bytes_out", e.bytes_out},
                        {"duration_seconds", seconds},
                        {"user_agent", e.user_agent}};
    // Bytes that are not UTF-8 (a client's User-Agent) are replaced, never a reason to fail.
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return fmt::format("{} {} {} {} {} {} {} {} {} {:.6f} {}", timestamp(e.time), field(e.remote_address, false),
                     field(e.identity, false), e.method, e.route, field(e.repository, false), e.status, e.bytes_in,
                     e.bytes_out, seconds, field(e.user_agent, true));
}

access_log::access_log(access_log_format format) : format_(format) {
  if (!enabled()) return;
  // A logger of its own (not the default one): the line is the message, without a level or a prefix.
  auto sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  out_ = std::make_shared<spdlog::logger>("access", std::move(sink));
  out_->set_pattern("%v");
  out_->set_level(spdlog::level::info);
  out_->flush_on(spdlog::level::info);
}

access_log::~access_log() = default;

void access_log::write(const access_entry& e) const {
  if (!enabled()) return;
  out_->info(format_access(e, format_));
}

}  // namespace berth::ops
