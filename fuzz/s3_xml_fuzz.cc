// Fuzzes the XML reader of the S3 client (s3/xml.h), which reads whatever an S3 endpoint answers.
// Input: an element name up to the first newline, then a document. Checks that every element
// returned lies inside the document, and that escaped text reads back as itself.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "s3/error.h"
#include "s3/xml.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const auto name = newline == std::string_view::npos ? std::string_view("Key") : input.substr(0, newline);
  const auto doc = newline == std::string_view::npos ? input : input.substr(newline + 1);
  if (name.empty() || name.find_first_of("<>/ \t\r\n") != std::string_view::npos) return 0;

  for (const auto element : berth::s3::xml::elements(doc, name)) {
    FUZZ_CHECK(element.data() >= doc.data() && element.data() + element.size() <= doc.data() + doc.size());
  }
  (void)berth::s3::xml::text(doc, name);
  const auto root = berth::s3::xml::root(doc);
  FUZZ_CHECK(root.empty() || (root.data() >= doc.data() && root.data() + root.size() <= doc.data() + doc.size()));
  (void)berth::s3::error_from_response("GET b/k", 500, doc);

  const std::string tag(name);
  const std::string wrapped = "<" + tag + ">" + berth::s3::xml::escape(doc) + "</" + tag + ">";
  FUZZ_CHECK(berth::s3::xml::text(wrapped, name) == std::string(doc));
  return 0;
}
