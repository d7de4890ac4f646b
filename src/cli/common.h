// What every `berth` client command shares: the stored credentials (`berth login`), the admin API
// call with its error handling, and small formatting helpers. A command group lives in its own file
// and registers itself from main.cc (commands.h).
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace berth::cli {

using json = nlohmann::json;

// Exit codes: 0 success (or allowed), 1 error, 2 changes pending (berth plan), 3 denied (berth check).
constexpr int exit_error = 1;
constexpr int exit_changes = 2;
constexpr int exit_denied = 3;

// A failure to report as "berth: MESSAGE" with exit code 1.
struct cli_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The admin API refused a call: its HTTP status and OCI error code, with the message.
struct api_error : cli_error {
  api_error(int status, std::string code, const std::string& message)
      : cli_error(message), status(status), code(std::move(code)) {}
  int status;
  std::string code;
};

// Ends the command with `code` and no message (from a subcommand's callback).
[[noreturn]] inline void exit_with(int code) { throw CLI::RuntimeError(code); }

// The credentials file ($XDG_CONFIG_HOME/berth/credentials.json, 0600).
std::string credentials_path();
json load_credentials();
void save_credentials(const json& doc);

// "host:5000" -> "https://host:5000"; no trailing slash.
std::string normalize_url(std::string url);
// A line from stdin, not echoed on a terminal.
std::string read_secret(const std::string& prompt);

// The registry to talk to and its credentials: --registry, else the last one logged in to.
struct session {
  std::string url;
  std::string username;
  std::string password;

  std::map<std::string, std::string> headers() const;
};
session open_session(const std::string& registry);

// The admin API's answer as JSON; an api_error with the message of its OCI error envelope, or a
// cli_error when the registry cannot be reached or does not answer within `timeout`.
json call(const session& s, const std::string& method, const std::string& target, const json& body = nullptr,
          std::chrono::seconds timeout = std::chrono::seconds(60));
// The timeout of a call that runs a whole job (a garbage collection, a retention run) on a large store.
constexpr std::chrono::seconds job_timeout = std::chrono::hours(6);

// Percent-encodes all but unreserved characters and, unless `encoded`, '/'. A repository named in
// an admin path has its slashes encoded: `/api/v1/repositories/team%2Ftags` is the repository
// `team/tags`, where `/api/v1/repositories/team/tags` lists team's tags.
enum class slashes { kept, encoded };
std::string percent_encode(std::string_view s, slashes kept = slashes::kept);
// A Unix time in seconds as "YYYY-MM-DD HH:MM" (UTC), "-" when not a number.
std::string time_text(const json& v);
// "1.5 GB", "312 MB", "4.2 kB", "12 B" (decimal units, as docker and podman print sizes).
std::string human_size(std::uint64_t bytes);

}  // namespace berth::cli
