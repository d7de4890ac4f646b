#include "app/migrate.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

#include "app/backends.h"
#include "app/data_lock.h"
#include "core/background.h"
#include "core/manifest.h"
#include "core/read_file.h"
#include "core/sync_wait.h"
#include "core/unix_time.h"
#include "uploads/upload_service.h"

namespace berth::app {
namespace {

namespace fs = std::filesystem;
using boost::asio::awaitable;

constexpr std::size_t page = 1000;               // listing page size
constexpr std::size_t chunk = 4 * 1024 * 1024;  // bytes read and written at a time

// The value of `r`, or a runtime_error naming `what` and the failure.
template <class T>
T checked(result<T> r, std::string_view what) {
  if (!r) {
    throw std::runtime_error(fmt::format("{}: {} {}", what, info(r.error().code).wire, r.error().detail));
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

std::string human(std::uint64_t bytes) {
  constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", v, units[u]);
}

// Progress on `out`: on a terminal one line redrawn at most ten times a second; otherwise one line
// per finished repository, so a log or a test can follow the run.
class progress {
 public:
  explicit progress(std::FILE* out) : out_(out), tty_(::isatty(::fileno(out)) == 1) {}

  void total(std::uint64_t blobs, std::uint64_t bytes) {
    blobs_total_ = blobs;
    bytes_total_ = bytes;
  }
  void repository(std::string_view name) {
    repo_ = name;
    draw(true);
  }
  // `bytes` more were copied.
  void copied(std::uint64_t bytes) {
    bytes_done_ += bytes;
    bytes_copied_ += bytes;
    draw(false);
  }
  // A blob is done: copied, or found present (its `bytes_present` count as done).
  void blob_done(std::uint64_t bytes_present) {
    bytes_done_ += bytes_present;
    ++blobs_done_;
    draw(false);
  }
  void repository_done() {
    if (tty_) return;
    fmt::print(out_, "{}: done ({} of {} blobs, {})\n", repo_, blobs_done_, blobs_total_, human(bytes_done_));
    std::fflush(out_);
  }
  void finish() {
    if (!tty_) return;
    draw(true);
    fmt::print(out_, "\n");
  }

 private:
  void draw(bool now) {
    if (!tty_) return;
    const auto t = std::chrono::steady_clock::now();
    if (!now && t - last_ < std::chrono::milliseconds(100)) return;
    last_ = t;
    const double seconds = std::chrono::duration<double>(t - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(bytes_copied_) / seconds : 0;
    const auto percent = bytes_total_ ? bytes_done_ * 100 / bytes_total_ : 100;
    fmt::print(out_, "\r\x1b[K[{:3}%] {}/{} blobs, {} of {}, {}/s  {}", percent, blobs_done_, blobs_total_,
               human(bytes_done_), human(bytes_total_), human(static_cast<std::uint64_t>(rate)), repo_);
    std::fflush(out_);
  }

  std::FILE* out_;
  bool tty_;
  std::string repo_;
  std::uint64_t blobs_total_ = 0, bytes_total_ = 0, blobs_done_ = 0, bytes_done_ = 0, bytes_copied_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

// Locks `data` when a store of `c` lives there (filesystem blobs, SQLite metadata).
std::optional<data_lock> lock_target(const config& c) {
  if (c.storage != config::storage_driver::filesystem && c.metadata != config::metadata_driver::sqlite) {
    return std::nullopt;
  }
  fs::create_directories(c.data);
  return std::optional<data_lock>(std::in_place, c.data);
}

// The target side: its stores, written through the same code paths a push takes.
class target {
 public:
  explicit target(const config& c, std::FILE* out)
      : lock_(lock_target(c)),
        pool_(8),
        stores_(open_stores(c, pool_, opener::server)),
        uploads_(*stores_.blobs, stores_.meta->uploads(), pool_),
        progress_(out) {}

  meta::metadata_store& meta() { return *stores_.meta; }
  auth::identity_store& identities() { return *stores_.identities; }
  progress& progress_line() { return progress_; }

  // When the target holds blob `d` already, links it into `repo` (when it is not linked yet) and
  // returns true: nothing to copy.
  awaitable<bool> link_if_present(std::string_view repo, const digest& d) {
    auto stat = co_await stores_.blobs->stat(d);
    if (!stat && stat.error().code == errc::blob_unknown) co_return false;
    const auto size = checked(std::move(stat), fmt::format("target: blob {}", d.str()));
    auto linked = co_await stores_.meta->linked_blob_size(repo, d);
    if (!checked(std::move(linked), fmt::format("target: link of {} in {}", d.str(), repo))) {
      auto link = co_await stores_.meta->link_blob(repo, d, size);
      // Linked as a mount is: only while another repository links it (else it may be awaiting
      // garbage collection, and goes through an upload like a new blob).
      if (!checked(std::move(link), fmt::format("target: linking {} into {}", d.str(), repo))) co_return false;
      ++sum.links;
    }
    ++sum.blobs_present;
    progress_.blob_done(size);
    co_return true;
  }

  // Copies the blob `src` reads into the target as `d`, linked into `repo`; its bytes must hash to
  // `d` (`where` names the source in the message when they do not).
  awaitable<void> copy_blob(std::string_view repo, const digest& d, storage::blob_reader& src, std::string_view where) {
    const std::string what = fmt::format("copying blob {} of {}", d.str(), repo);
    auto started = co_await uploads_.start(repo);
    auto session = checked(std::move(started), what);
    std::string buf(std::min<std::uint64_t>(chunk, std::max<std::uint64_t>(src.size(), 1)), '\0');
    for (std::uint64_t offset = 0;;) {
      auto n = co_await src.read(offset, buf);
      const auto got = checked(std::move(n), fmt::format("{}: reading {}", what, where));
      if (got == 0) break;
      auto written = co_await session.write(std::string_view(buf.data(), got));
      checked(std::move(written), what);
      offset += got;
      progress_.copied(got);
    }
    auto committed = co_await session.commit(d);
    if (!committed && committed.error().code == errc::digest_invalid) {
      throw std::runtime_error(fmt::format("{}: the bytes of {} do not hash to {} ({}); the source is damaged",
                                           what, where, d.str(), committed.error().detail));
    }
    const auto size = checked(std::move(committed), what);
    ++sum.blobs_copied;
    ++sum.links;
    sum.bytes_copied += size;
    progress_.blob_done(0);
  }

  // Stores manifest `m` in `repo` unless the target holds it.
  awaitable<void> put_manifest(std::string_view repo, const meta::manifest_record& m) {
    const digest one[] = {m.dgst};
    auto missing = co_await stores_.meta->missing_manifests(repo, one);
    if (checked(std::move(missing), fmt::format("target: manifests of {}", repo)).empty()) {
      ++sum.manifests_present;
      co_return;
    }
    const meta::push_stamp untagged{"", unix_millis(), ""};
    auto put = co_await stores_.meta->put_manifest(repo, m, std::nullopt, untagged);
    checked(std::move(put), fmt::format("target: storing manifest {} in {}", m.dgst.str(), repo));
    ++sum.manifests_copied;
  }

  // Stores the manifests of `repo` so that an index comes after the manifests it lists (the store
  // refuses a manifest whose references are not there yet); a reference cycle, which no push can
  // make, is stored as it comes and the store names what is missing.
  awaitable<void> put_manifests(std::string_view repo, std::vector<meta::manifest_record> ms) {
    std::set<digest> pending;
    for (const auto& m : ms) pending.insert(m.dgst);
    while (!ms.empty()) {
      std::vector<meta::manifest_record> later;
      for (auto& m : ms) {
        const bool ready = std::none_of(m.references.begin(), m.references.end(),
                                        [&](const digest& r) { return r != m.dgst && pending.contains(r); });
        if (!ready) {
          later.push_back(std::move(m));
          continue;
        }
        co_await put_manifest(repo, m);
        pending.erase(m.dgst);
      }
      if (later.size() == ms.size()) {
        for (const auto& m : later) co_await put_manifest(repo, m);
        break;
      }
      ms = std::move(later);
    }
  }

  // Points `tag` of `repo` at `m` unless it points there already, recording the source's time and
  // pusher (`stamp`).
  awaitable<void> put_tag(std::string_view repo, std::string_view tag, const meta::manifest_record& m,
                          const meta::push_stamp& stamp) {
    auto current = co_await stores_.meta->manifest_by_tag(repo, tag);
    auto found = checked(std::move(current), fmt::format("target: tag {}:{}", repo, tag));
    if (found && found->dgst == m.dgst) {
      ++sum.tags_present;
      co_return;
    }
    auto put = co_await stores_.meta->put_manifest(repo, m, tag, stamp);
    checked(std::move(put), fmt::format("target: tagging {}:{}", repo, tag));
    ++sum.tags_set;
  }

  awaitable<void> create_repository(std::string_view repo) {
    auto created = co_await stores_.meta->create_repository(repo);
    checked(std::move(created), fmt::format("target: creating repository {}", repo));
    ++sum.repositories;
    progress_.repository(repo);
  }

  copy_summary sum;

 private:
  std::optional<data_lock> lock_;
  blocking_pool pool_;  // before the stores: they use it until they are gone
  stores stores_;
  uploads::upload_service uploads_;
  progress progress_;
};

// ---- berth migrate ----

awaitable<void> copy_identities(auth::identity_store& from, target& to) {
  auto& into = to.identities();
  auto users = co_await from.list_users();
  for (const auto& u : checked(std::move(users), "source: users")) {
    auto there = co_await into.find_user(u.name);
    if (checked(std::move(there), "target: users")) continue;
    auto full = co_await from.find_user(u.name);
    const auto user = checked(std::move(full), "source: users");
    if (!user) continue;  // deleted meanwhile
    auto put = co_await into.put_user(user->name, user->password_hash);
    checked(std::move(put), fmt::format("target: user {}", u.name));
    ++to.sum.users;
  }
  auto robots = co_await from.list_robots();
  for (const auto& r : checked(std::move(robots), "source: robots")) {
    auto there = co_await into.find_robot(r.name);
    if (checked(std::move(there), "target: robots")) continue;
    auto put = co_await into.put_robot(r);
    checked(std::move(put), fmt::format("target: robot {}", r.name));
    ++to.sum.robots;
  }
  auto source_grants = co_await from.grants(std::nullopt);
  auto target_grants = co_await into.grants(std::nullopt);
  const auto have = checked(std::move(target_grants), "target: grants");
  for (const auto& g : checked(std::move(source_grants), "source: grants")) {
    const bool present = std::any_of(have.begin(), have.end(), [&](const auth::stored_grant& h) {
      return h.subject == g.subject && h.actions == g.actions && h.repository == g.repository;
    });
    if (present) continue;
    auto added = co_await into.add_grant(g.subject, g.actions, g.repository);
    checked(std::move(added), fmt::format("target: grant {} {} on {}", g.subject, g.actions, g.repository));
    ++to.sum.grants;
  }
  // Namespaces made through the admin API, with their settings (quotas, immutable tags, ...): one
  // the target has already keeps the target's settings.
  auto source_namespaces = co_await from.namespaces();
  auto target_namespaces = co_await into.namespaces();
  const auto there = checked(std::move(target_namespaces), "target: namespaces");
  for (const auto& ns : checked(std::move(source_namespaces), "source: namespaces")) {
    const bool present =
        std::any_of(there.begin(), there.end(), [&](const auth::namespace_record& t) { return t.name == ns.name; });
    if (present) continue;
    auto put = co_await into.put_namespace(ns.name, ns.settings);
    checked(std::move(put), fmt::format("target: namespace {}", ns.name));
    ++to.sum.namespaces;
  }
}

// The retention rules made through the admin API, when the target has none; rules of its own on the
// target are kept (and reported).
awaitable<void> copy_retention_rules(meta::metadata_store& from, target& to) {
  auto source = co_await from.retention_rules().rules();
  const auto rules = checked(std::move(source), "source: retention rules");
  if (rules.empty()) co_return;
  auto target_rules = co_await to.meta().retention_rules().rules();
  const auto there = checked(std::move(target_rules), "target: retention rules");
  if (there == rules) co_return;
  if (!there.empty()) {
    to.sum.notes.push_back(
        fmt::format("the target has retention rules of its own ({}), which were kept; the source's {} were not copied "
                    "(berth retention rules shows both)",
                    there.size(), rules.size()));
    co_return;
  }
  auto put = co_await to.meta().retention_rules().replace_rules(rules);
  checked(std::move(put), "target: retention rules");
  to.sum.retention_rules = rules.size();
}

// The audit log, oldest entry first, in one transaction, when the target's is empty (so that a rerun
// never copies it twice); a target with entries of its own keeps them (and it is reported). The
// entries are held in memory meanwhile, a few hundred bytes each: 100,000 (90 days of 1,000 changes
// a day, audit.retention_days' default) take some tens of MiB.
awaitable<void> copy_audit_log(meta::metadata_store& from, target& to) {
  std::vector<meta::audit_entry> entries;
  meta::audit_query q;  // a named query: GCC 12 destroys a temporary in a co_await expression twice
  q.n = page;
  for (;;) {
    auto next = co_await from.audit().list(q);
    auto got = checked(std::move(next), "source: audit log");
    if (got.empty()) break;
    q.before_id = got.back().id;
    entries.insert(entries.end(), std::make_move_iterator(got.begin()), std::make_move_iterator(got.end()));
  }
  if (entries.empty()) co_return;
  meta::audit_query newest;
  newest.n = 1;
  auto target_entries = co_await to.meta().audit().list(newest);
  if (!checked(std::move(target_entries), "target: audit log").empty()) {
    to.sum.notes.push_back(
        fmt::format("the target has an audit log of its own, which was kept; the source's {} "
                    "entries were not copied",
                    entries.size()));
    co_return;
  }
  std::reverse(entries.begin(), entries.end());
  auto put = co_await to.meta().audit().append(entries);
  checked(std::move(put), "target: audit log");
  to.sum.audit_entries = entries.size();
}

// Every repository of `m`, in order.
awaitable<std::vector<std::string>> all_repositories(meta::metadata_store& m) {
  std::vector<std::string> out;
  for (;;) {
    const std::string last = out.empty() ? std::string() : out.back();
    auto next = co_await m.list_repositories(last, page);
    auto names = checked(std::move(next), "source: repositories");
    if (names.empty()) co_return out;
    out.insert(out.end(), names.begin(), names.end());
  }
}

// How many blobs are copied at once. A copy waits on the network (S3, PostgreSQL) or the disk most
// of its time, so overlapping them is what makes a registry of many small blobs move fast; each
// holds a buffer of up to `chunk` bytes.
constexpr std::size_t concurrent_copies = 8;

// Awaits work(i) for every i < n, at most concurrent_copies at a time, all on the caller's executor:
// one thread (sync_wait's), so the copies share the summary and the progress line without locks.
// The first exception stops new work from starting, and is rethrown once the work started has
// ended. `work` must not return before its awaitable is done with what it refers to.
awaitable<void> for_each_concurrently(std::size_t n, const std::function<awaitable<void>(std::size_t)>& work) {
  std::size_t next = 0;
  std::exception_ptr failed;
  // Takes the next index until none is left or some work has thrown.
  const auto worker = [&]() -> awaitable<bool> {
    while (!failed && next < n) {
      const std::size_t i = next++;
      try {
        co_await work(i);
      } catch (...) {
        if (!failed) failed = std::current_exception();
      }
    }
    co_return true;
  };
  const auto ex = co_await boost::asio::this_coro::executor;
  std::vector<background<bool>> workers(std::min(concurrent_copies, n));
  for (auto& w : workers) w.start(ex, worker());
  for (auto& w : workers) co_await w.wait();
  if (failed) std::rethrow_exception(failed);
}

// Every blob link of `repo` in `m`, in digest order.
awaitable<std::vector<meta::blob_entry>> all_links(meta::metadata_store& m, std::string_view repo) {
  std::vector<meta::blob_entry> out;
  for (;;) {
    const std::string last = out.empty() ? std::string() : out.back().dgst.str();
    auto next = co_await m.list_blob_links(repo, last, page);
    auto links = checked(std::move(next), fmt::format("source: blobs of {}", repo));
    if (links.empty()) co_return out;
    out.insert(out.end(), links.begin(), links.end());
  }
}

// Blob `link` of `repo` in the target: linked when the target holds it, else copied.
awaitable<void> copy_link(stores& from, target& to, const std::string& repo, const meta::blob_entry& link) {
  const bool present = co_await to.link_if_present(repo, link.dgst);
  if (present) co_return;
  auto opened = co_await from.blobs->open(link.dgst);
  auto reader = checked(std::move(opened), fmt::format("source: blob {} of {}", link.dgst.str(), repo));
  co_await to.copy_blob(repo, link.dgst, *reader, fmt::format("source blob {}", link.dgst.str()));
}

awaitable<void> copy_repository(stores& from, target& to, const std::string& repo) {
  co_await to.create_repository(repo);
  const auto links = co_await all_links(*from.meta, repo);
  // GCC 12: no temporary with a destructor inside a co_await expression.
  const std::function<awaitable<void>(std::size_t)> copy = [&](std::size_t i) {
    return copy_link(from, to, repo, links[i]);
  };
  co_await for_each_concurrently(links.size(), copy);
  std::vector<meta::manifest_record> records;
  for (std::string last;;) {
    auto next = co_await from.meta->list_manifests(repo, last, page);
    const auto digests = checked(std::move(next), fmt::format("source: manifests of {}", repo));
    if (digests.empty()) break;
    for (const auto& d : digests) {
      auto m = co_await from.meta->manifest_by_digest(repo, d);
      auto rec = checked(std::move(m), fmt::format("source: manifest {} of {}", d.str(), repo));
      if (rec) records.push_back(std::move(*rec));
    }
    last = digests.back().str();
  }
  co_await to.put_manifests(repo, std::move(records));
  // Tags keep when and by whom they were pushed (their history before that stays behind).
  for (std::string last;;) {
    auto next = co_await from.meta->tags().tag_list(repo, meta::tag_sort::name, false, last, page);
    const auto tags =
        checked(std::move(next), fmt::format("source: tags of {}", repo)).value_or(std::vector<meta::tag_record>{});
    if (tags.empty()) break;
    for (const auto& tag : tags) {
      auto m = co_await from.meta->manifest_by_digest(repo, tag.dgst);
      const auto rec = checked(std::move(m), fmt::format("source: tag {}:{}", repo, tag.name));
      const meta::push_stamp stamp{tag.pushed_by, tag.pushed_at_ms, ""};
      if (rec) co_await to.put_tag(repo, tag.name, *rec, stamp);
    }
    last = tags.back().name;
  }
  to.progress_line().repository_done();
}

awaitable<void> copy_registry(stores& from, target& to) {
  co_await copy_identities(*from.identities, to);
  const auto repos = co_await all_repositories(*from.meta);
  std::uint64_t blobs = 0, bytes = 0;
  for (const auto& repo : repos) {
    auto links = co_await all_links(*from.meta, repo);
    blobs += links.size();
    for (const auto& l : links) bytes += l.size;
  }
  to.progress_line().total(blobs, bytes);
  for (const auto& repo : repos) co_await copy_repository(from, to, repo);
  co_await copy_retention_rules(*from.meta, to);
  co_await copy_audit_log(*from.meta, to);
  to.progress_line().finish();
}

// The token-signing key of the data directory `from_data`, where `to` looks for it, so that tokens
// issued before keep working. An existing different key is kept (and reported).
void copy_signing_key(const std::string& from_data, const config& to, copy_summary& sum) {
  const fs::path source = fs::path(from_data) / "token-signing-key.pem";
  if (!fs::exists(source)) return;
  const fs::path dest = to.signing_key_file.empty() ? fs::path(to.data) / "token-signing-key.pem" : fs::path(to.signing_key_file);
  if (fs::exists(dest)) {
    if (read_file(dest.string()) != read_file(source.string())) {
      sum.notes.push_back(fmt::format(
          "{} differs from {} and was kept: tokens issued by the old registry are refused (passwords and robot "
          "tokens keep working); copy the old key there to keep them",
          dest.string(), source.string()));
    }
    return;
  }
  fs::create_directories(dest.parent_path().empty() ? fs::path(".") : dest.parent_path());
  const fs::path tmp = dest.string() + ".tmp";
  fs::copy_file(source, tmp, fs::copy_options::overwrite_existing);
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write);
  fs::rename(tmp, dest);
  sum.notes.push_back(fmt::format("token-signing key copied to {}", dest.string()));
}

// ---- berth import-distribution ----

// A blob file of the Distribution store.
class file_reader final : public storage::blob_reader {
 public:
  explicit file_reader(const fs::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}", path.string()));
    size_ = fs::file_size(path);
  }
  ~file_reader() override { ::close(fd_); }
  file_reader(const file_reader&) = delete;
  file_reader& operator=(const file_reader&) = delete;

  std::uint64_t size() const override { return size_; }
  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    const auto n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset));
    if (n < 0) co_return fail(errc::internal, "read failed");
    co_return static_cast<std::size_t>(n);
  }

