#include "lifecycle/retention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "core/sync_wait.h"
#include "meta/test_temp_dir.h"

namespace berth::lifecycle {
namespace {

constexpr std::int64_t day = 86'400'000;
constexpr std::int64_t now = 100 * day;

digest dgst(char c) { return digest_of(std::string(1, c)); }

// Tags t0..t(n-1), t0 pushed first, one day apart, the newest pushed an hour ago.
std::vector<tag_entry> tags(int n) {
  std::vector<tag_entry> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({"t" + std::to_string(i), dgst(static_cast<char>('a' + i)), now - 3'600'000 - (n - 1 - i) * day, 1});
  }
  return out;
}

std::vector<std::string> names(const std::vector<tag_entry>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t.name);
  return out;
}

const immutable_fn none = [](std::string_view, std::string_view) { return false; };

std::vector<std::string> expired(const std::vector<tag_entry>& ts, const std::vector<retention_rule>& rules,
                                 const immutable_fn& immutable = none) {
  const auto matching = rules_for("dev/app", rules);
  return names(expired_tags("dev/app", ts, matching, now, immutable));
}

TEST(Retention, KeepLastKeepsTheMostRecentlyPushed) {
  auto ts = tags(5);
  std::ranges::reverse(ts);  // the order given does not matter
  EXPECT_EQ(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 2}}), (std::vector<std::string>{"t2", "t1", "t0"}));
  EXPECT_TRUE(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 5}}).empty());
  EXPECT_EQ(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 0}}).size(), 5u);
}

TEST(Retention, KeepDaysKeepsThoseYoungerThanTheWindow) {
  // Ages: t4 1h, t3 1d1h, t2 2d1h, t1 3d1h, t0 4d1h.
  EXPECT_EQ(expired(tags(5), {{.repositories = {"dev/app"}, .keep_days = 2}}),
            (std::vector<std::string>{"t2", "t1", "t0"}));
  EXPECT_EQ(expired(tags(5), {{.repositories = {"dev/app"}, .keep_days = 0}}).size(), 5u);
}

TEST(Retention, ATagGoesOnlyWhenNoMatchingRuleKeepsIt) {
  const std::vector<retention_rule> rules = {
      {.repositories = {"dev/*"}, .keep_last = 1},
      {.repositories = {"*"}, .keep_days = 4},
      {.repositories = {"prod/*"}, .keep_last = 0},  // does not match dev/app: keeps nothing here, deletes nothing
  };
  EXPECT_EQ(expired(tags(5), rules), (std::vector<std::string>{"t0"}));
}

TEST(Retention, ARuleWithOnlyUntaggedDaysJudgesNoTag) {
  EXPECT_TRUE(expired(tags(5), {{.repositories = {"dev/*"}, .untagged_days = 0}}).empty());
  // Beside a rule that judges tags, it neither keeps nor deletes any.
  EXPECT_EQ(expired(tags(5), {{.repositories = {"dev/*"}, .keep_last = 3}, {.repositories = {"*"}, .untagged_days = 0}}),
            (std::vector<std::string>{"t1", "t0"}));
}

TEST(Retention, ProtectPatternsAndImmutableTagsStay) {
  auto ts = tags(4);
  ts[0].name = "latest";
  ts[1].name = "v1.0";
  EXPECT_EQ(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 0, .protect = {"latest", "v*"}}}),
            (std::vector<std::string>{"t3", "t2"}));
  const immutable_fn t2_immutable = [](std::string_view repo, std::string_view tag) {
    return repo == "dev/app" && tag == "t2";
  };
  EXPECT_EQ(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 0, .protect = {"latest"}}}, t2_immutable),
            (std::vector<std::string>{"t3", "v1.0"}));
}

TEST(Retention, ARepositoryNoRuleMatchesIsUntouched) {
  EXPECT_TRUE(expired(tags(3), {{.repositories = {"prod/*", "dev/other"}, .keep_last = 0}}).empty());
  EXPECT_TRUE(expired(tags(3), {}).empty());
}

TEST(Retention, EqualPushTimesAreRankedByName) {
  std::vector<tag_entry> ts = {{"b", dgst('b'), now, 1}, {"a", dgst('a'), now, 1}, {"c", dgst('c'), now, 1}};
  EXPECT_EQ(expired(ts, {{.repositories = {"dev/*"}, .keep_last = 1}}), (std::vector<std::string>{"b", "c"}));
}

meta::manifest_record record(std::string content, std::vector<digest> refs, std::optional<digest> subject) {
  return meta::manifest_record{digest_of(content),
                               "application/vnd.oci.image.manifest.v1+json",
                               content,
                               subject,
                               "",
                               "",
                               std::move(refs),
                               0,
                               {}};
}

// A SQLite store whose repository dev/app the tests push to (the store's side of apply() runs on
// every store: metadata_store_contract's keep_needed test).
class RetentionRun : public ::testing::Test {
 protected:
  void put(const meta::manifest_record& rec, std::optional<std::string_view> tag, std::int64_t at) {
    const meta::push_stamp stamp{"user:test", at, ""};
    ASSERT_TRUE(sync_wait(m.put_manifest("dev/app", rec, tag, stamp)).has_value());
  }
  bool held(const digest& d) { return sync_wait(m.manifest_by_digest("dev/app", d)).value().has_value(); }

  meta::test_util::temp_dir dir_;
  std::unique_ptr<meta::metadata_store> store_ = meta::make_sqlite_metadata_store(dir_.file("berth.db"));
  meta::metadata_store& m = *store_;
};

