#include "app/offline_check.h"

#include <fmt/core.h>

#include <stdexcept>

#include "app/backends.h"
#include "app/config.h"
#include "app/federation_factory.h"
#include "auth/identity_store.h"
#include "core/offload.h"
#include "core/reference.h"
#include "core/sync_wait.h"
#include "meta/metadata_store.h"
#include "policy/authenticator.h"
#include "policy/policy.h"

namespace berth::app {

check_answer offline_check(const std::string& config_path, const std::string& data_dir, const std::string& as,
                           const std::string& action, const std::string& repository) {
  const config c = config_path.empty() ? config{} : load_config(config_path);
  const std::string data = data_dir.empty() ? c.data : data_dir;
  const auto a = policy::parse_action(action);
  if (!a) throw std::runtime_error("action must be pull, push, delete, list or admin");
  if (!valid_name(repository)) throw std::runtime_error(fmt::format("{} is not a valid repository name", repository));
  // Reads only, so no data_lock: it may ask about the data directory of a running server.
  blocking_pool pool(1);
  config located = c;
  located.data = data;
  auto opened = open_stores(located, pool, opener::offline_check);
  auth::identity_store& store = *opened.identities;
  const policy::policy pol(c.policy);
  policy::authenticator authn(store, pool, c.users, verifier_of(make_federation(c)));

  result<policy::principal> who = policy::principal{};
  if (as == "anonymous") {
    who = policy::principal{};
  } else if (as.starts_with("user:") || as.starts_with("robot:")) {
    who = sync_wait(authn.by_subject(as));
  } else if (as.starts_with(auth::robot_token_prefix)) {
    auto robot = sync_wait(store.robot_by_token(as));
    if (!robot || !*robot) throw std::runtime_error("no robot has this token");
    who = sync_wait(authn.basic((*robot)->name, as));
  } else if (std::count(as.begin(), as.end(), '.') == 2) {
    if (!authn.has_federation()) throw std::runtime_error("an OIDC token needs a config with `federation:`");
    who = sync_wait(authn.basic("oidc", as));
  } else {
    throw std::runtime_error("--as takes anonymous, user:NAME, robot:NAME, a robot token or an OIDC token");
  }
  if (!who)
    throw std::runtime_error(fmt::format("{}: {}", as.size() > 40 ? as.substr(0, 12) + "..." : as, who.error().detail));
  // A push to a repository that does not exist in an explicit namespace would fail: say so.
  bool exists = false;
  if (opened.meta) {
    auto found = sync_wait(opened.meta->repository_exists(repository));
    if (!found) throw std::runtime_error("cannot read the repositories (see the log)");
    exists = *found;
  }
  const auto d = pol.preflight(*who, *a, repository, exists);
  return check_answer{d.allowed, who->subject, d.reason};
}

check_answer claims_check(const std::string& config_path, const std::string& issuer, const nlohmann::json& claims,
                          const std::string& action, const std::string& repository, bool exists) {
  const config c = load_config(config_path);
  const auto a = policy::parse_action(action);
  if (!a) throw std::runtime_error("action must be pull, push, delete, list or admin");
  const auto fed = make_federation(c);
  if (!fed) throw std::runtime_error(fmt::format("{} has no `federation:`", config_path));
  auto who = fed->preview(issuer, claims);
  if (!who) throw std::runtime_error(who.error().detail);
  const auto d = policy::policy(c.policy).preflight(*who, *a, repository, exists);
  return check_answer{d.allowed, who->subject, d.reason};
}

}  // namespace berth::app
