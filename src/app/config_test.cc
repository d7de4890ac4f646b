#include "app/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace berth::app {
namespace {

// A file of this test's own (ctest runs tests in parallel), named with `suffix`, holding `text`.
std::string write_temp(const std::string& text, const std::string& suffix = ".yaml") {
  const auto path = std::filesystem::temp_directory_path() /
                    ("berth-config-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name() + suffix);
  std::ofstream(path) << text;
  return path.string();
}

TEST(Config, DefaultsWhenEmpty) {
  const auto c = load_config(write_temp(""));
  EXPECT_EQ(c.listen, "127.0.0.1:5000");
  EXPECT_EQ(c.data, "./berth-data");
  EXPECT_EQ(c.manifest_max_bytes, 4u * 1024 * 1024);
  EXPECT_FALSE(c.tls);
}

TEST(Config, ReadsEveryKey) {
  const auto c = load_config(write_temp(R"(
listen: 0.0.0.0:5443
data: /srv/berth
log_level: debug
trust_forwarded_headers: true
threads: 3
tls:
  certificate: /etc/berth/cert.pem
  private_key: /etc/berth/key.pem
limits:
  manifest_max_bytes: 1048576
  max_page: 500
  shutdown_grace_seconds: 5
  upload_idle_hours: 48
  body_idle_seconds: 7
  max_connections: 100
  max_connections_per_address: 10
gc:
  grace_minutes: 0.05
  interval_minutes: 5
)"));
  EXPECT_EQ(c.listen, "0.0.0.0:5443");
  EXPECT_EQ(c.data, "/srv/berth");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_TRUE(c.trust_forwarded_headers);
  EXPECT_EQ(c.threads, 3);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->certificate, "/etc/berth/cert.pem");
  EXPECT_EQ(c.manifest_max_bytes, 1048576u);
  EXPECT_EQ(c.max_page, 500u);
  EXPECT_EQ(c.shutdown_grace_seconds, 5);
  EXPECT_EQ(c.upload_idle_hours, 48);
  EXPECT_EQ(c.body_idle_seconds, 7);
  EXPECT_EQ(c.max_connections, 100u);
  EXPECT_EQ(c.max_connections_per_address, 10u);
  EXPECT_DOUBLE_EQ(c.gc_grace_minutes, 0.05);
  EXPECT_EQ(c.gc_interval_minutes, 5);
}

TEST(Config, OperationsKeys) {
  auto c = load_config(write_temp(""));
  EXPECT_EQ(c.access_log, ops::access_log_format::off);
  EXPECT_FALSE(c.metrics_public);
  c = load_config(write_temp("log: {access: json}\nmetrics: {public: true}\n"));
  EXPECT_EQ(c.access_log, ops::access_log_format::json);
  EXPECT_TRUE(c.metrics_public);
  EXPECT_EQ(load_config(write_temp("log: {access: text}\n")).access_log, ops::access_log_format::text);
  EXPECT_THROW(load_config(write_temp("log: {access: xml}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("log: {format: json}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("metrics: {public: maybe}\n")), std::runtime_error);
}

TEST(Config, RejectsUnknownKeysAndWrongTypes) {
  EXPECT_THROW(load_config(write_temp("listne: x\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  manifest_max_bytes: lots\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("tls:\n  certificate: a.pem\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  upload_idle_hours: 0\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  body_idle_seconds: 0\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("gc:\n  grace_minutes: -1\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("gc:\n  every: 5\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("limits:\n  max_connections: -1\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("- a\n- b\n")), std::runtime_error);
  EXPECT_THROW(load_config("/nonexistent/berth.yaml"), std::runtime_error);
}

TEST(Config, AuthNamespacesGrantsUsersFederation) {
  const auto c = load_config(write_temp(R"(
auth:
  service: registry.example.com
  token_lifetime_seconds: 60
  failed_login_limit: 3
namespaces:
  production:
    creation: explicit
    immutable_tags: ["v*", "main-*"]
    grants:
      - subject: robot:deploy
        actions: [pull]
  public:
    visibility: public-pull
default_namespace:
  creation: explicit
grants:
  - subject: robot:ci
    actions: pull,push
    repositories: ["staging/*", "development/*"]
users:
  - name: alice
    password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
federation:
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audience: registry.example.com
    jwks_file: /etc/berth/jwks.json
    rules:
      - when: 'ref == "refs/heads/main"'
        actions: [push]
        repositories: production/*
)"));
  EXPECT_EQ(c.service, "registry.example.com");
  EXPECT_EQ(c.token_lifetime_seconds, 60);
  EXPECT_EQ(c.failed_login_limit, 3);
  ASSERT_EQ(c.policy.namespaces.size(), 2u);
  EXPECT_EQ(c.policy.namespaces[0].name, "production");
  EXPECT_EQ(c.policy.namespaces[0].create, policy::creation::explicit_);
  EXPECT_EQ(c.policy.namespaces[0].immutable_tags, (std::vector<std::string>{"v*", "main-*"}));
  EXPECT_TRUE(c.policy.namespaces[1].immutable_tags.empty());
  EXPECT_EQ(c.policy.namespaces[1].vis, policy::visibility::public_pull);
  EXPECT_EQ(c.policy.default_namespace.create, policy::creation::explicit_);
  ASSERT_EQ(c.policy.grants.size(), 2u);
  EXPECT_EQ(c.policy.grants[0].repositories, std::vector<std::string>{"production/*"});
  EXPECT_EQ(c.policy.grants[0].source, "namespaces.production.grants[0]");
  EXPECT_EQ(c.policy.grants[1].actions.str(), "pull,push");
  ASSERT_EQ(c.users.size(), 1u);
  ASSERT_EQ(c.federation.size(), 1u);
  EXPECT_EQ(c.federation[0].audiences, std::vector<std::string>{"registry.example.com"});
  EXPECT_EQ(c.federation[0].rules[0].name, "rules[0]");
}

TEST(Config, ReadsNamespaceQuotas) {
  const auto c = load_config(write_temp("namespaces:\n  dev:\n    quota_bytes: 200GiB\n    max_repositories: 5\n"
                                        "  ops:\n    quota_bytes: 1048576\n  free: {}\n"));
  ASSERT_EQ(c.policy.namespaces.size(), 3u);
  EXPECT_EQ(c.policy.namespaces[0].quota_bytes, 200ull << 30);
  EXPECT_EQ(c.policy.namespaces[0].max_repositories, 5u);
  EXPECT_EQ(c.policy.namespaces[1].quota_bytes, 1048576u);
  EXPECT_EQ(c.policy.namespaces[1].max_repositories, std::nullopt);
  EXPECT_EQ(c.policy.namespaces[2].quota_bytes, std::nullopt);
  try {
    load_config(write_temp("namespaces:\n  dev:\n    quota_bytes: lots\n"));
    ADD_FAILURE() << "a quota that is not a size was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("`namespaces.dev.quota_bytes`: `lots` is not a size"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_config(write_temp("namespaces:\n  dev:\n    max_repositories: -1\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  dev:\n    max_repositories: [1]\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  dev:\n    quota_bytes: {a: 1}\n")), std::runtime_error);
}

TEST(Config, RejectsBadAuthSections) {
  EXPECT_THROW(load_config(write_temp("auth:\n  servce: x\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  prod:\n    visibility: open\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  prod:\n    creation: lazy\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  a/b: {}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  prod:\n    immutable_tags: {a: b}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("namespaces:\n  prod:\n    immutable_tags: ['']\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("grants:\n  - subject: x\n    actions: [write]\n    repositories: [a]\n")),
               std::runtime_error);
  EXPECT_THROW(load_config(write_temp("grants:\n  - subject: x\n    actions: [pull]\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("users:\n  - name: bob\n    password_hash: plain\n")), std::runtime_error);
  // Keys fetched from a plain-HTTP issuer, or from two sources, are refused.
  EXPECT_THROW(load_config(write_temp("federation:\n  - issuer: x\n    audience: y\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("federation:\n  - issuer: https://x\n    audience: y\n"
                                      "    jwks_uri: http://x/keys\n")),
               std::runtime_error);
  EXPECT_THROW(load_config(write_temp("federation:\n  - issuer: https://x\n    audience: y\n"
                                      "    jwks_uri: https://x/keys\n    jwks_file: k.json\n")),
               std::runtime_error);
  auto discovered =
      load_config(write_temp("federation:\n  - issuer: https://x\n    audience: y\n    ca_file: ca.pem\n"));
  ASSERT_EQ(discovered.federation.size(), 1u);
  EXPECT_EQ(discovered.federation[0].ca_file, "ca.pem");
  EXPECT_TRUE(discovered.federation[0].jwks_file.empty());
}

TEST(Config, StorageAndMetadataBackends) {
  const auto defaults = load_config(write_temp(""));
  EXPECT_EQ(defaults.storage, config::storage_driver::filesystem);
  EXPECT_EQ(defaults.metadata, config::metadata_driver::sqlite);

  const auto c = load_config(write_temp(R"(
storage:
  driver: s3
  s3:
    endpoint: https://s3.example.com
    region: eu-west-1
    bucket: berth
    prefix: registry
    access_key_file: /etc/berth/ak
    secret_key_file: /etc/berth/sk
    path_style: true
    ca_file: /etc/berth/ca.pem
    redirect_downloads: true
metadata:
  driver: postgres
  postgres:
    url_file: /etc/berth/pg-url
    max_connections: 32
auth:
  signing_key_file: /etc/berth/signing.pem
)"));
  EXPECT_EQ(c.storage, config::storage_driver::s3);
  EXPECT_EQ(c.s3.endpoint, "https://s3.example.com");
  EXPECT_EQ(c.s3.region, "eu-west-1");
  EXPECT_EQ(c.s3.bucket, "berth");
  EXPECT_EQ(c.s3.prefix, "registry/");  // a prefix is a folder
  EXPECT_EQ(c.s3.access_key_file, "/etc/berth/ak");
  EXPECT_EQ(c.s3.secret_key_file, "/etc/berth/sk");
  EXPECT_TRUE(c.s3.path_style);
  EXPECT_EQ(c.s3.ca_file, "/etc/berth/ca.pem");
  EXPECT_TRUE(c.s3.redirect_downloads);
  EXPECT_EQ(c.metadata, config::metadata_driver::postgres);
  EXPECT_EQ(c.postgres.url_file, "/etc/berth/pg-url");
  EXPECT_EQ(c.postgres.max_connections, 32u);
  EXPECT_EQ(c.signing_key_file, "/etc/berth/signing.pem");
}

TEST(Config, RejectsBadBackends) {
  for (const char* bad : {
           "storage:\n  driver: gcs\n",
           "storage:\n  driver: s3\n",  // no endpoint, no bucket
           "storage:\n  driver: s3\n  s3:\n    endpoint: s3.example.com\n    bucket: b\n",
           "storage:\n  driver: s3\n  s3:\n    endpoint: http://h\n",
           "storage:\n  driver: s3\n  s3:\n    endpoint: http://h\n    bucket: b\n    access_key_file: ak\n",
           "storage:\n  s3:\n    bukket: b\n", "metadata:\n  driver: mysql\n",
           "metadata:\n  postgres:\n    max_connections: 0\n",
           "metadata:\n  postgres:\n    url: postgresql://x\n",  // the URL holds a password: a file only
       }) {
    EXPECT_THROW(load_config(write_temp(bad)), std::runtime_error) << bad;
  }
}

TEST(Config, RetentionRulesAsAListOrWithASchedule) {
  const auto c = load_config(write_temp(R"(
retention:
  - repositories: ["development/*", "staging/*"]
    keep_last: 10
    keep_days: 14
    protect: ["latest", "v*"]
  - repositories: tools/*
    keep_last: 0
  - repositories: ["*"]
    untagged_days: 7
)"));
  ASSERT_EQ(c.retention.rules.size(), 3u);
  const auto& r = c.retention.rules[0];
  EXPECT_EQ(r.repositories, (std::vector<std::string>{"development/*", "staging/*"}));
  EXPECT_EQ(r.keep_last, 10);
  EXPECT_EQ(r.keep_days, 14);
  EXPECT_EQ(r.protect, (std::vector<std::string>{"latest", "v*"}));
  EXPECT_EQ(r.source, "retention[0]");
  EXPECT_EQ(c.retention.rules[1].keep_last, 0);
  EXPECT_FALSE(c.retention.rules[1].keep_days);
  EXPECT_FALSE(c.retention.rules[1].untagged_days);
  EXPECT_EQ(c.retention.rules[2].untagged_days, 7);  // a rule may judge untagged manifests only
  EXPECT_FALSE(c.retention.rules[2].keep_last);
  EXPECT_EQ(c.retention.interval_minutes, 0);

  const auto s = load_config(write_temp("retention:\n  interval_minutes: 30\n  rules:\n"
                                        "    - repositories: [a/*]\n      keep_days: 1\n"));
  EXPECT_EQ(s.retention.interval_minutes, 30);
  ASSERT_EQ(s.retention.rules.size(), 1u);
  EXPECT_EQ(s.retention.rules[0].source, "retention.rules[0]");
}

TEST(Config, AuditRetentionDays) {
  EXPECT_EQ(load_config(write_temp("listen: 127.0.0.1:5000\n")).audit_retention_days, 90);
  EXPECT_EQ(load_config(write_temp("audit: {retention_days: 0}\n")).audit_retention_days, 0);
  EXPECT_EQ(load_config(write_temp("audit: {retention_days: 365}\n")).audit_retention_days, 365);
  EXPECT_EQ(load_config(write_temp("listen: 127.0.0.1:5000\n")).webhooks.retention_days, 30);
  EXPECT_EQ(load_config(write_temp("webhooks: {retention_days: 7, hooks: []}\n")).webhooks.retention_days, 7);
  EXPECT_THROW(load_config(write_temp("webhooks: {retention_days: -1}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("audit: {retention_days: -1}\n")), std::runtime_error);
  EXPECT_THROW(load_config(write_temp("audit: {keep_days: 3}\n")), std::runtime_error);
}

TEST(Config, RejectsBadRetentionRulesNamingTheFileAndKey) {
  const auto message = [](const std::string& yaml) {
    const auto path = write_temp(yaml);
    try {
      load_config(path);
    } catch (const std::runtime_error& e) {
      const std::string what = e.what();
      EXPECT_TRUE(what.starts_with(path)) << what;
      return what;
    }
    ADD_FAILURE() << "accepted: " << yaml;
    return std::string();
  };
  EXPECT_NE(message("retention:\n  - repositories: [a]\n    keep_lsat: 1\n").find("`retention[0].keep_lsat`"),
            std::string::npos);
  EXPECT_NE(message("retention:\n  - repositories: [a]\n").find("needs keep_last, keep_days or untagged_days"), std::string::npos);
  EXPECT_NE(message("retention:\n  - keep_last: 1\n").find("`retention[0].repositories`"), std::string::npos);
  EXPECT_NE(message("retention:\n  - repositories: [a]\n    keep_last: -1\n").find("keep_last"), std::string::npos);
  EXPECT_NE(message("retention:\n  - repositories: [a]\n    untagged_days: -1\n").find("`retention[0].untagged_days`"),
            std::string::npos);
  EXPECT_NE(message("retention:\n  - repositories: [Dev/*]\n    keep_last: 1\n")
                .find("`retention[0].repositories` has `Dev/*`, which is not a repository pattern"),
            std::string::npos);
  EXPECT_NE(message("retention:\n  - repositories: [a]\n    keep_last: 1\n    protect: [\"v 1\"]\n")
                .find("`retention[0].protect` has `v 1`"),
            std::string::npos);
  EXPECT_NE(message("retention:\n  interval: 5\n").find("`retention.interval`"), std::string::npos);
  EXPECT_NE(message("retention:\n  interval_minutes: -1\n").find("interval_minutes"), std::string::npos);
  EXPECT_NE(message("retention: 7\n").find("list of rules"), std::string::npos);
}

// A webhook's secret file, and the YAML of one webhook with `extra` lines (indented 4).
std::string webhook_yaml(const std::string& extra, bool with_options = false) {
  const auto secret = write_temp("shh\n", ".secret");
  std::string hook = "  - name: deploy\n    url: https://ci.example/hook\n    events: [push, retention]\n"
                     "    repositories: [\"production/*\"]\n    secret_file: " + secret + "\n" + extra;
  if (!with_options) return "webhooks:\n" + hook;
  std::string indented;
  for (std::size_t at = 0; at < hook.size();) {
    const auto end = hook.find('\n', at) + 1;
    indented += "  " + hook.substr(at, end - at);
    at = end;
  }
  return "webhooks:\n  retry_base_ms: 50\n  registry_host: registry.example\n  hooks:\n" + indented;
}

TEST(Config, ReadsWebhooksAndTheirSecrets) {
  const auto c = load_config(write_temp(webhook_yaml("    timeout_seconds: 3\n")));
  ASSERT_EQ(c.webhooks.hooks.size(), 1u);
  const auto& h = c.webhooks.hooks[0];
  EXPECT_EQ(h.name, "deploy");
  EXPECT_EQ(h.url, "https://ci.example/hook");
  EXPECT_EQ(h.events, (std::vector<std::string>{"push", "retention"}));
  EXPECT_EQ(h.repositories, (std::vector<std::string>{"production/*"}));
  EXPECT_EQ(h.secret, "shh");  // without the newline
  EXPECT_EQ(h.timeout_seconds, 3);
  EXPECT_EQ(c.webhooks.retry_base_ms, 1000);
  const auto o = load_config(write_temp(webhook_yaml("", true)));
  ASSERT_EQ(o.webhooks.hooks.size(), 1u);
  EXPECT_EQ(o.webhooks.hooks[0].timeout_seconds, 10);
  EXPECT_EQ(o.webhooks.retry_base_ms, 50);
  EXPECT_EQ(o.webhooks.registry_host, "registry.example");
  EXPECT_EQ(h.ca_file, "");
  const auto ca = write_temp("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", ".pem");
  const auto t = load_config(write_temp(webhook_yaml("    ca_file: " + ca + "\n")));
  EXPECT_EQ(t.webhooks.hooks[0].ca_file, ca);
}

TEST(Config, RejectsBadWebhooksNamingTheKey) {
  const auto message = [](const std::string& yaml) {
    try {
      load_config(write_temp(yaml));
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted: " << yaml;
    return std::string();
  };
  const auto has = [&](const std::string& yaml, const std::string& text) {
    const auto m = message(yaml);
    EXPECT_NE(m.find(text), std::string::npos) << m;
  };
  has("webhooks:\n  - name: a\n    url: http://x\n    events: [push, pull]\n", "`webhooks[0].events` has `pull`");
  has(webhook_yaml("    timeout_seconds: 0\n"), "`webhooks[0].timeout_seconds` must be 1 to 300");
  has(webhook_yaml("    secret: inline\n"), "unknown key `webhooks[0].secret`");
  has("webhooks:\n  - name: a\n    url: ftp://x\n", "`webhooks[0].url` must start with http:// or https://");
  has("webhooks:\n  - name: A B\n", "`webhooks[0].name` must be 1 to 64");
  has("webhooks:\n  - name: a\n    url: http://x\n    events: [push]\n    repositories: ['*']\n",
      "`webhooks[0].secret_file` is required");
  has("webhooks:\n  - name: a\n    url: http://x\n    events: [push]\n    repositories: ['*']\n"
      "    secret_file: /nonexistent/secret\n",
      "names /nonexistent/secret, which cannot be read");
  has(webhook_yaml("") + webhook_yaml("").substr(10), "two webhooks are named deploy");
  has("webhooks:\n  retry_base_ms: 0\n", "`webhooks.retry_base_ms` must be 1 to 60000");
  has(webhook_yaml("    ca_file: /nonexistent/ca.pem\n"), "`webhooks[0].ca_file` names /nonexistent/ca.pem, which cannot be read");
  has(webhook_yaml("    ca_file: " + write_temp("not a certificate\n", ".pem") + "\n"), "which holds no PEM certificate");
  const auto http_hook = webhook_yaml("    ca_file: /etc/ssl/ca.pem\n");
  has(http_hook.substr(0, http_hook.find("https://")) + "http://" + http_hook.substr(http_hook.find("https://") + 8),
      "`webhooks[0].ca_file` is for an https:// url");
  has("webhooks: 3\n", "must be a list of webhooks");
  // The secret never appears in a message.
  EXPECT_EQ(message(webhook_yaml("    timeout_seconds: 0\n")).find("shh"), std::string::npos);
}

}  // namespace
}  // namespace berth::app
