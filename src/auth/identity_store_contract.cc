// The identity_store contract (see identity_store_contract.h and the comments in identity_store.h).
#include "auth/identity_store_contract.h"

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/sync_wait.h"

namespace berth::auth::contract {

void IdentityStoreContract::SetUp() {
  storage_ = GetParam().fresh_storage();
  store_ = storage_->open(pool_);
}

void IdentityStoreContract::TearDown() {
  store_.reset();
  storage_.reset();
}

void IdentityStoreContract::reopen() {
  store_.reset();
  store_ = storage_->open(pool_);
}

namespace {

using names = std::vector<std::string>;

// The value of a call that must succeed.
template <class T>
T ok(awaitable<result<T>> call) {
  auto r = sync_wait(std::move(call));
  if (!r) throw std::runtime_error("unexpected failure: " + r.error().detail);
  return std::move(*r);
}

void ok(awaitable<result<void>> call) {
  auto r = sync_wait(std::move(call));
  if (!r) throw std::runtime_error("unexpected failure: " + r.error().detail);
}

names user_names(identity_store& s) {
  names out;
  for (const auto& u : ok(s.list_users())) out.push_back(u.name);
  return out;
}

names robot_names(identity_store& s) {
  names out;
  for (const auto& r : ok(s.list_robots())) out.push_back(r.name);
  return out;
}

std::vector<std::int64_t> grant_ids(const std::vector<stored_grant>& grants) {
  std::vector<std::int64_t> out;
  for (const auto& g : grants) out.push_back(g.id);
  return out;
}

// ---- users ----

TEST_P(IdentityStoreContract, AnEmptyStoreHasNothing) {
  EXPECT_FALSE(ok(store_->has_users()));
  EXPECT_FALSE(ok(store_->find_user("alice")));
  EXPECT_TRUE(ok(store_->list_users()).empty());
  EXPECT_FALSE(ok(store_->find_robot("ci")));
  EXPECT_FALSE(ok(store_->robot_by_token("berth_nothing")));
  EXPECT_TRUE(ok(store_->list_robots()).empty());
  EXPECT_TRUE(ok(store_->grants(std::nullopt)).empty());
}

TEST_P(IdentityStoreContract, PutUserCreatesThenReplacesTheHash) {
  ok(store_->put_user("alice", "$argon2id$1"));
  EXPECT_TRUE(ok(store_->has_users()));
  auto first = ok(store_->find_user("alice"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->name, "alice");
  EXPECT_EQ(first->password_hash, "$argon2id$1");
  EXPECT_GT(first->created_at, 0);

  ok(store_->put_user("alice", "$argon2id$2"));  // the same name again: the password changes
  auto second = ok(store_->find_user("alice"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->password_hash, "$argon2id$2");
  EXPECT_EQ(second->created_at, first->created_at);
  EXPECT_EQ(user_names(*store_), names{"alice"});
}

// The first start's admin comes with its grant, only into a store without users, once however many
// instances start at the same time.
TEST_P(IdentityStoreContract, TheFirstAdminIsCreatedOnceWithItsGrant) {
  constexpr int starts = 8;
  std::atomic<int> created = 0;
  {
    std::vector<std::jthread> instances;
    for (int i = 0; i < starts; ++i) {
      instances.emplace_back([&, i] {
        if (ok(store_->create_first_admin(fmt::format("$argon2id${}", i)))) ++created;
      });
    }
  }
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(user_names(*store_), names{"admin"});
  const auto grants = ok(store_->grants(std::nullopt));
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].subject, "user:admin");
  EXPECT_EQ(grants[0].actions, "admin");
  EXPECT_EQ(grants[0].repository, "*");
  const auto hash = ok(store_->find_user("admin"))->password_hash;
  EXPECT_FALSE(ok(store_->create_first_admin("$argon2id$later")));
  EXPECT_EQ(ok(store_->find_user("admin"))->password_hash, hash);
}

// Any user, not only an admin, means the first start is over.
TEST_P(IdentityStoreContract, NoFirstAdminBesideAnotherUser) {
  ok(store_->put_user("alice", "$argon2id$1"));
  EXPECT_FALSE(ok(store_->create_first_admin("$argon2id$2")));
  EXPECT_EQ(user_names(*store_), names{"alice"});
  EXPECT_TRUE(ok(store_->grants(std::nullopt)).empty());
}

TEST_P(IdentityStoreContract, FindUserMatchesTheExactName) {
  ok(store_->put_user("alice", "h"));
  EXPECT_FALSE(ok(store_->find_user("alic")));
  EXPECT_FALSE(ok(store_->find_user("alice2")));
  EXPECT_FALSE(ok(store_->find_user("")));
}

TEST_P(IdentityStoreContract, ListUsersIsInByteOrderWithoutHashes) {
  for (const char* n : {"b", "a_x", "a", "a.x", "a0", "a-x"}) ok(store_->put_user(n, "secret-hash"));
  names expected{"b", "a_x", "a", "a.x", "a0", "a-x"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(user_names(*store_), expected);
  for (const auto& u : ok(store_->list_users())) {
    EXPECT_TRUE(u.password_hash.empty()) << u.name;
    EXPECT_GT(u.created_at, 0) << u.name;
  }
}

TEST_P(IdentityStoreContract, DeleteUserIsIdempotentAndTakesOnlyItsOwnGrants) {
  ok(store_->put_user("alice", "h"));
  ok(store_->put_user("bob", "h"));
  ok(store_->add_grant("user:alice", "pull", "a/*"));
  const auto bobs = ok(store_->add_grant("user:bob", "pull", "b/*"));
  const auto robots = ok(store_->add_grant("robot:alice", "pull", "r/*"));
  const auto everyone = ok(store_->add_grant("*", "pull", "pub/*"));

  EXPECT_TRUE(ok(store_->delete_user("alice")));
  EXPECT_FALSE(ok(store_->find_user("alice")));
  EXPECT_EQ(user_names(*store_), names{"bob"});
  EXPECT_EQ(grant_ids(ok(store_->grants(std::nullopt))), (std::vector<std::int64_t>{bobs, robots, everyone}));

  EXPECT_FALSE(ok(store_->delete_user("alice")));
  EXPECT_FALSE(ok(store_->delete_user("nobody")));
  EXPECT_TRUE(ok(store_->delete_user("bob")));
  EXPECT_FALSE(ok(store_->has_users()));
}

// ---- robots ----

TEST_P(IdentityStoreContract, CreateRobotReturnsATokenThatFindsIt) {
  const auto token = ok(store_->create_robot("ci", "pushes builds", std::nullopt));
  EXPECT_TRUE(token.starts_with(robot_token_prefix));
  EXPECT_EQ(token.size(), robot_token_prefix.size() + 43);

  auto robot = ok(store_->robot_by_token(token));
  ASSERT_TRUE(robot);
  EXPECT_EQ(robot->name, "ci");
  EXPECT_EQ(robot->description, "pushes builds");
  EXPECT_FALSE(robot->expires_at);
  EXPECT_FALSE(robot->revoked_at);
  EXPECT_GT(robot->created_at, 0);
  EXPECT_TRUE(robot->active(robot->created_at));

  EXPECT_FALSE(ok(store_->robot_by_token(token + "x")));
  EXPECT_FALSE(ok(store_->robot_by_token(token.substr(0, token.size() - 1))));
  EXPECT_FALSE(ok(store_->robot_by_token("")));
}

TEST_P(IdentityStoreContract, EachRobotGetsItsOwnToken) {
  const auto a = ok(store_->create_robot("a", "", std::nullopt));
  const auto b = ok(store_->create_robot("b", "", std::nullopt));
  EXPECT_NE(a, b);
  EXPECT_EQ(ok(store_->robot_by_token(a))->name, "a");
  EXPECT_EQ(ok(store_->robot_by_token(b))->name, "b");
}

TEST_P(IdentityStoreContract, ARobotNameIsNeverReused) {
  const auto token = ok(store_->create_robot("ci", "first", std::nullopt));
  auto again = sync_wait(store_->create_robot("ci", "second", std::nullopt));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::already_exists);
  EXPECT_NE(again.error().detail.find("ci"), std::string::npos) << again.error().detail;

  EXPECT_TRUE(ok(store_->revoke_robot("ci")));
  auto after_revoke = sync_wait(store_->create_robot("ci", "third", std::nullopt));
  ASSERT_FALSE(after_revoke);
  EXPECT_EQ(after_revoke.error().code, errc::already_exists);
  EXPECT_EQ(ok(store_->find_robot("ci"))->description, "first");  // the refused creations changed nothing
  EXPECT_EQ(ok(store_->robot_by_token(token))->name, "ci");
}

TEST_P(IdentityStoreContract, RevokeRobotOnceThenNotFound) {
  const auto token = ok(store_->create_robot("ci", "", std::nullopt));
  EXPECT_TRUE(ok(store_->revoke_robot("ci")));
  EXPECT_FALSE(ok(store_->revoke_robot("ci")));
  EXPECT_FALSE(ok(store_->revoke_robot("nobody")));

  // A revoked robot is still found, by name and by token, and is not active.
  auto by_token = ok(store_->robot_by_token(token));
  ASSERT_TRUE(by_token);
  ASSERT_TRUE(by_token->revoked_at);
  EXPECT_GE(*by_token->revoked_at, by_token->created_at);
  EXPECT_FALSE(by_token->active(by_token->created_at));
  auto by_name = ok(store_->find_robot("ci"));
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->revoked_at, by_token->revoked_at);
}

TEST_P(IdentityStoreContract, RobotExpiryIsKept) {
  ok(store_->create_robot("temp", "for a day", 1000));
  ok(store_->create_robot("forever", "", std::nullopt));
  auto temp = ok(store_->find_robot("temp"));
  ASSERT_TRUE(temp);
  EXPECT_EQ(temp->expires_at, 1000);
  EXPECT_TRUE(temp->active(999));
  EXPECT_FALSE(temp->active(1000));
  auto forever = ok(store_->find_robot("forever"));
  ASSERT_TRUE(forever);
  EXPECT_FALSE(forever->expires_at);
  EXPECT_FALSE(ok(store_->find_robot("nobody")));
}

TEST_P(IdentityStoreContract, ListRobotsIsInByteOrderAndIncludesRevokedOnes) {
  for (const char* n : {"z", "a-b", "a", "a.b", "m"}) ok(store_->create_robot(n, "", std::nullopt));
  ok(store_->revoke_robot("m"));
  names expected{"z", "a-b", "a", "a.b", "m"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(robot_names(*store_), expected);
  for (const auto& r : ok(store_->list_robots())) EXPECT_EQ(r.revoked_at.has_value(), r.name == "m") << r.name;
}

TEST_P(IdentityStoreContract, PutRobotStoresARobotAsItIsAndItsTokenWorks) {
  const auto made = ok(store_->create_robot("made", "", std::nullopt));
  EXPECT_EQ(ok(store_->find_robot("made"))->token_hash, robot_token_hash(made));

  // A robot as berth migrate copies it from another store: its token hash, dates and revocation.
  const auto token = new_robot_token();
  const robot_record ci{"ci", "pushes", 4000000000, std::nullopt, 1234, robot_token_hash(token)};
  const robot_record old{"old", "", std::nullopt, 2000, 1000, robot_token_hash(new_robot_token())};
  ok(store_->put_robot(ci));
  ok(store_->put_robot(old));
  auto copied = ok(store_->robot_by_token(token));
  ASSERT_TRUE(copied);
  EXPECT_EQ(copied->name, "ci");
  EXPECT_EQ(copied->description, "pushes");
  EXPECT_EQ(copied->expires_at, 4000000000);
  EXPECT_EQ(copied->created_at, 1234);
  EXPECT_FALSE(copied->revoked_at);
  EXPECT_EQ(copied->token_hash, ci.token_hash);
  auto revoked = ok(store_->find_robot("old"));
  ASSERT_TRUE(revoked);
  EXPECT_EQ(revoked->revoked_at, 2000);
  EXPECT_EQ(robot_names(*store_), (names{"ci", "made", "old"}));

  auto again = sync_wait(store_->put_robot(robot_record{"ci", "", std::nullopt, std::nullopt, 1, "x"}));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::already_exists);
  EXPECT_EQ(ok(store_->find_robot("ci"))->description, "pushes");
}

TEST_P(IdentityStoreContract, UpdateRobotChangesDescriptionAndExpiryAndKeepsTheToken) {
  const auto token = ok(store_->create_robot("ci", "old words", 4102444800));
  EXPECT_TRUE(ok(store_->update_robot("ci", "builds of main", std::nullopt)));
  auto robot = ok(store_->robot_by_token(token));
  ASSERT_TRUE(robot);
  EXPECT_EQ(robot->description, "builds of main");
  EXPECT_FALSE(robot->expires_at);
  EXPECT_TRUE(ok(store_->update_robot("ci", "builds of main", 4102444800)));
  EXPECT_EQ(ok(store_->find_robot("ci"))->expires_at, 4102444800);
  // Unknown and revoked robots are not changed.
  EXPECT_FALSE(ok(store_->update_robot("nobody", "x", std::nullopt)));
  ok(store_->revoke_robot("ci"));
  EXPECT_FALSE(ok(store_->update_robot("ci", "again", std::nullopt)));
  EXPECT_EQ(ok(store_->find_robot("ci"))->description, "builds of main");
}

// ---- namespaces ----

TEST_P(IdentityStoreContract, NamespacesArePutReplacedListedInByteOrderAndDeletedOnce) {
  EXPECT_TRUE(ok(store_->namespaces()).empty());
  ok(store_->put_namespace("staging", R"({"visibility":"private"})"));
  ok(store_->put_namespace("Zeta", "{}"));
  ok(store_->put_namespace("staging", R"({"creation":"explicit"})"));
  auto all = ok(store_->namespaces());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "Zeta");
  EXPECT_EQ(all[1].name, "staging");
  EXPECT_EQ(all[1].settings, R"({"creation":"explicit"})");
  EXPECT_GT(all[1].updated_at, 0);
  EXPECT_TRUE(ok(store_->delete_namespace("staging")));
  EXPECT_FALSE(ok(store_->delete_namespace("staging")));
  EXPECT_FALSE(ok(store_->delete_namespace("never")));
  all = ok(store_->namespaces());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "Zeta");
}

