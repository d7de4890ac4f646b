#include "ops/access_log.h"

#include <fmt/format.h>
#include <ctime>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

namespace berth::ops {
namespace {

// RFC 3339 in UTC with milliseconds (gmtime_r and integers: fmt's chrono formatting goes through
// the locale, a cost on every request).
std::string timestamp(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// `value` as a JSON string: quotes, backslashes and control characters escaped; bytes outside ASCII
// (a client's User-Agent may hold any) become U+FFFD, so the line is always valid JSON.
void json_string(fmt::memory_buffer& out, std::string_view value) {
  out.push_back('"');
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
    } else if (u >= 0x80) {
      fmt::format_to(std::back_inserter(out), "\\ufffd");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
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
    // By hand, not through a JSON object: this runs on every request.
    fmt::memory_buffer out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "{{\"time\":\"{}\",\"remote_address\":", timestamp(e.time));
    json_string(out, e.remote_address);
    fmt::format_to(it, ",\"identity\":");
    json_string(out, e.identity);
    fmt::format_to(it, ",\"method\":");
    json_string(out, e.method);
    fmt::format_to(it, ",\"route\":");
    json_string(out, e.route);
    fmt::format_to(it, ",\"repository\":");
    json_string(out, e.repository);
    fmt::format_to(it, ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_seconds\":{:.6f},\"user_agent\":",
                   e.status, e.bytes_in, e.bytes_out, seconds);
    json_string(out, e.user_agent);
    out.push_back('}');
    return fmt::to_string(out);
  }
  return fmt::format("{} {} {} {} {} {} {} {} {} {:.6f} {}", timestamp(e.time), field(e.remote_address, false),
                     field(e.identity, false), e.method, e.route, field(e.repository, false), e.status, e.bytes_in,
                     e.bytes_out, seconds, field(e.user_agent, true));
}

access_log::access_log(access_log_format format) : format_(format) {
  if (!enabled()) return;
  // A logger of its own (not the default one): the line is the message, without a level or a prefix.
  // Buffered, and flushed every second (and at exit): spdlog's stdout sink flushes each line, a
  // write(2) per request that cost the manifest GET +45 % CPU in bench/run.
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>("/dev/stdout");
  out_ = std::make_shared<spdlog::logger>("access", std::move(sink));
  out_->set_pattern("%v");
  out_->set_level(spdlog::level::info);
  spdlog::register_logger(out_);
  spdlog::flush_every(std::chrono::seconds(1));
}

access_log::~access_log() {
  if (!out_) return;
  out_->flush();
  spdlog::drop(out_->name());
}

void access_log::write(const access_entry& e) const {
  if (!enabled()) return;
  out_->info(format_access(e, format_));
}

}  // namespace berth::ops
