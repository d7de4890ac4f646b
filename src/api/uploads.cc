// Blob uploads: POST /v2/<name>/blobs/uploads/ (session, single request, or cross-repository
// mount), PATCH/PUT/GET/DELETE /v2/<name>/blobs/uploads/<id>.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "api/handlers.h"
#include "http/range.h"

namespace berth::api {
namespace {

namespace field = http::beast::http;

std::string range_value(std::uint64_t size) { return fmt::format("0-{}", size == 0 ? 0 : size - 1); }

// 202 (or 204 for status) describing an upload session: where to send the next chunk and how much
// has arrived.
response upload_progress(const context& ctx, const request& req, std::string_view name, std::string_view id,
                         std::uint64_t size, unsigned status) {
  response res = empty_response(status);
  res.headers.set(field::field::location, absolute_url(ctx, req, fmt::format("/v2/{}/blobs/uploads/{}", name, id)));
  res.headers.set(field::field::range, range_value(size));
  res.headers.set("Docker-Upload-UUID", std::string(id));
  return res;
}

response blob_created(const context& ctx, const request& req, std::string_view name, const digest& d) {
  response res = empty_response(201);
  res.headers.set(field::field::location, absolute_url(ctx, req, fmt::format("/v2/{}/blobs/{}", name, d.str())));
  res.headers.set("Docker-Content-Digest", d.str());
  return res;
}

// Checks a chunk's Content-Range against the bytes already received: chunks must arrive in order.
result<void> check_chunk_order(const request& req, std::uint64_t received) {
  const auto header = req.header("Content-Range");
  if (!header) return {};
  const auto range = http::parse_content_range(*header);
  if (!range) return fail(errc::range_invalid, "malformed Content-Range");
  if (range->first != received)
    return fail(errc::range_invalid, fmt::format("chunk starts at {}, upload has {} bytes", range->first, received));
  if (const auto length = req.content_length(); length && *length != range->length())
    return fail(errc::size_invalid, "Content-Length does not match Content-Range");
  return {};
}

// Writes the request body into the upload, hashing in the same pass.
awaitable<result<std::uint64_t>> receive(request& req, uploads::upload_session& up) {
  auto received = co_await req.stream_body([&up](std::string_view piece) { return up.write(piece); });
  // The last piece may still be on its way to the backend: the response must not run ahead of it.
  auto flushed = co_await up.flush();
  if (!received) co_return received;
  if (!flushed) co_return std::unexpected(flushed.error());
  co_return received;
}

// Ends the request's hold on the upload before answering `out`, so that the client's next request
// finds it free; a failed release fails the request.
awaitable<result<response>> released(uploads::upload_session& up, result<response> out) {
  auto done = co_await up.release();
  if (out && !done) co_return std::unexpected(done.error());
  co_return out;
}

// POST ?mount=<digest>[&from=<repo>]: links an existing blob instead of uploading it. Returns the 201,
// or nullopt when the blob cannot be mounted (the caller then opens a normal upload session). The
// caller must be allowed to pull the source: `from` when given (else no mount), or, for an automatic
// mount, one of the repositories that hold the blob.
awaitable<result<std::optional<response>>> try_mount(context& ctx, request& req, std::string_view name,
                                                     std::string_view mount) {
  auto d = checked_digest(mount);
  if (!d) co_return std::unexpected(d.error());
  result<std::optional<std::uint64_t>> size;
  if (auto from = req.query("from")) {
    if (!checked_name(*from)) co_return std::optional<response>{};
    if (!ctx.who->allowed(*ctx.pol, policy::action::pull, *from)) co_return std::optional<response>{};
    size = co_await ctx.meta.linked_blob_size(*from, *d);
  } else {
    auto holders = co_await ctx.meta.repositories_with_blob(*d, 100);
    if (!holders) co_return std::unexpected(holders.error());
    size = std::optional<std::uint64_t>{};
    for (const auto& repo : *holders) {
      if (repo != name && !ctx.who->allowed(*ctx.pol, policy::action::pull, repo)) continue;
      size = co_await ctx.meta.linked_blob_size(repo, *d);
      if (!size || *size) break;
    }
  }
  if (!size) co_return std::unexpected(size.error());
  if (!*size) co_return std::optional<response>{};
  auto linked = co_await ctx.meta.link_blob(name, *d, **size);
  if (!linked) co_return std::unexpected(linked.error());
  if (!*linked) co_return std::optional<response>{};  // collected meanwhile: the client uploads it
  co_return blob_created(ctx, req, name, *d);
}

}  // namespace

awaitable<result<response>> start_upload(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());

