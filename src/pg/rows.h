// Query parameters and results. Parameters travel as text (numbers formatted, NULL as nullopt)
// except bytes(), sent in binary for bytea columns. Results are read as text; bytes() decodes a
// bytea column.
// Thread-safety: value types; a `rows` is read by one thread at a time.
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pg_result;

namespace berth::pg {

class param {
 public:
  param(std::nullopt_t) {}
  param(std::string_view text) : value_(text) {}
  param(const char* text) : value_(text) {}
  param(const std::string& text) : value_(text) {}
  template <std::integral T>
  param(T number) : value_(std::to_string(number)) {}

  // Raw bytes for a bytea parameter.
  static param bytes(std::string_view raw) {
    param p(raw);
    p.binary_ = true;
    return p;
  }

  const std::optional<std::string>& value() const { return value_; }
  bool binary() const { return binary_; }

 private:
  std::optional<std::string> value_;
  bool binary_ = false;
};

using params = std::vector<param>;

class rows {
 public:
  rows() = default;  // no rows (Asio's co_spawn needs a default-constructible result)
  explicit rows(pg_result* result);

  std::size_t size() const;     // rows returned
  std::size_t columns() const;
  std::uint64_t affected() const;  // rows inserted, updated or deleted

  // REQUIRES for the accessors: row < size(), column < columns().
  bool is_null(std::size_t row, std::size_t column) const;
  std::string_view text(std::size_t row, std::size_t column) const;  // "" for NULL; valid while *this lives
  // The value as an integer; nullopt for NULL or text that is not one.
  std::optional<std::int64_t> int64(std::size_t row, std::size_t column) const;
  // A bytea value ("\x..." hex output) decoded; nullopt for NULL.
  std::optional<std::string> bytes(std::size_t row, std::size_t column) const;

 private:
  struct clear {
    void operator()(pg_result* result) const;
  };
  std::shared_ptr<pg_result> result_;
};

}  // namespace berth::pg
