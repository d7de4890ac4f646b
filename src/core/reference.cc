#include "core/reference.h"

#include <algorithm>
#include <string>

namespace berth {
namespace {

bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
  if (c.empty() || !alnum_lower(c.front()) || !alnum_lower(c.back())) return false;
  for (std::size_t i = 0; i < c.size();) {
    if (alnum_lower(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__" or one or more "-".
    std::size_t j = i;
    if (c[i] == '.') {
      j = i + 1;
    } else if (c[i] == '_') {
      j = i + 1;
      if (j < c.size() && c[j] == '_') ++j;
    } else if (c[i] == '-') {
      while (j < c.size() && c[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= c.size() || !alnum_lower(c[j])) return false;
    i = j;
  }
  return true;
}

// A pattern is valid when it is valid with each `*` read as one ordinary character.
std::string sample_of(std::string_view pattern) {
  std::string sample(pattern);
  std::replace(sample.begin(), sample.end(), '*', 'a');
  return sample;
}

}  // namespace

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  std::size_t start = 0;
  while (true) {
    const auto slash = name.find('/', start);
    if (!valid_component(name.substr(start, slash == std::string_view::npos ? slash : slash - start)))
      return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  for (std::size_t i = 0; i < tag.size(); ++i) {
    const char c = tag[i];
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!(word || (i > 0 && (c == '.' || c == '-')))) return false;
  }
  return true;
}

bool valid_name_pattern(std::string_view pattern) { return pattern == "*" || valid_name(sample_of(pattern)); }

bool valid_tag_pattern(std::string_view pattern) { return valid_tag(sample_of(pattern)); }

}  // namespace berth
