#include "lifecycle/platforms.h"

#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <set>
#include <span>
#include <utility>
#include <vector>

namespace berth::lifecycle {

awaitable<result<std::string>> config_platform_of(storage::blob_store& blobs, const parsed_manifest& m) {
  if (m.blobs.empty() || !is_image_config_media_type(m.blobs.front().media_type) ||
      m.blobs.front().size > config_read_limit) {
    co_return std::string();
  }
  auto reader = co_await blobs.open(m.blobs.front().dgst);
  if (!reader) co_return std::unexpected(reader.error());
  std::string bytes(std::min((*reader)->size(), config_read_limit), '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    auto n = co_await (*reader)->read(done, std::span<char>(bytes.data() + done, bytes.size() - done));
    if (!n) co_return std::unexpected(n.error());
    if (*n == 0) break;
    done += *n;
  }
  bytes.resize(done);
  co_return config_platform(bytes);
}

awaitable<result<std::size_t>> read_platforms(meta::metadata_store& meta, storage::blob_store& blobs,
                                              std::size_t batch) {
  std::set<std::pair<std::string, digest>> recorded;
  for (;;) {
    auto unread = co_await meta.tags().platforms_unread(batch);
    if (!unread) co_return std::unexpected(unread.error());
    if (unread->empty()) co_return recorded.size();
    for (const auto& u : *unread) {
      // A store that lists a recorded manifest again would keep this loop going for ever.
      if (!recorded.emplace(u.repository, u.dgst).second) {
        co_return fail(errc::internal, fmt::format("{}@{} is still listed after its platforms were recorded",
                                                   u.repository, u.dgst.str()));
      }
      std::vector<std::string> platforms;
      // The bytes parsed when they were pushed; a manifest that no longer parses names no platform.
      if (auto m = parse_manifest(u.media_type, u.content)) {
        auto platform = co_await config_platform_of(blobs, *m);
        if (!platform && platform.error().code != errc::blob_unknown) co_return std::unexpected(platform.error());
        if (platform && !platform->empty()) platforms.push_back(std::move(*platform));
      }
      auto set = co_await meta.tags().set_platforms(u.repository, u.dgst, platforms);
      if (!set) co_return std::unexpected(set.error());
    }
  }
}

}  // namespace berth::lifecycle
