#include "api/audit.h"

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <span>

#include "api/route_table.h"
#include "auth/identity_store.h"
#include "core/unix_time.h"

namespace berth::api {
namespace {

constexpr std::size_t max_field = 512;

// Printable ASCII only, at most max_field bytes: a name or a detail quoted from a request cannot
// forge a line in a terminal or break an encoding in the store.
std::string clean(std::string_view text) {
  std::string out(text.substr(0, max_field));
  for (char& c : out) {
    if (c < ' ' || c > '~') c = '?';
  }
  return out;
}

// Whether refusal `e` is recorded (ops/refusal_limit.h), counted for `who` at its address; the first
// one recorded after some were left out says how many.
bool admit_refusal(context& ctx, meta::audit_entry& e, std::string_view who) {
  const auto decision = ctx.ops.audited_refusals().admit(who, e.address, unix_millis());
  if (decision.left_out > 0) {
    e.detail += fmt::format(" ({} more refusal(s) of {} from {} in the minute before were not recorded)",
                            decision.left_out, who, e.address);
  }
  return decision.record;
}

awaitable<void> append(meta::metadata_store& meta, meta::audit_entry& e) {
  for (std::string* field : {&e.subject, &e.address, &e.action, &e.repository, &e.target, &e.outcome, &e.detail}) {
    *field = clean(*field);
  }
  e.at_ms = unix_millis();
  auto done = co_await meta.audit().append(std::span<const meta::audit_entry>(&e, 1));
  if (!done) spdlog::error("audit log: cannot record {} by {} (see above)", e.action, e.subject);
}

// The repository and the target a route names.
std::pair<std::string, std::string> route_target(const route& r) {
  const std::string name(r.name);
  const bool by_digest = r.reference.find(':') != std::string_view::npos;
  switch (r.kind) {
    case route_kind::manifest:
      return {name, fmt::format("{}{}{}", name, by_digest ? "@" : ":", r.reference)};
    case route_kind::blob:
      return {name, fmt::format("{}@{}", name, r.reference)};
    case route_kind::repository_tag:
    case route_kind::tag_history:
      return {name, fmt::format("{}:{}", name, r.reference)};
    case route_kind::user:
      return {"", "user:" + name};
    case route_kind::robot:
      return {"", "robot:" + name};
    case route_kind::grant:
      return {"", fmt::format("grant:{}", r.reference)};
    case route_kind::namespace_:
      return {"", "namespace:" + name};
    default:
      if (r.area == api_area::registry || r.kind == route_kind::repository || r.kind == route_kind::repository_tags)
        return {name, name};
      return {"", ""};
  }
}

}  // namespace

awaitable<void> audit_request(context& ctx, const request& req, const route& r, const endpoint* e,
                              const result<response>& res, unsigned status, std::string_view identity,
                              const audit_note& note) {
  // Only an authenticated caller has done or been refused anything: a request without (valid)
  // credentials is the challenge every client starts with, and a bad password is a failed login.
  const bool denied = !res && res.error().code == errc::denied;
  if (e == nullptr || identity.empty() || (e->audit.empty() && !denied)) co_return;
  meta::audit_entry entry;
  entry.subject = identity;
  entry.address = client_address(ctx, req);
  // DELETE /v2/<name>/manifests/<tag> deletes the tag only.
  const bool tag_delete = e->kind == route_kind::manifest && e->method == verb::delete_ &&
                          r.reference.find(':') == std::string_view::npos;
  entry.action = tag_delete ? "tag_delete" : e->audit.empty() ? e->operation : e->audit;
  auto [repository, target] = route_target(r);
  entry.repository = note.repository.empty() ? std::move(repository) : note.repository;
  entry.target = note.target.empty() ? std::move(target) : note.target;
  entry.outcome = status < 400 ? "ok" : denied ? "denied" : "error";
  entry.status = status;
  entry.detail = res ? note.detail : res.error().detail;
  if (denied && !admit_refusal(ctx, entry, entry.subject)) co_return;
  co_await append(ctx.meta, entry);
}

awaitable<void> audit_failed_login(context& ctx, const request& req, std::string_view username,
                                   std::string_view password, std::string_view why) {
  meta::audit_entry entry;
  if (!auth::valid_account_name(username)) {
    entry.subject = "(invalid name)";  // perhaps a password typed into the wrong field
  } else if (username == "oidc") {
    entry.subject = "oidc";
  } else {
    // Only the password's prefix is looked at: robots' tokens carry one.
    entry.subject = fmt::format("{}:{}", password.starts_with(auth::robot_token_prefix) ? "robot" : "user", username);
  }
  entry.address = client_address(ctx, req);
  entry.action = "login";
  entry.outcome = "failed";
  entry.status = 401;
  entry.detail = why;
  // Counted per address, whatever the name: a guesser cannot get more rows by trying other names.
  if (!admit_refusal(ctx, entry, "failed logins")) co_return;
  co_await append(ctx.meta, entry);
}

awaitable<void> audit_scheduled_run(meta::metadata_store& meta, std::string_view action, std::string_view outcome,
                                    std::string_view detail) {
  meta::audit_entry entry;
  entry.subject = "system";
  entry.action = action;
  entry.outcome = outcome;
  entry.detail = detail;
  co_await append(meta, entry);
}

std::string describe_gc_run(const meta::gc_run& run) {
  return fmt::format("{}{} blob(s), {} byte(s); {} link(s) in {} ms", run.dry_run ? "dry run: would free " : "freed ",
                     run.counts.blobs, run.counts.bytes, run.counts.links, run.duration_ms);
}

std::string describe_retention_run(const std::vector<lifecycle::repository_plan>& deleted) {
  const auto t = lifecycle::totals(deleted);
  return fmt::format("deleted {} tag(s) and {} manifest(s) ({} untagged for longer than untagged_days) in {} "
                     "repositories",
                     t.tags, t.manifests, t.untagged, deleted.size());
}

}  // namespace berth::api
