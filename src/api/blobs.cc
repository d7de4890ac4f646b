// GET, HEAD and DELETE /v2/<name>/blobs/<digest>.
#include <fmt/core.h>

#include "api/handlers.h"
#include "http/range.h"

namespace berth::api {

namespace field = http::beast::http;

namespace {

// The blob as the server sends it: reads and the descriptor for sendfile come from the backend.
class blob_body final : public http::body_reader {
 public:
  explicit blob_body(std::unique_ptr<storage::blob_reader> reader) : reader_(std::move(reader)) {}
  awaitable<result<std::size_t>> read(std::uint64_t offset, std::span<char> buf) override {
    return reader_->read(offset, buf);
  }
  std::size_t read_size() const override { return reader_->read_size(); }
  int native_handle() const override { return reader_->native_handle(); }

 private:
  std::unique_ptr<storage::blob_reader> reader_;
};

}  // namespace

awaitable<result<response>> get_blob(context& ctx, request& req, const route& r, bool head) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto d = checked_digest(r.reference);
  if (!d) co_return std::unexpected(d.error());

  // The link decides visibility: the bytes may be stored for another repository only.
  auto linked = co_await ctx.meta.linked_blob_size(*name, *d);
  if (!linked) co_return std::unexpected(linked.error());
  if (!*linked) co_return fail(errc::blob_unknown, d->str());

  response res = empty_response(200);
  res.headers.set(field::field::content_type, "application/octet-stream");
  res.headers.set("Docker-Content-Digest", d->str());
  res.headers.set(field::field::accept_ranges, "bytes");
  res.headers.set(field::field::etag, fmt::format("\"{}\"", d->str()));
  res.headers.set(field::field::cache_control, "max-age=31536000");
  if (head) {
    // The bytes must be there, but nothing needs opening.
    auto size = co_await ctx.blobs.stat(*d);
    if (!size) co_return std::unexpected(size.error());
    res.head_length = *size;
    co_return res;
  }

  auto reader = co_await ctx.blobs.open(*d);
  if (!reader) co_return std::unexpected(reader.error());
  if (auto url = (*reader)->redirect_url()) {
    response redirect = empty_response(307);
    redirect.headers.set(field::field::location, *url);
    redirect.headers.set("Docker-Content-Digest", d->str());
    co_return redirect;
  }
  const std::uint64_t size = (*reader)->size();
  http::byte_range range{0, size == 0 ? 0 : size - 1};
  if (auto header = req.header("Range")) {
    using kind = http::range_request::kind;
    auto asked = http::parse_range(*header, size);
    if (asked.k == kind::unsatisfiable) {
      response bad = empty_response(416);
      bad.headers.set(field::field::content_range, fmt::format("bytes */{}", size));
      co_return bad;
    }
    if (asked.k == kind::satisfiable) {
      range = asked.range;
      res.status = 206;
      res.headers.set(field::field::content_range, fmt::format("bytes {}-{}/{}", range.first, range.last, size));
    }
  }
  if (size > 0) {
    res.stream = http::streamed_body{std::make_shared<blob_body>(std::move(*reader)), range.first, range.length()};
  }
  co_return res;
}

awaitable<result<response>> delete_blob(context& ctx, request&, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto d = checked_digest(r.reference);
  if (!d) co_return std::unexpected(d.error());
  // Only the link goes: other repositories may share the bytes; the garbage collector frees them.
  auto removed = co_await ctx.meta.unlink_blob(*name, *d);
  if (!removed) co_return std::unexpected(removed.error());
  if (!*removed) co_return fail(errc::blob_unknown, d->str());
  co_return empty_response(202);
}

}  // namespace berth::api
