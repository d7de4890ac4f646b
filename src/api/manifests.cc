// Manifests: GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>, and the referrers API
// GET /v2/<name>/referrers/<digest>. Manifests are stored byte-exact in the metadata store; their
// digest is the digest of the exact bytes pushed.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "api/handlers.h"
#include "core/manifest.h"
#include "core/reference.h"
#include "core/unix_time.h"
#include "lifecycle/platforms.h"

namespace berth::api {
namespace {

namespace field = http::beast::http;

// A reference is a digest when it has a colon (tags cannot), else a tag.
bool is_digest_reference(std::string_view reference) { return reference.find(':') != std::string_view::npos; }

result<std::string_view> checked_tag(std::string_view tag) {
  if (!valid_tag(tag)) return fail(errc::tag_invalid, "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}");
  return tag;
}

awaitable<result<std::optional<meta::manifest_record>>> find_manifest(context& ctx, std::string_view name,
                                                                      std::string_view reference) {
  if (is_digest_reference(reference)) {
    auto d = checked_digest(reference);
    if (!d) co_return std::unexpected(d.error());
    co_return co_await ctx.meta.manifest_by_digest(name, *d);
  }
  // A tag that breaks the grammar cannot have been pushed: it is simply unknown.
  if (!valid_tag(reference)) co_return std::optional<meta::manifest_record>{};
  co_return co_await ctx.meta.manifest_by_tag(name, reference);
}

// Everything a manifest refers to must already be in the repository.
awaitable<result<void>> check_references(context& ctx, std::string_view name, const parsed_manifest& m) {
  const auto digests_of = [](const std::vector<descriptor>& ds) {
    std::vector<digest> out;
    out.reserve(ds.size());
    for (const auto& d : ds) out.push_back(d.dgst);
    return out;
  };
  const auto blobs = digests_of(m.blobs);
  auto missing_blobs = co_await ctx.meta.missing_blobs(name, blobs);
  if (!missing_blobs) co_return std::unexpected(missing_blobs.error());
  if (!missing_blobs->empty()) co_return fail(errc::manifest_blob_unknown, missing_blobs->front().str());
  const auto manifests = digests_of(m.manifests);
  auto missing_manifests = co_await ctx.meta.missing_manifests(name, manifests);
  if (!missing_manifests) co_return std::unexpected(missing_manifests.error());
  if (!missing_manifests->empty()) co_return fail(errc::manifest_blob_unknown, missing_manifests->front().str());
  co_return result<void>{};
}

// What the tag listings show of the image (meta::manifest_record::total_size, platforms): an index
// adds each child's recorded total and names its entries' platforms; an image manifest's platform
// is in its config blob, read here (small, and already stored).
struct image_facts {
  std::uint64_t total_size = 0;
  std::vector<std::string> platforms;
};
awaitable<result<image_facts>> describe_image(context& ctx, std::string_view name, const parsed_manifest& m,
                                              std::size_t manifest_bytes) {
  std::vector<std::uint64_t> child_sizes;
  for (const auto& child : m.manifests) {
    auto found = co_await ctx.meta.manifest_by_digest(name, child.dgst);
    if (!found) co_return std::unexpected(found.error());
    child_sizes.push_back(*found ? (*found)->total_size : child.size);
  }
  image_facts out{total_size(m, manifest_bytes, child_sizes), index_platforms(m)};
  auto platform = co_await lifecycle::config_platform_of(ctx.blobs, m);
  if (!platform) co_return std::unexpected(platform.error());
  if (!platform->empty()) out.platforms.push_back(std::move(*platform));
  co_return out;
}

}  // namespace

awaitable<result<response>> get_manifest(context& ctx, request&, const route& r, bool head) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto found = co_await find_manifest(ctx, *name, r.reference);
  if (!found) co_return std::unexpected(found.error());
  if (!*found) co_return fail(errc::manifest_unknown, std::string(r.reference));
  meta::manifest_record& m = **found;

  response res = empty_response(200);
  res.headers.set(field::field::content_type, m.media_type);
  res.headers.set("Docker-Content-Digest", m.dgst.str());
  res.headers.set(field::field::etag, fmt::format("\"{}\"", m.dgst.str()));
  if (head) {
    res.head_length = m.content.size();
  } else {
    res.body = std::move(m.content);
  }
  co_return res;
}

