#include "http/message.h"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <optional>

namespace berth::http {
namespace {

constexpr std::size_t first_read_body_size = 16 * 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Compares an encoded query key with a plain one without allocating in the common unencoded case.
bool key_equals(std::string_view encoded, std::string_view key) {
  if (encoded.find_first_of("%+") == std::string_view::npos) return encoded == key;
  return percent_decode(encoded, encoding::form) == key;
}

// Calls f(value) with the still-encoded value of every `key` parameter of `target`'s query, in order.
template <class F>
void for_each_value(std::string_view target, std::string_view key, F f) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    std::string_view name = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (key_equals(name, key)) f(value);
  }
}

}  // namespace

std::string percent_decode(std::string_view s, encoding e) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+' && e == encoding::form) {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::span<char> body_source::scratch() {
  if (!scratch_) {
    scratch_.reset(static_cast<char*>(::operator new[](scratch_size, std::align_val_t{scratch_alignment})));
  }
  return {scratch_.get(), scratch_size};
}

request::request(beast::http::verb method, std::string target, beast::http::fields headers,
                 std::optional<std::uint64_t> content_length, bool chunked, std::string remote_address,
                 body_source* body)
    : method_(method),
      target_(std::move(target)),
      headers_(std::move(headers)),
      content_length_(content_length),
      chunked_(chunked),
      remote_address_(std::move(remote_address)),
      body_(body) {}

std::string_view request::path() const {
  std::string_view t = target_;
  return t.substr(0, t.find('?'));
}

std::optional<std::string> request::query(std::string_view key) const {
  std::optional<std::string> found;
  for_each_value(target_, key, [&](std::string_view v) {
    if (!found) found = percent_decode(v, encoding::form);
  });
  return found;
}

std::vector<std::string> form_values(std::string_view form, std::string_view key) {
  std::vector<std::string> values;
  const std::string target = "?" + std::string(form);
  for_each_value(target, key, [&](std::string_view v) { values.push_back(percent_decode(v, encoding::form)); });
  return values;
}

std::vector<std::string> request::query_all(std::string_view key) const {
  std::vector<std::string> values;
  for_each_value(target_, key, [&](std::string_view v) { values.push_back(percent_decode(v, encoding::form)); });
  return values;
}

std::optional<std::string_view> request::header(std::string_view name) const {
  auto it = headers_.find(name);
  if (it == headers_.end()) return std::nullopt;
  return it->value();
}

asio::awaitable<result<std::string>> request::read_body(std::size_t limit) {
  if (content_length_ && *content_length_ > limit) {
    co_return fail(errc::payload_too_large, fmt::format("the body is larger than {} bytes", limit));
  }
  std::string out;
  if (!has_body() || body_ == nullptr) co_return out;

  // The buffer grows with what arrives (doubling from 16 KiB), never ahead of it: a client that
  // announces 4 MiB and sends one byte costs 16 KiB, not 4 MiB. A chunked body may fill it to one
  // byte past the limit, which is enough to tell that it is too large.
  const std::size_t cap =
      content_length_ ? *content_length_ : (limit == std::numeric_limits<std::size_t>::max() ? limit : limit + 1);
  out.resize(std::min<std::size_t>(cap, first_read_body_size));
  std::size_t used = 0;
  for (;;) {
    if (used == out.size()) {
      if (used == cap) break;  // everything announced has arrived, or the limit is passed
      out.resize(std::min(cap, used * 2));
    }
    auto n = co_await body_->read_some({out.data() + used, out.size() - used});
    if (!n) co_return std::unexpected(std::move(n.error()));
    if (*n == 0) break;
    used += *n;
    body_bytes_ += *n;
  }
  if (used > limit) co_return fail(errc::payload_too_large, fmt::format("the body is larger than {} bytes", limit));
  if (content_length_ && used < *content_length_) co_return fail(errc::size_invalid, "the body is shorter than announced");
  out.resize(used);
  co_return out;
}

asio::awaitable<result<std::uint64_t>> request::stream_body(const body_sink& sink) {
  std::uint64_t total = 0;
  if (!has_body() || body_ == nullptr) co_return total;
  std::span<char> buf = body_->scratch();
  std::optional<error> failed;
  for (bool done = false; !done;) {
    // Fill the buffer before handing it on: the sink (a file write, a hash) works best on large pieces.
    std::size_t filled = 0;
    while (filled < buf.size()) {
      auto n = co_await body_->read_some(buf.subspan(filled));
      if (!n) failed = std::move(n.error());
      if (!n || *n == 0) {
        done = true;
        break;
      }
      filled += *n;
      body_bytes_ += *n;
    }
    // Bytes that arrived before a failure are passed on too: an interrupted upload keeps them.
    if (filled == 0) break;
    auto sunk = co_await sink({buf.data(), filled});
    if (!sunk) co_return std::unexpected(std::move(sunk.error()));
    total += filled;
  }
  if (failed) co_return std::unexpected(std::move(*failed));
  co_return total;
}

}  // namespace berth::http