 private:
  int fd_;
  std::uint64_t size_ = 0;
};

class distribution_store {
 public:
  explicit distribution_store(const std::string& root) : v2_(fs::path(root) / "docker" / "registry" / "v2") {
    if (!fs::is_directory(v2_ / "repositories")) {
      throw std::runtime_error(fmt::format("{} is not a Distribution filesystem store (no {})", root,
                                           (v2_ / "repositories").string()));
    }
  }

  fs::path blob_path(const digest& d) const {
    const std::string_view algorithm = std::string_view(d.str()).substr(0, d.str().find(':'));
    return v2_ / "blobs" / algorithm / d.hex().substr(0, 2) / d.hex() / "data";
  }

  // Repository names: the directories under repositories/ that hold _manifests or _layers.
  std::vector<std::string> repositories() const {
    std::vector<std::string> out;
    const fs::path base = v2_ / "repositories";
    for (auto it = fs::recursive_directory_iterator(base); it != fs::recursive_directory_iterator(); ++it) {
      if (!it->is_directory()) continue;
      const auto name = it->path().filename().string();
      if (name.starts_with("_")) {
        it.disable_recursion_pending();
        continue;
      }
      if (fs::exists(it->path() / "_manifests") || fs::exists(it->path() / "_layers")) {
        out.push_back(fs::relative(it->path(), base).generic_string());
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // The digests named by the `link` files under repositories/REPO/SUB/<algorithm>/<hex>/link.
  std::vector<digest> links(const std::string& repo, const std::string& sub) const {
    std::vector<digest> out;
    const fs::path base = v2_ / "repositories" / repo / sub;
    if (!fs::is_directory(base)) return out;
    for (const auto& algorithm : fs::directory_iterator(base)) {
      if (!algorithm.is_directory()) continue;
      for (const auto& entry : fs::directory_iterator(algorithm.path())) {
        if (auto d = link(entry.path() / "link")) out.push_back(*d);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  struct tag_link {
    digest dgst;
    std::int64_t pushed_at_ms = 0;  // the link file's time: when Distribution last moved the tag
  };
  // Tag name -> its digest and time, from _manifests/tags/<tag>/current/link.
  std::map<std::string, tag_link> tags(const std::string& repo) const {
    std::map<std::string, tag_link> out;
    const fs::path base = v2_ / "repositories" / repo / "_manifests" / "tags";
    if (!fs::is_directory(base)) return out;
    for (const auto& entry : fs::directory_iterator(base)) {
      const fs::path file = entry.path() / "current" / "link";
      auto d = link(file);
      if (!d) continue;
      std::error_code ec;
      const auto written = fs::last_write_time(file, ec);
      const std::int64_t at_ms =
          ec ? unix_millis()
             : std::chrono::duration_cast<std::chrono::milliseconds>(
                   fs::file_time_type::clock::to_sys(written).time_since_epoch())
                   .count();
      out.emplace(entry.path().filename().string(), tag_link{*d, at_ms});
    }
    return out;
  }

 private:
  static std::optional<digest> link(const fs::path& file) {
    if (!fs::is_regular_file(file)) return std::nullopt;
    auto text = read_file(file.string());
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
    auto d = digest::parse(text);
    if (!d) return std::nullopt;
    return *d;
  }

  fs::path v2_;
};

// Manifest `d` of the Distribution store as Berth stores it, or nullopt (with a note) when its bytes
// are gone or are not a manifest Berth serves (schema 1).
std::optional<meta::manifest_record> read_manifest(const distribution_store& src, const std::string& repo,
                                                   const digest& d, copy_summary& sum) {
  const auto path = src.blob_path(d);
  if (!fs::is_regular_file(path)) {
    sum.notes.push_back(fmt::format("{}: manifest {} has no bytes in the store ({}); skipped", repo, d.str(), path.string()));
    return std::nullopt;
  }
  auto content = read_file(path.string());
  if (digest_of(content, d.algorithm()) != d) {
    throw std::runtime_error(fmt::format("{}: the bytes of {} do not hash to {}; the source is damaged", repo,
                                         path.string(), d.str()));
  }
  auto parsed = parse_manifest("", content);
  if (!parsed) {
    sum.notes.push_back(fmt::format("{}: manifest {} is not one Berth serves ({}); skipped", repo, d.str(),
                                    parsed.error().detail));
    return std::nullopt;
  }
  std::string media_type = parsed->media_type;
  return meta::make_manifest_record(d, std::move(media_type), std::move(content), std::move(*parsed));
}

// Layer `d` of `repo` in the target: linked when the target holds it, else copied (or noted when the
// store has no bytes for it).
awaitable<void> import_layer(const distribution_store& src, target& to, const std::string& repo, const digest& d) {
  const bool present = co_await to.link_if_present(repo, d);
  if (present) co_return;
  const auto path = src.blob_path(d);
  if (!fs::is_regular_file(path)) {
    to.sum.notes.push_back(fmt::format("{}: blob {} has no bytes in the store; skipped", repo, d.str()));
    co_return;
  }
  file_reader reader(path);
  co_await to.copy_blob(repo, d, reader, path.string());
}

awaitable<void> import_repository(const distribution_store& src, target& to, const std::string& repo) {
  co_await to.create_repository(repo);
  const auto layers = src.links(repo, "_layers");
  const std::function<awaitable<void>(std::size_t)> copy = [&](std::size_t i) {
    return import_layer(src, to, repo, layers[i]);
  };
  co_await for_each_concurrently(layers.size(), copy);
  std::map<digest, meta::manifest_record> manifests;
  std::vector<meta::manifest_record> records;
  for (const auto& d : src.links(repo, "_manifests/revisions")) {
    auto rec = read_manifest(src, repo, d, to.sum);
    if (!rec) continue;
    records.push_back(*rec);
    manifests.emplace(d, std::move(*rec));
  }
  co_await to.put_manifests(repo, std::move(records));
  for (const auto& [tag, d] : src.tags(repo)) {
    auto found = manifests.find(d.dgst);
    if (found == manifests.end()) {
      to.sum.notes.push_back(fmt::format("{}:{} points at {}, which is not a revision of the repository; skipped",
                                         repo, tag, d.dgst.str()));
      continue;
    }
    // Distribution records no pusher; the tag's time is when its link was written.
    const meta::push_stamp stamp{"import:distribution", d.pushed_at_ms, ""};
    co_await to.put_tag(repo, tag, found->second, stamp);
  }
  to.progress_line().repository_done();
}

awaitable<void> import_all(const distribution_store& src, target& to) {
  const auto repos = src.repositories();
  std::uint64_t blobs = 0, bytes = 0;
  for (const auto& repo : repos) {
    for (const auto& d : src.links(repo, "_layers")) {
      std::error_code ec;
      const auto size = fs::file_size(src.blob_path(d), ec);
      ++blobs;
      if (!ec) bytes += size;
    }
  }
  to.progress_line().total(blobs, bytes);
  for (const auto& repo : repos) co_await import_repository(src, to, repo);
  to.progress_line().finish();
}

}  // namespace

copy_summary migrate(const std::string& from_data, const config& to, std::FILE* out) {
  if (!fs::exists(fs::path(from_data) / "auth.db")) {
    throw std::runtime_error(fmt::format("{} is not a Berth data directory (no auth.db)", from_data));
  }
  std::error_code ec;
  if (fs::equivalent(from_data, to.data, ec)) {
    throw std::runtime_error(fmt::format("the target's data directory is {} itself: give the target its own `data`", from_data));
  }
  const data_lock source_lock(from_data);
  config source;
  source.data = from_data;  // the embedded stores
  blocking_pool source_pool(4);
  auto from = open_stores(source, source_pool, opener::server);
  target into(to, out);
  copy_signing_key(from_data, to, into.sum);
  sync_wait(copy_registry(from, into));
  return into.sum;
}

copy_summary import_distribution(const std::string& root, const config& to, std::FILE* out) {
  const distribution_store src(root);
  target into(to, out);
  sync_wait(import_all(src, into));
  return into.sum;
}

std::string describe(const copy_summary& s) {
  std::string out = fmt::format(
      "repositories: {}\n"
      "blobs:        {} copied ({}), {} already there\n"
      "links:        {} made\n"
      "manifests:    {} copied, {} already there\n"
      "tags:         {} set, {} already there\n",
      s.repositories, s.blobs_copied, human(s.bytes_copied), s.blobs_present, s.links, s.manifests_copied,
      s.manifests_present, s.tags_set, s.tags_present);
  if (s.users + s.robots + s.grants + s.namespaces > 0) {
    out += fmt::format("identities:   {} users, {} robots, {} grants, {} namespaces copied\n", s.users, s.robots,
                       s.grants, s.namespaces);
  }
  if (s.retention_rules > 0) out += fmt::format("retention:    {} rules copied\n", s.retention_rules);
  if (s.audit_entries > 0) out += fmt::format("audit log:    {} entries copied\n", s.audit_entries);
  for (const auto& n : s.notes) out += fmt::format("note: {}\n", n);
  return out;
}

}  // namespace berth::app