// ---- grants ----

TEST_P(IdentityStoreContract, GrantIdsArePositiveAndIncreasing) {
  const auto a = ok(store_->add_grant("robot:ci", "pull,push", "staging/*"));
  const auto b = ok(store_->add_grant("user:bob", "pull", "production/*"));
  const auto c = ok(store_->add_grant("robot:ci", "delete", "staging/tmp"));
  EXPECT_GT(a, 0);
  EXPECT_GT(b, a);
  EXPECT_GT(c, b);
  EXPECT_TRUE(ok(store_->delete_grant(c)));
  const auto d = ok(store_->add_grant("*", "pull", "public/*"));
  EXPECT_GT(d, c);  // ids are not reused, even after a delete
}

TEST_P(IdentityStoreContract, GrantsListInIdOrderAndFilterByExactSubject) {
  const auto a = ok(store_->add_grant("robot:ci", "pull,push", "staging/*"));
  const auto b = ok(store_->add_grant("user:bob", "pull", "production/*"));
  const auto c = ok(store_->add_grant("robot:ci", "delete", "staging/tmp"));
  const auto d = ok(store_->add_grant("*", "pull", "public/*"));

  const auto all = ok(store_->grants(std::nullopt));
  EXPECT_EQ(grant_ids(all), (std::vector<std::int64_t>{a, b, c, d}));
  EXPECT_EQ(all[0].subject, "robot:ci");
  EXPECT_EQ(all[0].actions, "pull,push");
  EXPECT_EQ(all[0].repository, "staging/*");

  EXPECT_EQ(grant_ids(ok(store_->grants(std::string_view("robot:ci")))), (std::vector<std::int64_t>{a, c}));
  EXPECT_EQ(grant_ids(ok(store_->grants(std::string_view("*")))), std::vector<std::int64_t>{d});
  EXPECT_TRUE(ok(store_->grants(std::string_view("robot:c"))).empty());  // not a prefix or a pattern
  EXPECT_TRUE(ok(store_->grants(std::string_view("user:*"))).empty());
  EXPECT_TRUE(ok(store_->grants(std::string_view(""))).empty());
}

