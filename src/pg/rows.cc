#include "pg/rows.h"

#include <libpq-fe.h>

#include <charconv>

namespace berth::pg {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void rows::clear::operator()(pg_result* result) const { PQclear(result); }

rows::rows(pg_result* result) : result_(result, clear{}) {}

std::size_t rows::size() const { return static_cast<std::size_t>(PQntuples(result_.get())); }

std::size_t rows::columns() const { return static_cast<std::size_t>(PQnfields(result_.get())); }

std::uint64_t rows::affected() const {
  const std::string_view count = PQcmdTuples(result_.get());
  std::uint64_t n = 0;
  std::from_chars(count.data(), count.data() + count.size(), n);
  return n;
}

bool rows::is_null(std::size_t row, std::size_t column) const {
  return PQgetisnull(result_.get(), static_cast<int>(row), static_cast<int>(column)) == 1;
}

std::string_view rows::text(std::size_t row, std::size_t column) const {
  const int r = static_cast<int>(row), c = static_cast<int>(column);
  return std::string_view(PQgetvalue(result_.get(), r, c), static_cast<std::size_t>(PQgetlength(result_.get(), r, c)));
}

std::optional<std::int64_t> rows::int64(std::size_t row, std::size_t column) const {
  if (is_null(row, column)) return std::nullopt;
  const auto t = text(row, column);
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return n;
}

std::optional<std::string> rows::bytes(std::size_t row, std::size_t column) const {
  if (is_null(row, column)) return std::nullopt;
  const auto t = text(row, column);
  if (!t.starts_with("\\x") || t.size() % 2 != 0) return std::nullopt;  // bytea_output=hex, the default
  std::string out;
  out.reserve(t.size() / 2 - 1);
  for (std::size_t i = 2; i < t.size(); i += 2) {
    const int hi = hex_value(t[i]), lo = hex_value(t[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace berth::pg
