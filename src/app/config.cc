#include "app/config.h"

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <span>

#include <stdexcept>
#include "auth/identity_store.h"
#include "core/read_file.h"
#include "core/reference.h"

namespace berth::app {
namespace {

template <class T>
void read(const YAML::Node& node, const std::string& key, T& out, const std::string& path) {
  const auto value = node[key];
  if (!value) return;
  try {
    out = value.as<T>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(fmt::format("{}: `{}` has the wrong type", path, key));
  }
}

void reject_unknown(const YAML::Node& node, const std::set<std::string>& known, const std::string& where,
                    const std::string& path) {
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    if (!known.contains(key)) throw std::runtime_error(fmt::format("{}: unknown key `{}{}`", path, where, key));
  }
}

std::vector<std::string> strings(const YAML::Node& node, const std::string& key, const std::string& path) {
  if (!node) return {};
  try {
    if (node.IsScalar()) return {node.as<std::string>()};
    return node.as<std::vector<std::string>>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(fmt::format("{}: `{}` must be a string or a list of strings", path, key));
  }
}

std::set<std::string> namespace_keys() {
  return {policy::namespace_setting_keys.begin(), policy::namespace_setting_keys.end()};
}

// A namespace's settings `keys` (policy::namespace_setting_keys, and for a named namespace
// namespace_quota_keys too), each through the parser the admin API uses.
void read_namespace_rule(const YAML::Node& node, policy::namespace_rule& ns, std::span<const std::string_view> keys,
                         const std::string& where, const std::string& path) {
  for (const auto key : keys) {
    const std::string name(key);
    const auto value = node[name];
    if (!value) continue;
    if (policy::scalar_setting(key) && !value.IsScalar())
      throw std::runtime_error(fmt::format("{}: `{}` takes one value, not a list", path, where + name));
    auto set = policy::set_namespace_setting(ns, key, strings(value, where + name, path));
    if (!set) throw std::runtime_error(fmt::format("{}: `{}`: {}", path, where + name, set.error().detail));
  }
}

policy::action_set actions_of(const YAML::Node& node, const std::string& key, const std::string& path) {
  auto set = policy::action_set::parse(strings(node, key, path));
  if (!set) throw std::runtime_error(fmt::format("{}: `{}`: {}", path, key, set.error().detail));
  if (set->empty()) throw std::runtime_error(fmt::format("{}: `{}` needs at least one action", path, key));
  return *set;
}

policy::grant read_grant(const YAML::Node& node, const std::string& where, const std::string& path,
                         std::optional<std::string> namespace_pattern) {
  if (!node.IsMap()) throw std::runtime_error(fmt::format("{}: `{}` must be a mapping", path, where));
  reject_unknown(node,
                 namespace_pattern ? std::set<std::string>{"subject", "actions"}
                                   : std::set<std::string>{"subject", "actions", "repositories"},
                 where + ".", path);
  policy::grant g;
  read(node, "subject", g.subject, path);
  if (g.subject.empty()) throw std::runtime_error(fmt::format("{}: `{}.subject` is required", path, where));
  g.actions = actions_of(node["actions"], where + ".actions", path);
  if (namespace_pattern) {
    g.repositories = {*namespace_pattern};
  } else {
    g.repositories = strings(node["repositories"], where + ".repositories", path);
    if (g.repositories.empty())
      throw std::runtime_error(fmt::format("{}: `{}.repositories` needs at least one pattern", path, where));
  }
  g.source = where;
  return g;
}

void read_backends(const YAML::Node& root, config& c, const std::string& path) {
  if (const auto st = root["storage"]) {
    reject_unknown(st, {"driver", "s3"}, "storage.", path);
    std::string driver = "filesystem";
    read(st, "driver", driver, path);
    if (driver == "s3") {
      c.storage = config::storage_driver::s3;
    } else if (driver != "filesystem") {
      throw std::runtime_error(fmt::format("{}: `storage.driver` must be filesystem or s3", path));
    }
    if (const auto s3 = st["s3"]) {
      reject_unknown(s3,
                     {"endpoint", "region", "bucket", "prefix", "access_key_file", "secret_key_file", "path_style",
                      "ca_file", "redirect_downloads"},
                     "storage.s3.", path);
      read(s3, "endpoint", c.s3.endpoint, path);
      read(s3, "region", c.s3.region, path);
      read(s3, "bucket", c.s3.bucket, path);
      read(s3, "prefix", c.s3.prefix, path);
      read(s3, "access_key_file", c.s3.access_key_file, path);
      read(s3, "secret_key_file", c.s3.secret_key_file, path);
      read(s3, "path_style", c.s3.path_style, path);
      read(s3, "ca_file", c.s3.ca_file, path);
      read(s3, "redirect_downloads", c.s3.redirect_downloads, path);
    }
    if (c.storage == config::storage_driver::s3) {
      if (!c.s3.endpoint.starts_with("http://") && !c.s3.endpoint.starts_with("https://"))
        throw std::runtime_error(fmt::format("{}: `storage.s3.endpoint` must be an http:// or https:// URL", path));
      if (c.s3.bucket.empty()) throw std::runtime_error(fmt::format("{}: `storage.s3.bucket` is required", path));
      if (c.s3.access_key_file.empty() != c.s3.secret_key_file.empty())
        throw std::runtime_error(
            fmt::format("{}: `storage.s3` takes access_key_file and secret_key_file together", path));
      if (!c.s3.prefix.empty() && !c.s3.prefix.ends_with('/')) c.s3.prefix += '/';
    }
  }
  if (const auto md = root["metadata"]) {
    reject_unknown(md, {"driver", "postgres"}, "metadata.", path);
    std::string driver = "sqlite";
    read(md, "driver", driver, path);
    if (driver == "postgres") {
      c.metadata = config::metadata_driver::postgres;
    } else if (driver != "sqlite") {
      throw std::runtime_error(fmt::format("{}: `metadata.driver` must be sqlite or postgres", path));
    }
    if (const auto pg = md["postgres"]) {
      reject_unknown(pg, {"url_file", "max_connections"}, "metadata.postgres.", path);
      read(pg, "url_file", c.postgres.url_file, path);
      read(pg, "max_connections", c.postgres.max_connections, path);
      if (c.postgres.max_connections < 1 || c.postgres.max_connections > 1000)
        throw std::runtime_error(fmt::format("{}: `metadata.postgres.max_connections` must be 1 to 1000", path));
    }
  }
}

// A rule's fields as written, then the check the admin API's rules get too (lifecycle::check_rule).
lifecycle::retention_rule read_retention_rule(const YAML::Node& node, const std::string& where,
                                              const std::string& path) {
  if (!node.IsMap()) throw std::runtime_error(fmt::format("{}: `{}` must be a mapping", path, where));
  reject_unknown(node, {"repositories", "keep_last", "keep_days", "untagged_days", "protect"}, where + ".", path);
  lifecycle::retention_rule rule;
  rule.source = where;
  rule.repositories = strings(node["repositories"], where + ".repositories", path);
  rule.protect = strings(node["protect"], where + ".protect", path);
  for (auto [key, field] : {std::pair{"keep_last", &rule.keep_last}, std::pair{"keep_days", &rule.keep_days},
                            std::pair{"untagged_days", &rule.untagged_days}}) {
    if (!node[key]) continue;
    std::int64_t n = 0;
    read(node, key, n, path);
    *field = n;
  }
  if (auto valid = lifecycle::check_rule(rule, where); !valid)
    throw std::runtime_error(fmt::format("{}: {}", path, valid.error().detail));
  return rule;
}

// `retention:` is the list of rules, or a mapping {rules, interval_minutes}.
void read_retention(const YAML::Node& node, lifecycle::retention_config& out, const std::string& path) {
  YAML::Node rules = node;
  std::string where = "retention";
  if (node.IsMap()) {
    reject_unknown(node, {"rules", "interval_minutes"}, "retention.", path);
    read(node, "interval_minutes", out.interval_minutes, path);
    if (out.interval_minutes < 0)
      throw std::runtime_error(fmt::format("{}: `retention.interval_minutes` must be 0 or more", path));
    rules = node["rules"];
    where = "retention.rules";
  }
  if (!rules) return;
  if (!rules.IsSequence()) throw std::runtime_error(fmt::format("{}: `{}` must be a list of rules", path, where));
  for (std::size_t i = 0; i < rules.size(); ++i) {
    out.rules.push_back(read_retention_rule(rules[i], fmt::format("{}[{}]", where, i), path));
  }
}

webhooks::webhook_config read_webhook(const YAML::Node& node, const std::string& where, const std::string& path) {
  if (!node.IsMap()) throw std::runtime_error(fmt::format("{}: `{}` must be a mapping", path, where));
  reject_unknown(node, {"name", "url", "events", "repositories", "secret_file", "timeout_seconds", "ca_file"},
                 where + ".", path);
  webhooks::webhook_config w;
  read(node, "name", w.name, path);
  read(node, "url", w.url, path);
  read(node, "secret_file", w.secret_file, path);
  read(node, "timeout_seconds", w.timeout_seconds, path);
  read(node, "ca_file", w.ca_file, path);
  w.events = strings(node["events"], where + ".events", path);
  w.repositories = strings(node["repositories"], where + ".repositories", path);
  const auto bad = [&](std::string_view key, std::string_view why) {
    return std::runtime_error(fmt::format("{}: `{}.{}` {}", path, where, key, why));
  };
  if (w.name.empty() || w.name.size() > 64 ||
      w.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") != std::string::npos)
    throw bad("name", "must be 1 to 64 of a-z, 0-9, '-', '_', '.'");
  if (!w.url.starts_with("http://") && !w.url.starts_with("https://"))
    throw bad("url", "must start with http:// or https://");
  if (w.events.empty()) throw bad("events", "needs at least one of push, delete, promote, retention");
  for (const auto& e : w.events) {
    if (e != "push" && e != "delete" && e != "promote" && e != "retention")
      throw bad("events", fmt::format("has `{}`: events are push, delete, promote and retention", e));
  }
  if (w.repositories.empty()) throw bad("repositories", "needs at least one pattern (\"*\" for all)");
  if (w.timeout_seconds < 1 || w.timeout_seconds > 300) throw bad("timeout_seconds", "must be 1 to 300");
  if (w.secret_file.empty()) throw bad("secret_file", "is required: the file holding the signing secret");
  try {
    w.secret = read_file(w.secret_file);
  } catch (const std::runtime_error&) {
    throw bad("secret_file", fmt::format("names {}, which cannot be read", w.secret_file));
  }
  while (!w.secret.empty() && (w.secret.back() == '\n' || w.secret.back() == '\r')) w.secret.pop_back();
  if (w.secret.empty()) throw bad("secret_file", fmt::format("names {}, which is empty", w.secret_file));
  if (!w.ca_file.empty()) {
    if (!w.url.starts_with("https://")) throw bad("ca_file", "is for an https:// url");
    std::string pem;
    try {
      pem = read_file(w.ca_file);
    } catch (const std::runtime_error&) {
      throw bad("ca_file", fmt::format("names {}, which cannot be read", w.ca_file));
    }
    if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
      throw bad("ca_file", fmt::format("names {}, which holds no PEM certificate", w.ca_file));
  }
  return w;
}

// `webhooks:` is the list of webhooks, or a mapping {hooks, retry_base_ms, registry_host, retention_days}.
void read_webhooks(const YAML::Node& node, webhooks::webhooks_config& out, const std::string& path) {
  YAML::Node hooks = node;
  std::string where = "webhooks";
  if (node.IsMap()) {
    reject_unknown(node, {"hooks", "retry_base_ms", "registry_host", "retention_days"}, "webhooks.", path);
    read(node, "retry_base_ms", out.retry_base_ms, path);
    read(node, "registry_host", out.registry_host, path);
    read(node, "retention_days", out.retention_days, path);
    if (out.retry_base_ms < 1 || out.retry_base_ms > 60'000)
      throw std::runtime_error(fmt::format("{}: `webhooks.retry_base_ms` must be 1 to 60000", path));
    if (out.retention_days < 0)
      throw std::runtime_error(fmt::format("{}: `webhooks.retention_days` must be 0 (keep for ever) or more", path));
    hooks = node["hooks"];
    where = "webhooks.hooks";
  }
  if (!hooks) return;
  if (!hooks.IsSequence()) throw std::runtime_error(fmt::format("{}: `{}` must be a list of webhooks", path, where));
  for (std::size_t i = 0; i < hooks.size(); ++i) {
    auto w = read_webhook(hooks[i], fmt::format("{}[{}]", where, i), path);
    for (const auto& other : out.hooks) {
      if (other.name == w.name)
        throw std::runtime_error(fmt::format("{}: `{}[{}].name`: two webhooks are named {}", path, where, i, w.name));
    }
    out.hooks.push_back(std::move(w));
  }
}

void read_auth_sections(const YAML::Node& root, config& c, const std::string& path) {
  if (const auto a = root["auth"]) {
    reject_unknown(a,
                   {"service", "signing_key_file", "token_lifetime_seconds", "refresh_token_lifetime_seconds",
                    "failed_login_limit", "failed_login_window_seconds"},
                   "auth.", path);
    read(a, "service", c.service, path);
    read(a, "signing_key_file", c.signing_key_file, path);
    read(a, "token_lifetime_seconds", c.token_lifetime_seconds, path);
    read(a, "refresh_token_lifetime_seconds", c.refresh_token_lifetime_seconds, path);
    read(a, "failed_login_limit", c.failed_login_limit, path);
    read(a, "failed_login_window_seconds", c.failed_login_window_seconds, path);
    if (c.token_lifetime_seconds <= 0 || c.refresh_token_lifetime_seconds <= 0 || c.failed_login_window_seconds <= 0)
      throw std::runtime_error(fmt::format("{}: auth lifetimes and windows must be positive", path));
  }
  if (const auto d = root["default_namespace"]) {
    reject_unknown(d, namespace_keys(), "default_namespace.", path);
    read_namespace_rule(d, c.policy.default_namespace, policy::namespace_setting_keys, "default_namespace.", path);
  }
  if (const auto nss = root["namespaces"]) {
    if (!nss.IsMap()) throw std::runtime_error(fmt::format("{}: `namespaces` must be a mapping of names", path));
    for (const auto& kv : nss) {
      policy::namespace_rule ns;
      ns.name = kv.first.as<std::string>();
      const std::string where = "namespaces." + ns.name + ".";
      if (!policy::valid_namespace_name(ns.name))
        throw std::runtime_error(fmt::format("{}: `namespaces.{}`: a namespace is one name component", path, ns.name));
      const auto body = kv.second;
      if (body && !body.IsNull()) {
        if (!body.IsMap()) throw std::runtime_error(fmt::format("{}: `{}` must be a mapping", path, where));
        auto known = namespace_keys();
        known.insert(policy::namespace_quota_keys.begin(), policy::namespace_quota_keys.end());
        known.insert("grants");
        reject_unknown(body, known, where, path);
        read_namespace_rule(body, ns, policy::namespace_setting_keys, where, path);
        read_namespace_rule(body, ns, policy::namespace_quota_keys, where, path);
        if (const auto grants = body["grants"]) {
          for (std::size_t i = 0; i < grants.size(); ++i) {
            c.policy.grants.push_back(
                read_grant(grants[i], fmt::format("{}grants[{}]", where, i), path, ns.name + "/*"));
          }
        }
      }
      c.policy.namespaces.push_back(std::move(ns));
    }
  }
  if (const auto grants = root["grants"]) {
    for (std::size_t i = 0; i < grants.size(); ++i) {
      c.policy.grants.push_back(read_grant(grants[i], fmt::format("grants[{}]", i), path, std::nullopt));
    }
  }
  if (const auto users = root["users"]) {
    for (std::size_t i = 0; i < users.size(); ++i) {
      const auto u = users[i];
      const std::string where = fmt::format("users[{}].", i);
      if (!u.IsMap()) throw std::runtime_error(fmt::format("{}: `users[{}]` must be a mapping", path, i));
      reject_unknown(u, {"name", "password_hash"}, where, path);
      policy::config_user user;
      read(u, "name", user.name, path);
      read(u, "password_hash", user.password_hash, path);
      if (!auth::valid_account_name(user.name) || user.name == "oidc")
        throw std::runtime_error(
            fmt::format("{}: `{}name` must match [a-z0-9][a-z0-9._-]{{0,63}} (not oidc)", path, where));
      if (!user.password_hash.starts_with("$argon2id$"))
        throw std::runtime_error(fmt::format(
            "{}: `{}password_hash` must be an argon2id hash (make one with `berth hash-password`)", path, where));
      c.users.push_back(std::move(user));
    }
  }
  if (const auto fed = root["federation"]) {
    for (std::size_t i = 0; i < fed.size(); ++i) {
      const auto f = fed[i];
      const std::string where = fmt::format("federation[{}].", i);
      if (!f.IsMap()) throw std::runtime_error(fmt::format("{}: `federation[{}]` must be a mapping", path, i));
      reject_unknown(f, {"name", "issuer", "audience", "jwks_file", "jwks_uri", "ca_file", "subject_claim", "rules"},
                     where, path);
      policy::federation_issuer issuer;
      read(f, "name", issuer.name, path);
      read(f, "issuer", issuer.issuer, path);
      issuer.audiences = strings(f["audience"], where + "audience", path);
      read(f, "jwks_file", issuer.jwks_file, path);
      read(f, "jwks_uri", issuer.jwks_uri, path);
      read(f, "ca_file", issuer.ca_file, path);
      read(f, "subject_claim", issuer.subject_claim, path);
      if (issuer.name.empty()) issuer.name = fmt::format("federation[{}]", i);
      if (issuer.issuer.empty()) throw std::runtime_error(fmt::format("{}: `{}issuer` is required", path, where));
      if (issuer.audiences.empty()) throw std::runtime_error(fmt::format("{}: `{}audience` is required", path, where));
      if (!issuer.jwks_file.empty() && !issuer.jwks_uri.empty())
        throw std::runtime_error(fmt::format("{}: `{}` takes jwks_file or jwks_uri, not both", path, where));
      // Without a file the keys are fetched: from jwks_uri, or found through the issuer's discovery document.
      const std::string& fetched_from = issuer.jwks_uri.empty() ? issuer.issuer : issuer.jwks_uri;
      if (issuer.jwks_file.empty() && !fetched_from.starts_with("https://"))
        throw std::runtime_error(fmt::format("{}: `{}{}` must be an https:// URL (or give jwks_file)", path, where,
                                             issuer.jwks_uri.empty() ? "issuer" : "jwks_uri"));
      if (const auto rules = f["rules"]) {
        for (std::size_t j = 0; j < rules.size(); ++j) {
          const auto r = rules[j];
          const std::string rw = fmt::format("{}rules[{}].", where, j);
          if (!r.IsMap()) throw std::runtime_error(fmt::format("{}: `{}` must be a mapping", path, rw));
          reject_unknown(r, {"name", "when", "actions", "repositories"}, rw, path);
          policy::federation_rule rule;
          read(r, "name", rule.name, path);
          read(r, "when", rule.when, path);
          rule.actions = strings(r["actions"], rw + "actions", path);
          rule.repositories = strings(r["repositories"], rw + "repositories", path);
          if (rule.name.empty()) rule.name = fmt::format("rules[{}]", j);
          if (rule.when.empty() || rule.actions.empty() || rule.repositories.empty())
            throw std::runtime_error(fmt::format("{}: `{}` needs when, actions and repositories", path, rw));
          (void)actions_of(r["actions"], rw + "actions", path);
          issuer.rules.push_back(std::move(rule));
        }
      }
      c.federation.push_back(std::move(issuer));
    }
  }
}

}  // namespace

config load_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  config c;
  if (root.IsNull()) return c;
  if (!root.IsMap()) throw std::runtime_error(fmt::format("{}: expected a mapping at the top level", path));
  reject_unknown(root,
                 {"listen", "data", "log_level", "log", "metrics", "tls", "limits", "trust_forwarded_headers",
                  "threads", "storage", "metadata", "auth", "namespaces", "default_namespace", "grants", "users",
                  "federation", "retention", "gc", "webhooks", "audit"},
                 "", path);
  read(root, "listen", c.listen, path);
  read(root, "data", c.data, path);
  read(root, "log_level", c.log_level, path);
  read(root, "trust_forwarded_headers", c.trust_forwarded_headers, path);
  read(root, "threads", c.threads, path);
  if (const auto log = root["log"]) {
    reject_unknown(log, {"access"}, "log.", path);
    std::string format = "off";
    read(log, "access", format, path);
    if (format == "text") {
      c.access_log = ops::access_log_format::text;
    } else if (format == "json") {
      c.access_log = ops::access_log_format::json;
    } else if (format != "off") {
      throw std::runtime_error(fmt::format("{}: `log.access` must be text, json or off", path));
    }
  }
  if (const auto metrics = root["metrics"]) {
    reject_unknown(metrics, {"public"}, "metrics.", path);
    read(metrics, "public", c.metrics_public, path);
  }
  if (const auto tls = root["tls"]) {
    reject_unknown(tls, {"certificate", "private_key"}, "tls.", path);
    http::tls_files files;
    read(tls, "certificate", files.certificate, path);
    read(tls, "private_key", files.private_key, path);
    if (files.certificate.empty() || files.private_key.empty())
      throw std::runtime_error(fmt::format("{}: tls needs both `certificate` and `private_key`", path));
    c.tls = std::move(files);
  }
  if (const auto limits = root["limits"]) {
    reject_unknown(limits,
                   {"manifest_max_bytes", "max_page", "shutdown_grace_seconds", "upload_idle_hours",
                    "body_idle_seconds", "max_connections", "max_connections_per_address"},
                   "limits.", path);
    read(limits, "manifest_max_bytes", c.manifest_max_bytes, path);
    read(limits, "max_page", c.max_page, path);
    read(limits, "shutdown_grace_seconds", c.shutdown_grace_seconds, path);
    read(limits, "upload_idle_hours", c.upload_idle_hours, path);
    read(limits, "body_idle_seconds", c.body_idle_seconds, path);
    read(limits, "max_connections", c.max_connections, path);
    read(limits, "max_connections_per_address", c.max_connections_per_address, path);
    if (c.upload_idle_hours < 1)
      throw std::runtime_error(fmt::format("{}: `upload_idle_hours` must be at least 1", path));
    if (c.body_idle_seconds < 1)
      throw std::runtime_error(fmt::format("{}: `body_idle_seconds` must be at least 1", path));
  }
  if (const auto gc = root["gc"]) {
    reject_unknown(gc, {"grace_minutes", "interval_minutes"}, "gc.", path);
    read(gc, "grace_minutes", c.gc_grace_minutes, path);
    read(gc, "interval_minutes", c.gc_interval_minutes, path);
    if (c.gc_grace_minutes < 0 || c.gc_interval_minutes < 0)
      throw std::runtime_error(fmt::format("{}: `gc.grace_minutes` and `gc.interval_minutes` cannot be negative", path));
  }
  if (const auto audit = root["audit"]) {
    reject_unknown(audit, {"retention_days"}, "audit.", path);
    read(audit, "retention_days", c.audit_retention_days, path);
    if (c.audit_retention_days < 0)
      throw std::runtime_error(fmt::format("{}: `audit.retention_days` must be 0 (keep for ever) or more", path));
  }
  try {
    read_backends(root, c, path);
    read_auth_sections(root, c, path);
    if (const auto retention = root["retention"]) read_retention(retention, c.retention, path);
    if (const auto webhooks = root["webhooks"]) read_webhooks(webhooks, c.webhooks, path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", path, e.what()));
  }
  return c;
}

}  // namespace berth::app
