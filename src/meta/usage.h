// What the metadata stores share to build a usage_report (metadata_store.h) from their answers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "meta/metadata_store.h"

namespace berth::meta {

// Groups `repos` (in byte order) by namespace, the first component of their names, with the
// stored bytes of each namespace and of the whole registry.
inline usage_report group_usage(std::vector<repository_usage> repos,
                                const std::map<std::string, std::uint64_t, std::less<>>& stored_by_namespace,
                                std::uint64_t registry_stored) {
  usage_report out;
  out.stored_bytes = registry_stored;
  std::map<std::string, namespace_usage, std::less<>> grouped;
  for (auto& r : repos) {
    const std::string ns = r.name.substr(0, r.name.find('/'));
    auto& n = grouped[ns];
    n.name = ns;
    n.repositories.push_back(std::move(r));
  }
  for (auto& [name, n] : grouped) {
    const auto it = stored_by_namespace.find(name);
    n.stored_bytes = it == stored_by_namespace.end() ? 0 : it->second;
    out.namespaces.push_back(std::move(n));
  }
  return out;
}

}  // namespace berth::meta
