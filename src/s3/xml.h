// Just enough XML for S3's answers and requests: the text of a named element, the elements of a
// list, and escaping. S3 documents are flat and regular (no CDATA, no same-named nesting among the
// elements read here), so a scanner is enough; it never throws and never reads out of bounds on
// malformed input (an element that does not close is not found).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::s3::xml {

// The inner XML of each element named `name` in `doc`, in document order ("" for <name/>).
std::vector<std::string_view> elements(std::string_view doc, std::string_view name);

// The text of the first element named `name` in `doc`, entities decoded; nullopt when absent.
std::optional<std::string> text(std::string_view doc, std::string_view name);

// The name of the root element ("Error" for an S3 error document), or "" when there is none.
std::string_view root(std::string_view doc);

// `text` with &, <, > escaped, for element content.
std::string escape(std::string_view text);

}  // namespace berth::s3::xml
