// Maps a request path onto an OCI Distribution route. Repository names contain slashes, so a path is
// read from its end: the last segments say which resource it is, the rest is the name. Nothing here
// validates the name or reference; the handlers do, before they touch storage.
#pragma once

#include <string_view>

namespace berth::api {

enum class route_kind {
  not_found,
  base,         // /v2/
  catalog,      // /v2/_catalog
  tags,         // /v2/<name>/tags/list
  manifest,     // /v2/<name>/manifests/<reference>
  blob,         // /v2/<name>/blobs/<digest>
  uploads,      // /v2/<name>/blobs/uploads/
  upload,       // /v2/<name>/blobs/uploads/<id>
  referrers,    // /v2/<name>/referrers/<digest>
};

struct route {
  route_kind kind = route_kind::not_found;
  std::string_view name;       // repository name (not validated)
  std::string_view reference;  // tag, digest or upload id (not validated)
};

// `path` is the request target up to '?'. The views point into `path`.
route match_route(std::string_view path);

}  // namespace berth::api