TEST_P(IdentityStoreContract, DeleteGrantOnceThenNotFound) {
  const auto a = ok(store_->add_grant("user:bob", "pull", "x/*"));
  const auto b = ok(store_->add_grant("user:bob", "push", "x/*"));
  EXPECT_TRUE(ok(store_->delete_grant(a)));
  EXPECT_FALSE(ok(store_->delete_grant(a)));
  EXPECT_FALSE(ok(store_->delete_grant(b + 1000)));
  EXPECT_FALSE(ok(store_->delete_grant(0)));
  EXPECT_FALSE(ok(store_->delete_grant(-1)));
  EXPECT_EQ(grant_ids(ok(store_->grants(std::nullopt))), std::vector<std::int64_t>{b});
}

// ---- generation ----

TEST_P(IdentityStoreContract, GenerationAdvancesOnEveryChangeAndNotOnReads) {
  auto advanced_by = [&](const auto& change) {
    const auto before = store_->generation();
    change();
    return store_->generation() > before;
  };
  std::string token;
  std::int64_t grant = 0;
  EXPECT_TRUE(advanced_by([&] { ok(store_->put_user("alice", "h1")); }));
  EXPECT_TRUE(advanced_by([&] { ok(store_->put_user("alice", "h2")); }));
  EXPECT_TRUE(advanced_by([&] { token = ok(store_->create_robot("ci", "", std::nullopt)); }));
  EXPECT_TRUE(advanced_by([&] { grant = ok(store_->add_grant("user:alice", "pull", "x/*")); }));
  EXPECT_TRUE(advanced_by([&] { EXPECT_TRUE(ok(store_->delete_grant(grant))); }));
  EXPECT_TRUE(advanced_by([&] { EXPECT_TRUE(ok(store_->update_robot("ci", "builds", std::nullopt))); }));
  EXPECT_TRUE(advanced_by([&] { ok(store_->put_namespace("staging", "{}")); }));
  EXPECT_TRUE(advanced_by([&] { EXPECT_TRUE(ok(store_->delete_namespace("staging"))); }));
  EXPECT_TRUE(advanced_by([&] { EXPECT_TRUE(ok(store_->revoke_robot("ci"))); }));
  EXPECT_TRUE(advanced_by([&] { EXPECT_TRUE(ok(store_->delete_user("alice"))); }));

  // Reads leave it alone: caches keyed by it would otherwise never hit.
  EXPECT_FALSE(advanced_by([&] {
    ok(store_->has_users());
    ok(store_->find_user("alice"));
    ok(store_->list_users());
    ok(store_->robot_by_token(token));
    ok(store_->find_robot("ci"));
    ok(store_->list_robots());
    ok(store_->grants(std::nullopt));
    ok(store_->namespaces());
  }));
}