awaitable<result<response>> put_manifest(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  std::optional<digest> by_digest;
  std::optional<std::string_view> tag;
  if (is_digest_reference(r.reference)) {
    auto d = checked_digest(r.reference);
    if (!d) co_return std::unexpected(d.error());
    by_digest = std::move(*d);
  } else {
    auto t = checked_tag(r.reference);
    if (!t) co_return std::unexpected(t.error());
    tag = *t;
  }

  auto body = co_await req.read_body(ctx.options.manifest_max_bytes);
  if (!body && body.error().code == errc::payload_too_large) {
    co_return fail(errc::manifest_too_large,
                   fmt::format("a manifest is at most {} bytes", ctx.options.manifest_max_bytes));
  }
  if (!body) co_return std::unexpected(body.error());
  digest d = digest_of(*body, by_digest ? by_digest->algorithm() : digest_algorithm::sha256);
  if (by_digest && d != *by_digest) co_return fail(errc::digest_invalid, "the body's digest is " + d.str());

  const std::string content_type(req.header("Content-Type").value_or(""));
  auto parsed = parse_manifest(content_type, *body);
  if (!parsed) co_return std::unexpected(parsed.error());
  auto refs = co_await check_references(ctx, *name, *parsed);
  if (!refs) co_return std::unexpected(refs.error());

  std::optional<digest> subject = parsed->subject;
  // Serve the Content-Type as pushed when it names the manifest's type; else the body's own type.
  std::string media_type = content_type.starts_with(parsed->media_type) ? content_type : parsed->media_type;
  auto facts = co_await describe_image(ctx, *name, *parsed, body->size());
  if (!facts) co_return std::unexpected(facts.error());
  auto rec = meta::make_manifest_record(d, std::move(media_type), std::move(*body), std::move(*parsed));
  rec.total_size = facts->total_size;
  rec.platforms = std::move(facts->platforms);
  // The store refuses to move an immutable tag in the transaction that would move it.
  const std::string immutable = tag ? ctx.pol->immutable(*name, *tag).value_or("") : "";
  const meta::push_stamp stamp{ctx.who->subject(), unix_millis(), {}, immutable};
  auto stored = co_await ctx.meta.put_manifest(*name, rec, tag, stamp);
  if (!stored) co_return std::unexpected(stored.error());

  response res = empty_response(201);
  res.headers.set(field::field::location, absolute_url(ctx, req, fmt::format("/v2/{}/manifests/{}", *name, d.str())));
  res.headers.set("Docker-Content-Digest", d.str());
  if (subject) res.headers.set("OCI-Subject", subject->str());
  co_return res;
}

awaitable<result<response>> delete_manifest(context& ctx, request&, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  result<bool> deleted;
  if (is_digest_reference(r.reference)) {
    auto d = checked_digest(r.reference);
    if (!d) co_return std::unexpected(d.error());
    // An immutable tag on it refuses the deletion, judged in the store's transaction: a tag set
    // meanwhile is judged too.
    const meta::push_stamp stamp{ctx.who->subject(), unix_millis(), {}};
    // OCI lets a client delete a manifest that another one still needs (an index's child).
    const meta::delete_guard guard{
        .tags = [&](std::string_view tag) { return ctx.pol->immutable(*name, tag); }};
    deleted = co_await ctx.meta.delete_manifest(*name, *d, stamp, guard);
  } else {
    auto tag = checked_tag(r.reference);
    if (!tag) co_return std::unexpected(tag.error());
    if (auto rule = ctx.pol->immutable(*name, *tag)) {
      // An immutable tag is never deleted: refused when it exists, unknown when not. Nothing is
      // written, so a push creating it meanwhile cannot be undone by this request.
      auto current = co_await ctx.meta.manifest_by_tag(*name, *tag);
      if (!current) co_return std::unexpected(current.error());
      if (*current) co_return fail(errc::denied, std::move(*rule));
      co_return fail(errc::manifest_unknown, std::string(r.reference));
    }
    const meta::push_stamp stamp{ctx.who->subject(), unix_millis(), {}};
    deleted = co_await ctx.meta.delete_tag(*name, *tag, stamp);
  }
  if (!deleted) co_return std::unexpected(deleted.error());
  if (!*deleted) co_return fail(errc::manifest_unknown, std::string(r.reference));
  co_return empty_response(202);
}

awaitable<result<response>> get_referrers(context& ctx, request& req, const route& r) {
  auto name = checked_name(r.name);
  if (!name) co_return std::unexpected(name.error());
  auto subject = checked_digest(r.reference);
  if (!subject) co_return std::unexpected(subject.error());
  const auto filter = req.query("artifactType");
  auto found = co_await ctx.meta.referrers(*name, *subject, filter ? std::optional<std::string_view>(*filter) : std::nullopt);
  if (!found) co_return std::unexpected(found.error());

  nlohmann::json manifests = nlohmann::json::array();
  for (const auto& ref : *found) {
    nlohmann::json entry = {{"mediaType", ref.media_type}, {"digest", ref.dgst.str()}, {"size", ref.size}};
    if (!ref.artifact_type.empty()) entry["artifactType"] = ref.artifact_type;
    if (!ref.annotations_json.empty()) entry["annotations"] = nlohmann::json::parse(ref.annotations_json);
    manifests.push_back(std::move(entry));
  }
  response res = empty_response(200);
  res.headers.set(field::field::content_type, media_type::oci_index);
  if (filter) res.headers.set("OCI-Filters-Applied", "artifactType");
  res.body = nlohmann::json{{"schemaVersion", 2}, {"mediaType", media_type::oci_index}, {"manifests", manifests}}.dump();
  co_return res;
}

}  // namespace berth::api
