// What the metadata stores share to build a usage_report (metadata_store.h) from their answers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "meta/metadata_store.h"

namespace berth::meta {

// A namespace's counters (quota.h): its distinct blobs' bytes and its manifests' bytes.
struct namespace_bytes {
  std::uint64_t stored = 0;
  std::uint64_t manifests = 0;
};

// Groups `repos` (in byte order) by namespace, the first component of their names, with the
// bytes of each namespace and the stored bytes of the whole registry.
inline usage_report group_usage(std::vector<repository_usage> repos,
                                const std::map<std::string, namespace_bytes, std::less<>>& by_namespace,
                                std::uint64_t registry_stored) {
  usage_report out;
  out.stored_bytes = registry_stored;
  std::map<std::string, namespace_usage, std::less<>> grouped;
  for (auto& r : repos) {
    const std::string ns(namespace_of(r.name));
    auto& n = grouped[ns];
    n.name = ns;
    n.repositories.push_back(std::move(r));
  }
  for (auto& [name, n] : grouped) {
    if (const auto it = by_namespace.find(name); it != by_namespace.end()) {
      n.stored_bytes = it->second.stored;
      n.manifest_bytes = it->second.manifests;
    }
    out.namespaces.push_back(std::move(n));
  }
  return out;
}

}  // namespace berth::meta
