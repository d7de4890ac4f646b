#include "s3/xml.h"

#include <cstdint>

namespace berth::s3::xml {
namespace {

struct span {
  std::size_t inner_begin, inner_end, end;  // end: one past the closing tag
};

// The first element named `name` at or after `from`.
std::optional<span> find(std::string_view doc, std::string_view name, std::size_t from) {
  const std::string open = "<" + std::string(name);
  const std::string close = "</" + std::string(name) + ">";
  for (auto at = doc.find(open, from); at != std::string_view::npos; at = doc.find(open, at + 1)) {
    const auto after = at + open.size();
    if (after >= doc.size()) return std::nullopt;
    const char next = doc[after];
    if (next != '>' && next != ' ' && next != '/' && next != '\t' && next != '\r' && next != '\n') continue;
    const auto tag_end = doc.find('>', after);
    if (tag_end == std::string_view::npos) return std::nullopt;
    if (doc[tag_end - 1] == '/') return span{tag_end + 1, tag_end + 1, tag_end + 1};
    const auto closing = doc.find(close, tag_end + 1);
    if (closing == std::string_view::npos) return std::nullopt;
    return span{tag_end + 1, closing, closing + close.size()};
  }
  return std::nullopt;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x110000) {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Decodes the five named entities and numeric references; leaves anything else as it is.
std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    const auto entity = s.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      const bool is_hex = entity[1] == 'x' || entity[1] == 'X';
      std::uint32_t cp = 0;
      bool ok = entity.size() > (is_hex ? 2u : 1u);
      for (char c : entity.substr(is_hex ? 2 : 1)) {
        const int digit = (c >= '0' && c <= '9')             ? c - '0'
                          : is_hex && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                          : is_hex && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                             : -1;
        if (digit < 0 || cp > 0x10ffff) {
          ok = false;
          break;
        }
        cp = cp * (is_hex ? 16 : 10) + static_cast<std::uint32_t>(digit);
      }
      if (!ok) {
        out.push_back('&');
        continue;
      }
      append_utf8(out, cp);
    } else {
      out.push_back('&');
      continue;
    }
    i = semi;
  }
  return out;
}

}  // namespace

std::vector<std::string_view> elements(std::string_view doc, std::string_view name) {
  std::vector<std::string_view> out;
  for (auto s = find(doc, name, 0); s; s = find(doc, name, s->end)) {
    out.push_back(doc.substr(s->inner_begin, s->inner_end - s->inner_begin));
  }
  return out;
}

std::optional<std::string> text(std::string_view doc, std::string_view name) {
  const auto s = find(doc, name, 0);
  if (!s) return std::nullopt;
  return unescape(doc.substr(s->inner_begin, s->inner_end - s->inner_begin));
}

std::string_view root(std::string_view doc) {
  std::size_t at = 0;
  while ((at = doc.find('<', at)) != std::string_view::npos) {
    if (at + 1 < doc.size() && (doc[at + 1] == '?' || doc[at + 1] == '!')) {
      ++at;
      continue;
    }
    const auto end = doc.find_first_of(" \t\r\n/>", at + 1);
    if (end == std::string_view::npos) return {};
    return doc.substr(at + 1, end - at - 1);
  }
  return {};
}

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace berth::s3::xml