// plan() and apply() over a real store: the kept index keeps its child, the expiring image goes
// before its referrer, and apply() deletes exactly what plan() listed.
TEST_F(RetentionRun, PlansAndAppliesOverAStore) {
  const auto child = record("child", {}, std::nullopt);
  const auto index = record("index", {child.dgst}, std::nullopt);
  const auto image = record("image", {}, std::nullopt);
  const auto signature = record("signature", {}, image.dgst);
  put(child, std::nullopt, 1);
  put(image, "old", 2);
  put(signature, std::nullopt, 3);
  put(child, "old-child", 4);
  put(index, "keep", 5);
  put(record("other", {}, std::nullopt), "other", 1);

  const retention_config config{{{.repositories = {"dev/*"}, .keep_last = 1}}, 0};
  auto planned = sync_wait(plan(m, config, std::nullopt, now, none));
  ASSERT_TRUE(planned.has_value());
  ASSERT_EQ(planned->size(), 1u);
  const auto& p = planned->front();
  EXPECT_EQ(p.repository, "dev/app");
  EXPECT_EQ(names(p.tags), (std::vector<std::string>{"old-child", "old", "other"}));
  EXPECT_EQ(p.manifests, (std::vector<digest>{image.dgst, digest_of("other"), signature.dgst}));
  auto filtered = sync_wait(plan(m, config, std::string_view("prod/*"), now, none));
  ASSERT_TRUE(filtered.has_value());
  EXPECT_TRUE(filtered->empty());

  auto applied = sync_wait(apply(m, *planned));
  ASSERT_TRUE(applied.has_value());
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ(names(applied->front().tags), names(p.tags));
  EXPECT_EQ(applied->front().manifests, p.manifests);
  for (const auto& d : p.manifests) EXPECT_FALSE(held(d));
  for (const auto& d : {child.dgst, index.dgst}) EXPECT_TRUE(held(d));
  auto again = sync_wait(plan(m, config, std::nullopt, now, none));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->empty());
}

// An index that the plan deletes, tagged again before apply(): it stays, and so do its children
// and its referrer, which the plan listed after it.
TEST_F(RetentionRun, AnIndexTaggedAgainKeepsItsChildrenAndReferrers) {
  const auto amd64 = record("amd64", {}, std::nullopt);
  const auto arm64 = record("arm64", {}, std::nullopt);
  const auto index = record("index", {amd64.dgst, arm64.dgst}, std::nullopt);
  const auto signature = record("signature", {}, index.dgst);
  put(amd64, std::nullopt, 1);
  put(arm64, std::nullopt, 1);
  put(index, "old", 2);
  put(signature, std::nullopt, 3);
  put(record("new", {}, std::nullopt), "new", 4);

  const retention_config config{{{.repositories = {"dev/*"}, .keep_last = 1}}, 0};
  auto planned = sync_wait(plan(m, config, std::nullopt, now, none));
  ASSERT_TRUE(planned.has_value());
  ASSERT_EQ(planned->size(), 1u);
  ASSERT_EQ(planned->front().manifests.size(), 4u);
  ASSERT_EQ(planned->front().manifests.front(), index.dgst);
  put(index, "again", 5);

  auto applied = sync_wait(apply(m, *planned));
  ASSERT_TRUE(applied.has_value());
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ(names(applied->front().tags), std::vector<std::string>{"old"});
  EXPECT_TRUE(applied->front().manifests.empty());
  for (const auto& d : {index.dgst, amd64.dgst, arm64.dgst, signature.dgst}) EXPECT_TRUE(held(d));
  EXPECT_EQ(sync_wait(m.manifest_by_tag("dev/app", "again")).value()->dgst, index.dgst);
  const auto referrers = sync_wait(m.referrers("dev/app", index.dgst, std::nullopt)).value();
  ASSERT_EQ(referrers.size(), 1u);
  EXPECT_EQ(referrers[0].dgst, signature.dgst);
}

// An index that lists a child and another index listing the same child: the plan reaches the child
// first (before the inner index that also lists it); apply() deletes it once neither is left.
TEST_F(RetentionRun, AChildTwoIndexesOfThePlanListGoesAfterBoth) {
  const auto child = record("child2", {}, std::nullopt);
  const auto inner = record("inner2", {child.dgst}, std::nullopt);
  const auto outer = record("outer", {child.dgst, inner.dgst}, std::nullopt);
  put(child, std::nullopt, 1);
  put(inner, std::nullopt, 1);
  put(outer, "old", 2);
  put(record("new", {}, std::nullopt), "new", 3);

  const retention_config config{{{.repositories = {"dev/*"}, .keep_last = 1}}, 0};
  auto planned = sync_wait(plan(m, config, std::nullopt, now, none));
  ASSERT_TRUE(planned.has_value());
  ASSERT_EQ(planned->size(), 1u);
  ASSERT_EQ(planned->front().manifests, (std::vector<digest>{outer.dgst, child.dgst, inner.dgst}));

  auto applied = sync_wait(apply(m, *planned));
  ASSERT_TRUE(applied.has_value());
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_EQ(applied->front().manifests, (std::vector<digest>{outer.dgst, inner.dgst, child.dgst}));
  for (const auto& d : {outer.dgst, inner.dgst, child.dgst}) EXPECT_FALSE(held(d));
}

}  // namespace
}  // namespace berth::lifecycle
