// Who may do what: namespaces (the first component of a repository name, one per environment),
// grants (a subject gets actions on repository patterns), and the one function that decides
// (principal, action, repository) -> allowed or not, with the grant or rule that decided. Used by
// request enforcement, by the token endpoint to cut requested scopes down, and by `berth check`.
// Nothing here authenticates: a principal arrives already proven (see authenticator.h).
// Thread-safety: a policy is immutable after construction; decide() is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace berth::policy {

enum class action : std::uint8_t { pull, push, delete_, list, admin };

// "pull", "push", "delete", "list", "admin".
std::string_view to_string(action a);
std::optional<action> parse_action(std::string_view text);

// A set of actions. Implications: admin gives every action; push gives pull (a pusher must see which
// layers exist); pull gives list.
class action_set {
 public:
  action_set() = default;
  action_set(std::initializer_list<action> actions) {
    for (action a : actions) add(a);
  }
  void add(action a) { bits_ |= bit(a); }
  // True when the set holds `a` directly or through an implication.
  bool allows(action a) const;
  // True when `a` was added directly.
  bool has(action a) const { return (bits_ & bit(a)) != 0; }
  bool empty() const { return bits_ == 0; }
  // "pull,push" (the actions held directly, in enum order).
  std::string str() const;
  // Parses "pull,push" or a list of names. Fails with errc::unsupported naming the bad action.
  static result<action_set> parse(const std::vector<std::string>& names);

 private:
  static std::uint8_t bit(action a) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(a)); }
  std::uint8_t bits_ = 0;
};

// `*` matches any run of characters, '/' included; every other character matches itself.
// "production/*" matches "production/app" and "production/team/app"; "staging/web-*" matches
// "staging/web-shop"; "*" matches everything.
bool pattern_matches(std::string_view pattern, std::string_view name);

struct grant {
  std::string subject;  // "user:alice", "robot:ci", "anonymous", or "*" (every authenticated caller)
  action_set actions;
  std::vector<std::string> repositories;  // patterns
  std::string source;  // where it was declared, for messages: "grants[2]", "namespaces.production.grants[0]"
};

enum class visibility : std::uint8_t { private_, public_pull };
enum class creation : std::uint8_t { on_push, explicit_ };
// Where a namespace is declared. The server's config is authoritative: the admin API creates,
// changes and deletes only namespaces the config does not name.
enum class origin : std::uint8_t { config, api };

// "private", "public-pull"; "on-push", "explicit"; "config", "api".
std::string_view to_string(visibility v);
std::string_view to_string(creation c);
std::string_view to_string(origin o);

struct namespace_rule {
  std::string name;  // "" for the default (names outside every declared namespace)
  visibility vis = visibility::private_;
  creation create = creation::on_push;
  // Tag patterns (as for grants: `*` matches any run) whose tags, once they exist, never move:
  // "v*", "main-*".
  std::vector<std::string> immutable_tags;
  origin source = origin::config;
  // Quotas (meta/quota.h), enforced by the metadata store: the bytes the namespace may hold (its
  // distinct blobs once, plus manifests) and how many repositories; nullopt is no limit.
  std::optional<std::uint64_t> quota_bytes;
  std::optional<std::uint64_t> max_repositories;
};