  if (auto mount = req.query("mount")) {
    auto mounted = co_await try_mount(ctx, req, *name, *mount);
    if (!mounted) co_return std::unexpected(mounted.error());
    if (*mounted) co_return std::move(**mounted);
  }

  // Validate a single-request upload's digest before creating anything.
  std::optional<digest> single;
  if (auto text = req.query("digest")) {
    auto d = checked_digest(*text);
    if (!d) co_return std::unexpected(d.error());
    single = std::move(*d);
  }

  if (!single) {
    auto id = co_await ctx.uploads.create(*name);
    if (!id) co_return std::unexpected(id.error());
    co_return upload_progress(ctx, req, *name, *id, 0, 202);
  }

  // A single-request upload: no client knows its id, so a failure must leave nothing behind.
  auto up = co_await ctx.uploads.start(*name);
  if (!up) co_return std::unexpected(up.error());
  result<std::uint64_t> done;
  auto received = co_await receive(req, *up);
  if (!received) {
    done = std::unexpected(received.error());
  } else {
    done = co_await up->commit(*single);
  }
  if (!done) {
    auto discarded = co_await up->discard();
    if (!discarded) spdlog::warn("uploads: a failed single-request upload left {} behind", up->id());
    co_return std::unexpected(done.error());
  }
  co_return blob_created(ctx, req, *name, *single);
}

awaitable<result<response>> patch_upload(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto up = co_await ctx.uploads.open(*name, r.reference);
  if (!up) co_return std::unexpected(up.error());
  result<response> out;
  if (auto order = check_chunk_order(req, up->size()); !order) {
    // The client needs the current offset to recover.
    out = order.error().code == errc::range_invalid
              ? result<response>(upload_progress(ctx, req, *name, r.reference, up->size(), 416))
              : result<response>(std::unexpected(order.error()));
  } else {
    auto received = co_await receive(req, *up);
    out = received ? result<response>(upload_progress(ctx, req, *name, r.reference, up->size(), 202))
                   : result<response>(std::unexpected(received.error()));
  }
  co_return co_await released(*up, std::move(out));
}

awaitable<result<response>> finish_upload(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  const auto text = req.query("digest");
  if (!text) co_return fail(errc::digest_invalid, "PUT needs ?digest=");
  auto d = checked_digest(*text);
  if (!d) co_return std::unexpected(d.error());
  auto up = co_await ctx.uploads.open(*name, r.reference);
  if (!up) co_return std::unexpected(up.error());
  if (req.has_body()) {
    result<std::uint64_t> received = 0;
    if (auto order = check_chunk_order(req, up->size()); !order) {
      received = std::unexpected(order.error());
    } else {
      received = co_await receive(req, *up);
    }
    if (!received) co_return co_await released(*up, std::unexpected(received.error()));
  }
  // Stores the blob and links it into the repository: durable before the 201. A digest mismatch
  // discards the upload; any other failure keeps it for a retry.
  auto done = co_await up->commit(*d);
  if (!done) co_return co_await released(*up, std::unexpected(done.error()));
  co_return blob_created(ctx, req, *name, *d);
}

awaitable<result<response>> upload_status(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto size = co_await ctx.uploads.size(*name, r.reference);
  if (!size) co_return std::unexpected(size.error());
  co_return upload_progress(ctx, req, *name, r.reference, *size, 204);
}

awaitable<result<response>> cancel_upload(context& ctx, request&, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto cancelled = co_await ctx.uploads.cancel(*name, r.reference);
  if (!cancelled) co_return std::unexpected(cancelled.error());
  co_return empty_response(204);
}

}  // namespace berth::api
