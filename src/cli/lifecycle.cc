// Image lifecycle commands (the admin API's tag records, lifecycle.cc on the server):
//   berth tags REPO [--sort time|name] [--limit N] [--json]   tags newest first, with who, size, platforms
//   berth tags REPO:TAG --history                             every digest the tag had
//   berth promote SRC DST                                     point DST (repo:tag) at SRC (repo:tag, repo@digest)
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <chrono>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"

namespace berth::cli {
namespace {

// "sha256:0123456789ab" (the first 12 hex digits, as docker shows image ids).
std::string short_digest(const std::string& d) {
  const auto colon = d.find(':');
  return colon == std::string::npos ? d : d.substr(0, std::min(d.size(), colon + 13));
}

// "3 hours ago (2026-11-30 13:04 UTC)".
std::string pushed_text(const json& ms) {
  if (!ms.is_number_integer()) return "-";
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::int64_t s = std::max<std::int64_t>(0, (now - ms.get<std::int64_t>()) / 1000);
  std::string age;
  if (s < 60) {
    age = fmt::format("{} seconds ago", s);
  } else if (s < 3600) {
    age = fmt::format("{} minutes ago", s / 60);
  } else if (s < 86400) {
    age = fmt::format("{} hours ago", s / 3600);
  } else {
    age = fmt::format("{} days ago", s / 86400);
  }
  return fmt::format("{} ({} UTC)", age, time_text(json(ms.get<std::int64_t>() / 1000)));
}

// "production/app:latest" -> {"production/app", "latest"}; a cli_error when there is no tag.
std::pair<std::string, std::string> split_tag(const std::string& ref) {
  const auto colon = ref.rfind(':');
  const auto slash = ref.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash) || colon + 1 == ref.size())
    throw cli_error(fmt::format("{}: expected REPOSITORY:TAG", ref));
  return {ref.substr(0, colon), ref.substr(colon + 1)};
}

struct tags_options {
  std::string registry;
  std::string target;
  std::string sort = "time";
  int limit = 0;
  bool json_output = false;
  bool history = false;
};

void print_history(const session& s, const tags_options& o) {
  const auto [repo, tag] = split_tag(o.target);
  const auto r = call(s, "GET", fmt::format("/api/v1/repositories/{}/tags/{}/history", percent_encode(repo, slashes::encoded),
                                            percent_encode(tag)));
  if (o.json_output) {
    fmt::print("{}\n", r.dump(2));
    return;
  }
  fmt::print("{:<20} {:<44} {:<24} {}\n", "DIGEST", "PUSHED", "BY", "SOURCE");
  for (const auto& e : r["history"]) {
    fmt::print("{:<20} {:<44} {:<24} {}\n", short_digest(e.value("digest", "")), pushed_text(e["pushed_at_ms"]),
               e.value("pushed_by", ""), e.value("source", ""));
  }
}

void print_tags(const session& s, const tags_options& o) {
  std::string target = fmt::format("/api/v1/repositories/{}/tags?sort={}", percent_encode(o.target, slashes::encoded), o.sort);
  if (o.limit > 0) target += fmt::format("&n={}", o.limit);
  const auto r = call(s, "GET", target);
  if (o.json_output) {
    fmt::print("{}\n", r.dump(2));
    return;
  }
  fmt::print("{:<24} {:<20} {:<44} {:<24} {:>9}  {}\n", "TAG", "DIGEST", "PUSHED", "BY", "SIZE", "PLATFORMS");
  for (const auto& t : r["tags"]) {
    fmt::print("{:<24} {:<20} {:<44} {:<24} {:>9}  {}\n", t.value("name", ""), short_digest(t.value("digest", "")),
               pushed_text(t["pushed_at_ms"]), t.value("pushed_by", ""), human_size(t.value("size", std::uint64_t{0})),
               fmt::join(t.value("platforms", std::vector<std::string>{}), ","));
  }
}

}  // namespace

void add_lifecycle_commands(CLI::App& cli) {
  auto o = std::make_shared<tags_options>();
  auto* tags = cli.add_subcommand("tags", "List a repository's tags newest first, or one tag's history");
  tags->add_option("repository", o->target, "REPOSITORY, or REPOSITORY:TAG with --history")->required();
  tags->add_option("--sort", o->sort, "time (newest first) or name")->check(CLI::IsMember({"time", "name"}));
  tags->add_option("--limit", o->limit, "At most this many tags")->check(CLI::PositiveNumber);
  tags->add_flag("--json", o->json_output, "Print the API's JSON");
  tags->add_flag("--history", o->history, "Every digest REPOSITORY:TAG pointed to, newest first");
  tags->add_option("--registry", o->registry, "Registry URL (default: the last `berth login`)");
  tags->callback([o] {
    const auto s = open_session(o->registry);
    if (o->history) {
      print_history(s, *o);
    } else {
      print_tags(s, *o);
    }
  });

  auto registry = std::make_shared<std::string>();
  auto source = std::make_shared<std::string>();
  auto destination = std::make_shared<std::string>();
  auto* promote = cli.add_subcommand(
      "promote", "Point DST (repo:tag) at SRC (repo:tag or repo@sha256:...), linking what it needs; also rollback");
  promote->add_option("source", *source, "SRC: staging/app:sha-3f9c2e1 or staging/app@sha256:...")->required();
  promote->add_option("destination", *destination, "DST: production/app:latest")->required();
  promote->add_option("--registry", *registry, "Registry URL (default: the last `berth login`)");
  promote->callback([registry, source, destination] {
    const auto [repo, tag] = split_tag(*destination);
    const auto r = call(open_session(*registry), "POST",
                        fmt::format("/api/v1/repositories/{}/tags/{}", percent_encode(repo, slashes::encoded), percent_encode(tag)),
                        json{{"source", *source}});
    const auto previous = r["previous_digest"];
    fmt::print("{} → {} ({})\n", *destination, r.value("digest", ""),
               previous.is_string() ? (r.value("moved", true) ? "was " + previous.get<std::string>() : "unchanged")
                                    : "new tag");
  });
}

}  // namespace berth::cli