// A namespace's settings by key, as the config file, the admin API, the stored record and the
// registry file spell them. A new setting is added here, in set_namespace_setting and in
// namespace_settings_json, and every reader of a namespace knows it.
//   visibility      private | public-pull
//   creation        on-push | explicit
//   immutable_tags  [tag pattern, ...]
inline constexpr std::array<std::string_view, 3> namespace_setting_keys = {"visibility", "creation", "immutable_tags"};
// The quotas, which a named namespace may have and the default namespace has not:
//   quota_bytes       a size: 200GiB, 500MB, or bytes
//   max_repositories  a whole number
inline constexpr std::array<std::string_view, 2> namespace_quota_keys = {"quota_bytes", "max_repositories"};
// Whether setting `key` takes one value (all but immutable_tags): a list is refused for it.
bool scalar_setting(std::string_view key);
// Sets setting `key` of `ns` from `values` (a scalar setting takes exactly one). Fails with
// errc::invalid_argument naming the key and what it accepts.
result<void> set_namespace_setting(namespace_rule& ns, std::string_view key, const std::vector<std::string>& values);
// Whether `name` can name a namespace: one component of a repository name ("production").
bool valid_namespace_name(std::string_view name);
// `ns`'s settings as a compact JSON object: {"visibility":"private","creation":"on-push","immutable_tags":[]},
// with "quota_bytes" and "max_repositories" (numbers) when set.
std::string namespace_settings_json(const namespace_rule& ns);
// Namespace `name` (of `source`) from a JSON object of settings (the admin API's body, a stored
// record): each key through set_namespace_setting (a number is taken as its decimal text); a key
// left out keeps its default. Fails with
// errc::invalid_argument naming an unknown key or a value of the wrong type.
result<namespace_rule> parse_namespace_settings(std::string_view name, std::string_view json_text, origin source);

// Someone proven to be `subject`: "user:NAME", "robot:NAME", "oidc:..." or "anonymous".
struct principal {
  std::string subject = "anonymous";
  // Grants that come with the identity itself: stored grants of a user or robot, grants from
  // matching federation rules. Config grants are added by the policy by subject.
  std::vector<grant> grants;
  // For a denial message when nothing matched, e.g. `federation "github": rules tried: main, tags`.
  std::string denial_hint;

  bool anonymous() const { return subject == "anonymous"; }
};

struct decision {
  bool allowed = false;
  // Allowed: the grant or rule that allowed it ("grant grants[1]: robot:ci push on production/*").
  // Denied: why, naming the subject and the repository.
  std::string reason;
};

struct policy_config {
  std::vector<namespace_rule> namespaces;
  namespace_rule default_namespace;
  std::vector<grant> grants;  // config grants, namespace grants included (as "<ns>/*" patterns)
};

class policy {
 public:
  explicit policy(policy_config config);

  // The namespace `repository` belongs to (its first path component), or the default.
  const namespace_rule& namespace_of(std::string_view repository) const;
  const std::vector<namespace_rule>& namespaces() const { return config_.namespaces; }
  const namespace_rule& default_namespace() const { return config_.default_namespace; }
  const std::vector<grant>& grants() const { return config_.grants; }

  // Whether `who` may do `a` on `repository`. REQUIRES: `repository` is a valid name, or "*" with
  // a == admin (a global admin check: only grants on the pattern "*" count).
  decision decide(const principal& who, action a, std::string_view repository) const;

  // Whether a push may create `repository`, which does not exist: not in an `explicit` namespace,
  // and then the reason names the repository and the command that creates it.
  decision may_create(std::string_view repository) const;

  // Whether `tag` of `repository` is immutable: nullopt when it is not, else the refusal naming the
  // tag and the rule, "tag production/app:v1.4.0 is immutable (namespaces.production.immutable_tags: v*)"
  // (a namespace of the admin API: "immutable_tags of namespace production (admin API): v*").
  // Callers refuse to move or delete such a tag once it exists (re-pushing its digest is no move).
  std::optional<std::string> immutable(std::string_view repository, std::string_view tag) const;

  // What a push or any other action would meet, as `berth check` answers: decide(), then for a push
  // to a repository that does not exist (`exists` false), may_create(): the push would fail with
  // NAME_UNKNOWN.
  decision preflight(const principal& who, action a, std::string_view repository, bool exists) const;

  // The actions of `wanted` that `who` may do on `repository` (the token endpoint's cut).
  action_set allowed_actions(const principal& who, const action_set& wanted, std::string_view repository) const;

 private:
  policy_config config_;
};

}  // namespace berth::policy