// ---- durability ----

TEST_P(IdentityStoreContract, EverythingSurvivesReopen) {
  ok(store_->put_user("alice", "$argon2id$a"));
  ok(store_->put_user("bob", "$argon2id$b"));
  ok(store_->delete_user("bob"));
  const auto ci = ok(store_->create_robot("ci", "builds", 4102444800));
  const auto old = ok(store_->create_robot("old", "", std::nullopt));
  ok(store_->revoke_robot("old"));
  const auto g1 = ok(store_->add_grant("robot:ci", "pull,push", "staging/*"));
  const auto g2 = ok(store_->add_grant("user:alice", "admin", "*"));
  ok(store_->delete_grant(g1));
  ok(store_->put_namespace("staging", R"({"visibility":"public-pull"})"));

  reopen();

  const auto stored = ok(store_->namespaces());
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].settings, R"({"visibility":"public-pull"})");
  EXPECT_EQ(user_names(*store_), names{"alice"});
  EXPECT_EQ(ok(store_->find_user("alice"))->password_hash, "$argon2id$a");
  auto robot = ok(store_->robot_by_token(ci));
  ASSERT_TRUE(robot);
  EXPECT_EQ(robot->name, "ci");
  EXPECT_EQ(robot->description, "builds");
  EXPECT_EQ(robot->expires_at, 4102444800);
  EXPECT_FALSE(robot->revoked_at);
  auto revoked = ok(store_->robot_by_token(old));
  ASSERT_TRUE(revoked);
  EXPECT_TRUE(revoked->revoked_at);
  const auto grants = ok(store_->grants(std::nullopt));
  ASSERT_EQ(grant_ids(grants), std::vector<std::int64_t>{g2});
  EXPECT_EQ(grants[0].actions, "admin");
  EXPECT_GT(ok(store_->add_grant("*", "pull", "x")), g2);
  EXPECT_FALSE(sync_wait(store_->create_robot("ci", "", std::nullopt)));
}

