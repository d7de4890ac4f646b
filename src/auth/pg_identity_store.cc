// The PostgreSQL identity store (pg_identity_store.h). Each write is one statement whose WITH
// clause also increments identity_generation: the counter's row lock is taken first (the main
// query reads it before the change), so concurrent writes queue on it rather than deadlock, and
// the value the statement returns is the generation its change is visible under.

#include "auth/pg_identity_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <future>

#include "core/sync_wait.h"
#include "core/unix_time.h"
#include "pg/store_support.h"

namespace berth::auth {
namespace {

namespace asio = boost::asio;
using pg::param;
using pg::params;

constexpr std::string_view store_name = "identity store";

// Schema migrations (pg::migrate): migrations[v] takes the tables from version v to v + 1. Grant
// ids come from an identity column: never reused, so a retried DELETE cannot remove a newer grant.
constexpr const char* migrations[] = {
    R"sql(
CREATE TABLE users (
  name          text COLLATE "C" PRIMARY KEY,
  password_hash text NOT NULL,
  created_at    bigint NOT NULL
);
CREATE TABLE robots (
  name        text COLLATE "C" PRIMARY KEY,
  token_hash  text NOT NULL UNIQUE,
  description text NOT NULL,
  expires_at  bigint,
  revoked_at  bigint,
  created_at  bigint NOT NULL
);
CREATE TABLE grants (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subject    text NOT NULL,
  actions    text NOT NULL,
  repository text NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX grants_by_subject ON grants(subject);
-- Incremented by every write: what generation() follows across instances.
CREATE TABLE identity_generation (
  one   boolean PRIMARY KEY DEFAULT true CHECK (one),
  value bigint NOT NULL
);
INSERT INTO identity_generation(value) VALUES (0);
)sql",
    // Namespaces created through the admin API (the config's are not stored).
    R"sql(
CREATE TABLE namespaces (
  name       text COLLATE "C" PRIMARY KEY,
  settings   text NOT NULL,
  updated_at bigint NOT NULL
);
)sql",
};

// ---- SQL ----

// A write: `change` (a data-modifying statement, RETURNING what the caller wants) and the counter,
// in one statement. It returns one row: the new generation, and `result` computed from the change
// (NULL or 0 when it changed nothing).
#define BERTH_WRITE(change, result)                                             \
  "WITH w AS (" change                                                          \
  "), g AS (UPDATE identity_generation SET value = value + 1 RETURNING value) " \
  "SELECT g.value, " result " FROM g"
constexpr std::string_view put_user_sql = BERTH_WRITE(
    "INSERT INTO users(name, password_hash, created_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash RETURNING 1",
    "(SELECT count(*) FROM w)");
// Only into a store without users; of two at once, the second meets the first's row (ON CONFLICT)
// once it commits, and inserts neither the user nor the grant.
constexpr std::string_view create_first_admin_sql = BERTH_WRITE(
    "INSERT INTO users(name, password_hash, created_at) SELECT 'admin', $1, $2 WHERE NOT EXISTS "
    "(SELECT 1 FROM users) ON CONFLICT (name) DO NOTHING RETURNING 1), "
    "granted AS (INSERT INTO grants(subject, actions, repository, created_at) "
    "SELECT 'user:admin', 'admin', '*', $2 FROM w RETURNING 1",
    "(SELECT count(*) FROM w)");
// The user's grants go with it (subject $2 = "user:NAME").
constexpr std::string_view delete_user_sql =
    "WITH grants_gone AS (DELETE FROM grants WHERE subject = $2), "
    "w AS (DELETE FROM users WHERE name = $1 RETURNING 1), "
    "g AS (UPDATE identity_generation SET value = value + 1 RETURNING value) "
    "SELECT g.value, (SELECT count(*) FROM w) FROM g";
// ON CONFLICT DO NOTHING: a taken name changes nothing (0), in one statement.
constexpr std::string_view insert_robot_sql = BERTH_WRITE(
    "INSERT INTO robots(name, token_hash, description, expires_at, revoked_at, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING 1",
    "(SELECT count(*) FROM w)");
constexpr std::string_view revoke_robot_sql = BERTH_WRITE(
    "UPDATE robots SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL RETURNING 1", "(SELECT count(*) FROM w)");
constexpr std::string_view update_robot_sql = BERTH_WRITE(
    "UPDATE robots SET description = $2, expires_at = $3 WHERE name = $1 AND revoked_at IS NULL RETURNING 1",
    "(SELECT count(*) FROM w)");
constexpr std::string_view put_namespace_sql = BERTH_WRITE(
    "INSERT INTO namespaces(name, settings, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE "
    "SET settings = excluded.settings, updated_at = excluded.updated_at RETURNING 1",
    "(SELECT count(*) FROM w)");
constexpr std::string_view delete_namespace_sql =
    BERTH_WRITE("DELETE FROM namespaces WHERE name = $1 RETURNING 1", "(SELECT count(*) FROM w)");
constexpr std::string_view add_grant_sql =
    BERTH_WRITE("INSERT INTO grants(subject, actions, repository, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                "(SELECT id FROM w)");
constexpr std::string_view delete_grant_sql =
    BERTH_WRITE("DELETE FROM grants WHERE id = $1 RETURNING 1", "(SELECT count(*) FROM w)");
#undef BERTH_WRITE
constexpr std::string_view generation_sql = "SELECT value FROM identity_generation";

constexpr std::string_view namespaces_sql = "SELECT name, settings, updated_at FROM namespaces ORDER BY name";
constexpr std::string_view has_users_sql = "SELECT 1 FROM users LIMIT 1";
constexpr std::string_view find_user_sql = "SELECT name, password_hash, created_at FROM users WHERE name = $1";
constexpr std::string_view list_users_sql = "SELECT name, created_at FROM users ORDER BY name";
#define BERTH_ROBOT_COLUMNS "SELECT name, description, expires_at, revoked_at, created_at, token_hash FROM robots "
constexpr std::string_view robot_by_hash_sql = BERTH_ROBOT_COLUMNS "WHERE token_hash = $1";
constexpr std::string_view find_robot_sql = BERTH_ROBOT_COLUMNS "WHERE name = $1";
constexpr std::string_view list_robots_sql = BERTH_ROBOT_COLUMNS "ORDER BY name";
#undef BERTH_ROBOT_COLUMNS
constexpr std::string_view grants_sql =
    "SELECT id, subject, actions, repository FROM grants WHERE $1::text IS NULL OR subject = $1::text ORDER BY id";

// ---- rows ----

robot_record read_robot(const pg::rows& rows, std::size_t row) {
  return robot_record{std::string(rows.text(row, 0)), std::string(rows.text(row, 1)), rows.int64(row, 2),
                      rows.int64(row, 3), rows.int64(row, 4).value_or(0), std::string(rows.text(row, 5))};
}

std::optional<robot_record> one_robot(const pg::rows& rows) {
  if (rows.size() == 0) return std::nullopt;
  return read_robot(rows, 0);
}

// The generation counter, followed from every instance's writes; read without blocking.
struct generation_watch {
  explicit generation_watch(asio::strand<asio::any_io_executor> s) : strand(std::move(s)), timer(strand) {}

  // Moves the value up to `seen`, never down.
  void advance_to(std::uint64_t seen) {
    std::uint64_t current = value.load(std::memory_order_acquire);
    while (current < seen && !value.compare_exchange_weak(current, seen, std::memory_order_acq_rel)) {
    }
  }

  std::atomic<std::uint64_t> value{0};
  std::atomic<bool> stopped{false};
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;  // used on `strand` only
  bool failing = false;      // the last poll failed (logged once per outage); on `strand` only
};

// Reads the counter every generation_poll_interval until the watch is stopped.
asio::awaitable<void> poll_generation(std::shared_ptr<pg::pool> pool, std::shared_ptr<generation_watch> watch) {
  while (!watch->stopped.load()) {
    watch->timer.expires_after(generation_poll_interval);
    boost::system::error_code ec;
    co_await watch->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (watch->stopped.load()) break;
    auto r = co_await pool->query(generation_sql);
    if (r && r->size() > 0) {
      watch->advance_to(static_cast<std::uint64_t>(r->int64(0, 0).value_or(0)));
      if (watch->failing) spdlog::info("{} (postgres): reading the generation works again", store_name);
      watch->failing = false;
    } else if (!watch->failing) {
      spdlog::warn(
          "{} (postgres): cannot read the generation (other instances' changes are not seen until it works): {}",
          store_name, r ? "no row" : r.error().message);
      watch->failing = true;
    }
  }
}

class pg_identity_store final : public identity_store {
 public:
  explicit pg_identity_store(std::shared_ptr<pg::pool> pool)
      : pool_(std::move(pool)), watch_(std::make_shared<generation_watch>(asio::make_strand(pool_->executor()))) {
    pg::migrate(*pool_, "auth", migrations);
    auto first = sync_wait(pool_->query(generation_sql));
    if (!first || first->size() == 0) {
      throw std::runtime_error(fmt::format("PostgreSQL at {}: cannot read the identity generation: {}", pool_->server(),
                                           first ? "no row" : first.error().message));
    }
    watch_->advance_to(static_cast<std::uint64_t>(first->int64(0, 0).value_or(0)));
    poller_done_ = asio::co_spawn(watch_->strand, poll_generation(pool_, watch_), asio::use_future);
  }

  ~pg_identity_store() override {
    watch_->stopped = true;
    asio::post(watch_->strand, [watch = watch_] { watch->timer.cancel(); });
    poller_done_.wait();
  }

  pg_identity_store(const pg_identity_store&) = delete;
  pg_identity_store& operator=(const pg_identity_store&) = delete;

  awaitable<result<bool>> has_users() override {
    params none;
    auto r = co_await query("has_users", has_users_sql, std::move(none));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return r->size() > 0;
  }

  awaitable<result<void>> put_user(std::string_view name, std::string_view password_hash) override {
    params args{name, password_hash, unix_seconds()};
    auto r = co_await write("put_user", put_user_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return result<void>{};
  }

  awaitable<result<bool>> create_first_admin(std::string_view password_hash) override {
    params args{password_hash, unix_seconds()};
    auto r = co_await write("create_first_admin", create_first_admin_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  awaitable<result<std::optional<user_record>>> find_user(std::string_view name) override {
    params args{name};
    auto r = co_await query("find_user", find_user_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() == 0) co_return std::nullopt;
    co_return user_record{std::string(r->text(0, 0)), std::string(r->text(0, 1)), r->int64(0, 2).value_or(0)};
  }

  awaitable<result<std::vector<user_record>>> list_users() override {
    params none;
    auto r = co_await query("list_users", list_users_sql, std::move(none));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<user_record> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      out.push_back(user_record{std::string(r->text(i, 0)), {}, r->int64(i, 1).value_or(0)});
    }
    co_return out;
  }

  awaitable<result<bool>> delete_user(std::string_view name) override {
    params args{name, fmt::format("user:{}", name)};
    auto r = co_await write("delete_user", delete_user_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  awaitable<result<std::string>> create_robot(std::string_view name, std::string_view description,
                                              std::optional<std::int64_t> expires_at) override {
    std::string token = new_robot_token();
    robot_record r{std::string(name), std::string(description), expires_at, std::nullopt, unix_seconds(),
                   robot_token_hash(token)};
    auto stored = co_await put_robot(r);
    if (!stored) co_return std::unexpected(std::move(stored.error()));
    co_return token;
  }

  awaitable<result<void>> put_robot(const robot_record& r) override {
    auto optional = [](const std::optional<std::int64_t>& v) { return v ? param(*v) : param(std::nullopt); };
    params args{r.name, r.token_hash, r.description, optional(r.expires_at), optional(r.revoked_at), r.created_at};
    auto w = co_await write("put_robot", insert_robot_sql, std::move(args));
    if (!w) co_return std::unexpected(std::move(w.error()));
    if (*w == 0) co_return fail(errc::already_exists, fmt::format("robot {} already exists", r.name));
    co_return result<void>{};
  }

  awaitable<result<std::optional<robot_record>>> robot_by_token(std::string_view token) override {
    params args{robot_token_hash(token)};
    auto r = co_await query("robot_by_token", robot_by_hash_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return one_robot(*r);
  }

  awaitable<result<std::optional<robot_record>>> find_robot(std::string_view name) override {
    params args{name};
    auto r = co_await query("find_robot", find_robot_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return one_robot(*r);
  }

  awaitable<result<std::vector<robot_record>>> list_robots() override {
    params none;
    auto r = co_await query("list_robots", list_robots_sql, std::move(none));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<robot_record> out;
    for (std::size_t i = 0; i < r->size(); ++i) out.push_back(read_robot(*r, i));
    co_return out;
  }

  awaitable<result<bool>> revoke_robot(std::string_view name) override {
    params args{name, unix_seconds()};
    auto r = co_await write("revoke_robot", revoke_robot_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  awaitable<result<bool>> update_robot(std::string_view name, std::string_view description,
                                       std::optional<std::int64_t> expires_at) override {
    params args{name, description, expires_at ? param(*expires_at) : param(std::nullopt)};
    auto r = co_await write("update_robot", update_robot_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  awaitable<result<std::vector<namespace_record>>> namespaces() override {
    params none;
    auto r = co_await query("namespaces", namespaces_sql, std::move(none));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<namespace_record> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      out.push_back(
          namespace_record{std::string(r->text(i, 0)), std::string(r->text(i, 1)), r->int64(i, 2).value_or(0)});
    }
    co_return out;
  }

  awaitable<result<void>> put_namespace(std::string_view name, std::string_view settings) override {
    params args{name, settings, unix_seconds()};
    auto r = co_await write("put_namespace", put_namespace_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return result<void>{};
  }

  awaitable<result<bool>> delete_namespace(std::string_view name) override {
    params args{name};
    auto r = co_await write("delete_namespace", delete_namespace_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  awaitable<result<std::int64_t>> add_grant(std::string_view subject, std::string_view actions,
                                            std::string_view repository) override {
    params args{subject, actions, repository, unix_seconds()};
    auto r = co_await write("add_grant", add_grant_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r;
  }

  awaitable<result<std::vector<stored_grant>>> grants(std::optional<std::string_view> subject) override {
    params args{subject ? param(*subject) : param(std::nullopt)};
    auto r = co_await query("grants", grants_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    std::vector<stored_grant> out;
    for (std::size_t i = 0; i < r->size(); ++i) {
      out.push_back(stored_grant{r->int64(i, 0).value_or(0), std::string(r->text(i, 1)), std::string(r->text(i, 2)),
                                 std::string(r->text(i, 3))});
    }
    co_return out;
  }

  awaitable<result<bool>> delete_grant(std::int64_t id) override {
    params args{id};
    auto r = co_await write("delete_grant", delete_grant_sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    co_return *r > 0;
  }

  std::uint64_t generation() const override { return watch_->value.load(std::memory_order_acquire); }

 private:
  // One statement on the pool, retried on conflict; a failure is logged (pg::failure).
  awaitable<result<pg::rows>> query(std::string_view what, std::string_view sql, params args) {
    auto r = co_await pg::query_retrying(*pool_, sql, args);
    if (!r) co_return pg::failure(store_name, what, r.error());
    co_return std::move(*r);
  }

  // A write statement (BERTH_WRITE): advances the generation to the one it committed under, and
  // returns its result column (0 when it changed nothing).
  awaitable<result<std::int64_t>> write(std::string_view what, std::string_view sql, params args) {
    auto r = co_await query(what, sql, std::move(args));
    if (!r) co_return std::unexpected(std::move(r.error()));
    if (r->size() != 1) co_return pg::failure(store_name, what, pg::error{pg::errc::failed, "", "no generation row"});
    watch_->advance_to(static_cast<std::uint64_t>(r->int64(0, 0).value_or(0)));
    co_return r->int64(0, 1).value_or(0);
  }

  std::shared_ptr<pg::pool> pool_;
  std::shared_ptr<generation_watch> watch_;
  std::future<void> poller_done_;
};

}  // namespace

std::unique_ptr<identity_store> make_pg_identity_store(std::shared_ptr<pg::pool> pool) {
  return std::make_unique<pg_identity_store>(std::move(pool));
}

}  // namespace berth::auth
