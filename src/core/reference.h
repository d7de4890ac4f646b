// The distribution-spec grammar for repository names and tags. Everything that comes from a URL is
// checked here before it touches a path or a query.
#pragma once

#include <cstddef>
#include <string_view>

namespace berth {

// Longest repository name accepted (Distribution's limit, hostname included).
inline constexpr std::size_t kMaxNameLength = 255;

// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*, at most kMaxNameLength.
bool valid_name(std::string_view name);

// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
bool valid_tag(std::string_view tag);

// A repository pattern (grants, retention rules): "*", or a repository name in which `*` stands
// for any run of characters ("production/*").
bool valid_name_pattern(std::string_view pattern);

// A tag pattern (immutable_tags, retention's protect): a tag in which `*` stands for any run of
// characters ("v*").
bool valid_tag_pattern(std::string_view pattern);

}  // namespace berth