// ---- concurrency ----

TEST_P(IdentityStoreContract, ParallelCreatesAllLand) {
  constexpr int threads = 8;
  constexpr int per_thread = 10;
  std::vector<std::vector<std::int64_t>> ids(threads);
  std::vector<std::vector<std::string>> tokens(threads);
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          const auto name = fmt::format("t{}-{}", t, i);
          auto user = sync_wait(store_->put_user(name, "h"));
          auto robot = sync_wait(store_->create_robot(name, "", std::nullopt));
          auto grant = sync_wait(store_->add_grant("user:" + name, "pull", name));
          if (!user || !robot || !grant) {
            ++failures;
            continue;
          }
          tokens[t].push_back(*robot);
          ids[t].push_back(*grant);
        }
      });
    }
  }
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(ok(store_->list_users()).size(), std::size_t{threads * per_thread});
  EXPECT_EQ(ok(store_->list_robots()).size(), std::size_t{threads * per_thread});
  std::set<std::int64_t> distinct;
  for (const auto& per : ids) {
    distinct.insert(per.begin(), per.end());
    EXPECT_TRUE(std::is_sorted(per.begin(), per.end()));  // increasing as seen by each writer
  }
  EXPECT_EQ(distinct.size(), std::size_t{threads * per_thread});
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) {
      EXPECT_EQ(ok(store_->robot_by_token(tokens[t][i]))->name, fmt::format("t{}-{}", t, i));
    }
  }
}

