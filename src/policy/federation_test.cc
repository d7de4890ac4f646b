// Federation with fetched keys: a fake fetcher plays the issuer's web server (discovery document and
// JWKS), and Berth's own signing_key plays the issuer's keys.
#include "policy/federation.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>

#include "meta/test_temp_dir.h"

namespace berth::policy {
namespace {

constexpr std::string_view issuer_url = "https://issuer.example";

class FetchedFederation : public ::testing::Test {
 protected:
  auth::signing_key key(const std::string& name) { return auth::signing_key::load_or_create(dir_.file(name)); }

  // The issuer's web server now serves `jwks` (and the discovery document pointing at it).
  void serve(const auth::signing_key& k) {
    pages_[std::string(issuer_url) + "/.well-known/openid-configuration"] =
        nlohmann::json{{"issuer", issuer_url}, {"jwks_uri", std::string(issuer_url) + "/keys"}}.dump();
    pages_[std::string(issuer_url) + "/keys"] = k.public_jwks();
  }

  federation make(federation_issuer cfg = {}) {
    cfg.name = "ci";
    cfg.issuer = std::string(issuer_url);
    cfg.audiences = {"berth"};
    cfg.rules = {{"main", R"(ref == "refs/heads/main")", {"push"}, {"production/*"}}};
    return federation({cfg}, [this](const std::string& url, const std::string&) -> result<std::string> {
      ++fetches_;
      if (down_) return fail(errc::unavailable, "connection refused");
      auto page = pages_.find(url);
      if (page == pages_.end()) return fail(errc::unavailable, "HTTP status 404");
      return page->second;
    });
  }

  static std::string token(const auth::signing_key& k) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return k.sign({{"iss", issuer_url}, {"aud", "berth"}, {"sub", "repo:acme/shop:ref:refs/heads/main"},
                   {"ref", "refs/heads/main"}, {"iat", now}, {"exp", now + 300}});
  }

  meta::test_util::temp_dir dir_;
  std::map<std::string, std::string> pages_;
  int fetches_ = 0;
  bool down_ = false;
};

TEST_F(FetchedFederation, KeysAreFoundThroughTheDiscoveryDocument) {
  auto a = key("a.pem");
  serve(a);
  auto fed = make();
  EXPECT_EQ(fetches_, 2);  // discovery, then the JWKS
  auto who = fed.verify(token(a));
  ASSERT_TRUE(who) << who.error().detail;
  EXPECT_EQ(who->subject, "oidc:repo:acme/shop:ref:refs/heads/main");
  EXPECT_EQ(fetches_, 2);  // fresh keys are not fetched again
}

TEST_F(FetchedFederation, AConfiguredJwksUriSkipsDiscovery) {
  auto a = key("a.pem");
  pages_["https://keys.example/jwks"] = a.public_jwks();
  auto fed = make({.jwks_uri = "https://keys.example/jwks"});
  EXPECT_EQ(fetches_, 1);
  EXPECT_TRUE(fed.verify(token(a)));
}

TEST_F(FetchedFederation, ARotatedKeyIsFetchedOnceThenUnknownKeysWait) {
  auto a = key("a.pem");
  auto b = key("b.pem");
  auto c = key("c.pem");
  serve(a);
  auto fed = make();
  serve(b);  // the issuer rotates
  auto rotated = fed.verify(token(b));
  ASSERT_TRUE(rotated) << rotated.error().detail;
  EXPECT_EQ(fetches_, 3);  // the JWKS again (the discovered jwks_uri is kept)
  // A token with a key nobody publishes does not make every request fetch.
  auto forged = fed.verify(token(c));
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().detail, "unknown signing key");
  EXPECT_EQ(fetches_, 3);
}

TEST_F(FetchedFederation, AnIssuerDownAtStartUpIsRetriedWhenATokenArrivesNotOnEveryToken) {
  auto a = key("a.pem");
  serve(a);
  down_ = true;
  auto fed = make();  // does not throw: the registry starts without the issuer
  EXPECT_EQ(fetches_, 1);
  auto refused = fed.verify(token(a));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::unauthorized);
  EXPECT_NE(refused.error().detail.find("not available"), std::string::npos);
  EXPECT_EQ(fetches_, 2);  // the token made it try again
  EXPECT_FALSE(fed.verify(token(a)));
  EXPECT_EQ(fetches_, 2);  // but not for every token
}

TEST_F(FetchedFederation, ADiscoveryDocumentOfAnotherIssuerIsNotTrusted) {
  auto a = key("a.pem");
  serve(a);
  pages_[std::string(issuer_url) + "/.well-known/openid-configuration"] =
      nlohmann::json{{"issuer", "https://evil.example"}, {"jwks_uri", std::string(issuer_url) + "/keys"}}.dump();
  auto fed = make();
  EXPECT_EQ(fetches_, 1);
  EXPECT_FALSE(fed.verify(token(a)));
}

TEST_F(FetchedFederation, PreviewMatchesTheRulesOnClaimsWithoutAToken) {
  serve(key("a.pem"));
  auto fed = make();
  const nlohmann::json main{{"sub", "repo:acme/shop:ref:refs/heads/main"}, {"ref", "refs/heads/main"}};
  for (const std::string_view name : {std::string_view("ci"), issuer_url}) {
    auto who = fed.preview(name, main);
    ASSERT_TRUE(who) << who.error().detail;
    EXPECT_EQ(who->subject, "oidc:repo:acme/shop:ref:refs/heads/main");
    ASSERT_EQ(who->grants.size(), 1u);
    EXPECT_EQ(who->grants[0].repositories, std::vector<std::string>{"production/*"});
  }
  auto develop = fed.preview("ci", {{"sub", "repo:acme/shop:ref:refs/heads/develop"}, {"ref", "refs/heads/develop"}});
  ASSERT_TRUE(develop);
  EXPECT_TRUE(develop->grants.empty());
  EXPECT_EQ(fed.preview("other", main).error().code, errc::not_found);
  EXPECT_EQ(fed.preview("ci", {{"ref", "refs/heads/main"}}).error().code, errc::unauthorized);
}

}  // namespace
}  // namespace berth::policy
