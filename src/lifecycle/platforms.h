// The platforms an image runs on, as the tag records show them (tag_records.h): an index names its
// entries' platforms, and an image manifest's platform is in its config blob. The config is read at
// push time; for the image manifests stored before Berth recorded platforms, read_platforms() reads
// each config once after the upgrade, so no re-push is needed.
// Thread-safety: the functions keep no state; read_platforms() may run beside pushes, and on several
// instances at once (each manifest is recorded the same way by either).
#pragma once

#include <utility>  // before Asio: boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "core/manifest.h"
#include "meta/metadata_store.h"
#include "storage/blob_store.h"

namespace berth::lifecycle {

using boost::asio::awaitable;

// A config blob larger than this is not read (an image config takes a few KiB).
inline constexpr std::uint64_t config_read_limit = 1024 * 1024;

// The platform the config blob of image manifest `m` names ("linux/arm64/v8"), or "" when `m` has
// no image config (an index, an artifact), its config is over config_read_limit, or names none.
// BLOB_UNKNOWN when the config is not stored.
awaitable<result<std::string>> config_platform_of(storage::blob_store& blobs, const parsed_manifest& m);

// Records the platforms of every manifest tag_records::platforms_unread lists, `batch` at a time,
// from their config blobs; returns how many. A manifest whose config blob is gone gets none. A store
// error ends the pass with that error; what is left stays listed for the next pass.
awaitable<result<std::size_t>> read_platforms(meta::metadata_store& meta, storage::blob_store& blobs,
                                              std::size_t batch = 100);

}  // namespace berth::lifecycle