TEST_P(IdentityStoreContract, ParallelCreatesOfOneRobotNameHaveOneWinner) {
  constexpr int threads = 8;
  std::atomic<int> created{0}, refused{0};
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        auto r = sync_wait(store_->create_robot("ci", fmt::format("by {}", t), std::nullopt));
        if (r) ++created;
        if (!r && r.error().code == errc::already_exists) ++refused;
      });
    }
  }
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), threads - 1);
  EXPECT_EQ(robot_names(*store_), names{"ci"});
}

TEST_P(IdentityStoreContract, ReadsRunAlongsideWrites) {
  ok(store_->put_user("reader", "h"));
  std::atomic<bool> writing{true};
  std::atomic<int> bad_reads{0};
  std::jthread reader([&] {
    std::uint64_t last = 0;
    while (writing.load()) {
      const auto g = store_->generation();
      if (g < last) ++bad_reads;  // never goes back
      last = g;
      auto u = sync_wait(store_->find_user("reader"));
      if (!u || !*u) ++bad_reads;
    }
  });
  for (int i = 0; i < 50; ++i) {
    ok(store_->add_grant("user:reader", "pull", fmt::format("r{}", i)));
  }
  writing = false;
  reader.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_EQ(ok(store_->grants(std::string_view("user:reader"))).size(), 50u);
}

}  // namespace
}  // namespace berth::auth::contract
