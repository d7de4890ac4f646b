#include "cli/common.h"

#include <fmt/core.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "auth/secret.h"
#include "http/client.h"

namespace berth::cli {

namespace fs = std::filesystem;


std::string credentials_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0')
    return (fs::path(xdg) / "berth" / "credentials.json").string();
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') throw cli_error("neither XDG_CONFIG_HOME nor HOME is set");
  return (fs::path(home) / ".config" / "berth" / "credentials.json").string();
}

json load_credentials() {
  const fs::path path = credentials_path();
  std::ifstream in(path);
  if (!in) return json{{"registries", json::object()}};
  auto doc = json::parse(in, nullptr, false);
  if (!doc.is_object()) throw cli_error(fmt::format("{} is not valid JSON", path.string()));
  if (!doc.contains("registries")) doc["registries"] = json::object();
  return doc;
}

void save_credentials(const json& doc) {
  const fs::path path = credentials_path();
  fs::create_directories(path.parent_path());
  ::chmod(path.parent_path().c_str(), 0700);
  const auto tmp = path.string() + ".tmp";
  {
    const mode_t old = ::umask(077);
    std::ofstream out(tmp, std::ios::trunc);
    ::umask(old);
    if (!out) throw cli_error(fmt::format("cannot write {}", tmp));
    out << doc.dump(2) << "\n";
  }
  ::chmod(tmp.c_str(), 0600);
  fs::rename(tmp, path);
}

std::string normalize_url(std::string url) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) url = "https://" + url;
  while (url.ends_with("/")) url.pop_back();
  return url;
}

std::string read_secret(const std::string& prompt) {
  std::string line;
  if (::isatty(STDIN_FILENO)) {
    fmt::print(stderr, "{}", prompt);
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, line);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    fmt::print(stderr, "\n");
  } else {
    std::getline(std::cin, line);
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  return line;
}

std::map<std::string, std::string> session::headers() const {
  return {{"Authorization", "Basic " + auth::base64_encode(username + ":" + password)},
          {"Accept", "application/json"}};
}

session open_session(const std::string& registry) {
  const auto doc = load_credentials();
  std::string url = registry.empty() ? doc.value("default", std::string()) : normalize_url(registry);
  if (url.empty()) throw cli_error("not logged in: run `berth login URL` first (or pass --registry)");
  const auto& regs = doc["registries"];
  if (!regs.contains(url)) throw cli_error(fmt::format("not logged in to {}: run `berth login {}`", url, url));
  return session{url, regs[url].value("username", ""), regs[url].value("password", "")};
}

// The admin API's answer as JSON, or a short error from its OCI error envelope.
json call(const session& s, const std::string& method, const std::string& target, const json& body,
          std::chrono::seconds timeout) {
  auto headers = s.headers();
  std::string text;
  if (!body.is_null()) {
    headers["Content-Type"] = "application/json";
    text = body.dump();
  }
  const auto sent = http::send_request(method, s.url + target, headers, text,
                                              {.timeout = timeout, .max_bytes = 64 << 20});
  if (!sent) throw cli_error(sent.error().detail);
  const auto& reply = *sent;
  auto doc = json::parse(reply.body, nullptr, false);
  if (reply.status >= 200 && reply.status < 300) return doc.is_discarded() ? json::object() : doc;
  std::string message = fmt::format("HTTP {}", reply.status);
  std::string code;
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() && !doc["errors"].empty()) {
    const auto& e = doc["errors"][0];
    message = e.value("detail", e.value("message", message));
    code = e.value("code", "");
    if (code == "UNAUTHORIZED") message += " (run `berth login` again?)";
  }
  throw api_error(reply.status, code, message);
}

std::string percent_encode(std::string_view s, slashes kept) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && kept == slashes::kept)) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string time_text(const json& v) {
  if (!v.is_number_integer()) return "-";
  const std::time_t t = v.get<std::int64_t>();
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", std::gmtime(&t));
  return buf;
}

std::string human_size(std::uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1000 && unit + 1 < std::size(units)) {
    value /= 1000;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return value < 10 ? fmt::format("{:.1f} {}", value, units[unit]) : fmt::format("{:.0f} {}", value, units[unit]);
}

}  // namespace berth::cli
