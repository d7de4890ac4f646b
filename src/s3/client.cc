#include "s3/client.h"

#include <fmt/format.h>

#include <charconv>
#include <stdexcept>

#include "s3/xml.h"

namespace berth::s3 {
namespace {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string header(const http_response& response, const std::string& name) {
  const auto it = response.headers.find(name);
  return it == response.headers.end() ? std::string() : it->second;
}

// An answer that lacks what S3 always sends: a broken or foreign server.
error malformed(std::string_view what, std::string_view missing) {
  return error{errc::unavailable, 200, "", fmt::format("{}: answer without {}", what, missing)};
}

// The size of the whole object: from "Content-Range: bytes 0-9/1234" on a 206, else Content-Length.
std::optional<std::uint64_t> object_size(const http_response& response) {
  if (response.status == 206) {
    const std::string range = header(response, "content-range");
    const auto slash = range.rfind('/');
    return slash == std::string::npos ? std::nullopt : parse_u64(std::string_view(range).substr(slash + 1));
  }
  return parse_u64(header(response, "content-length"));
}

}  // namespace

std::string normalize_etag(std::string_view etag) {
  while (!etag.empty() && (etag.front() == ' ' || etag.front() == '\t')) etag.remove_prefix(1);
  while (!etag.empty() && (etag.back() == ' ' || etag.back() == '\t')) etag.remove_suffix(1);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') return std::string(etag);
  return "\"" + std::string(etag) + "\"";
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS, then optional fractional seconds, then Z.
  if (text.size() < 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':' || text.back() != 'Z')
    return std::nullopt;
  const auto field = [&](std::size_t at, std::size_t n) { return parse_u64(text.substr(at, n)); };
  const auto y = field(0, 4), mo = field(5, 2), d = field(8, 2), h = field(11, 2), mi = field(14, 2), s = field(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *h > 23 || *mi > 59 || *s > 60) return std::nullopt;
  const std::string_view fraction = text.substr(19, text.size() - 20);
  if (!fraction.empty() && (fraction.front() != '.' || !parse_u64(fraction.substr(1)))) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(static_cast<int>(*y)),
                                         std::chrono::month(static_cast<unsigned>(*mo)),
                                         std::chrono::day(static_cast<unsigned>(*d))};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date) + std::chrono::hours(*h) + std::chrono::minutes(*mi) + std::chrono::seconds(*s);
}

client::client(config cfg) : cfg_(std::move(cfg)), transport_(cfg_.transport) {
  const std::string_view endpoint = cfg_.endpoint;
  const auto sep = endpoint.find("://");
  if (sep == std::string_view::npos) throw std::invalid_argument("S3 endpoint must be http(s)://host[:port]");
  scheme_ = endpoint.substr(0, sep);
  authority_ = endpoint.substr(sep + 3);
  while (!authority_.empty() && authority_.back() == '/') authority_.pop_back();
  if ((scheme_ != "http" && scheme_ != "https") || authority_.empty() || authority_.find('/') != std::string::npos)
    throw std::invalid_argument("S3 endpoint must be http(s)://host[:port]");
  if (cfg_.bucket.empty()) throw std::invalid_argument("S3 bucket is empty");
  scope_.region = cfg_.region;
}

client::target client::locate(std::string_view key, const params& query) const {
  target t;
  if (cfg_.virtual_hosted) {
    t.host = cfg_.bucket + "." + authority_;
    t.path = "/" + std::string(key);
  } else {
    t.host = authority_;
    t.path = "/" + cfg_.bucket + (key.empty() ? "" : "/" + std::string(key));
  }
  t.url = scheme_ + "://" + t.host + uri_encode(t.path, /*keep_slash=*/true);
  if (!query.empty()) t.url += "?" + canonical_query(query);
  return t;
}

result<http_response> client::send(std::string_view method, std::string_view key, const params& query,
                                   http_request request, params extra, std::vector<std::string> unsigned_headers) {
  const target t = locate(key, query);
  const std::string date = amz_date(std::chrono::system_clock::now());
  const std::string payload_hash = request.source ? std::string(kUnsignedPayload) : sha256_hex(request.body);
  request_to_sign to_sign{std::string(method), t.path, query,
                          {{"Host", t.host}, {"X-Amz-Content-Sha256", payload_hash}, {"X-Amz-Date", date}},
                          payload_hash};
  to_sign.headers.insert(to_sign.headers.end(), extra.begin(), extra.end());

  request.what = fmt::format("{} {}/{}", method, cfg_.bucket, key);
  request.method = std::string(method);
  request.url = t.url;
  for (const auto& [name, value] : to_sign.headers) request.headers.push_back(name + ": " + value);
  request.headers.push_back("Authorization: " + authorization(cfg_.creds, scope_, date, to_sign));
  request.headers.insert(request.headers.end(), unsigned_headers.begin(), unsigned_headers.end());
  return transport_.perform(request);
}

result<void> client::create_bucket() {
  auto r = send("PUT", "", {}, {});
  if (!r && r.error().s3_code == "BucketAlreadyOwnedByYou") return {};
  if (!r) return std::unexpected(r.error());
  return {};
}

result<std::string> client::put(std::string_view key, std::string_view body) {
  http_request request;
  request.body = body;
  auto r = send("PUT", key, {}, std::move(request));
  if (!r) return std::unexpected(r.error());
  return normalize_etag(header(*r, "etag"));
}

result<std::string> client::put(std::string_view key, std::uint64_t size, const body_source& source) {
  http_request request;
  request.source = &source;
  request.source_size = size;
  auto r = send("PUT", key, {}, std::move(request));
  if (!r) return std::unexpected(r.error());
  return normalize_etag(header(*r, "etag"));
}

result<object_info> client::get(std::string_view key, const body_sink& sink, std::optional<byte_range> range) {
  http_request request;
  request.sink = &sink;
  std::vector<std::string> unsigned_headers;
  if (range) {
    unsigned_headers.push_back(fmt::format("Range: bytes={}-{}", range->offset, range->offset + range->length - 1));
  }
  auto r = send("GET", key, {}, std::move(request), {}, std::move(unsigned_headers));
  if (!r) return std::unexpected(r.error());
  const auto size = object_size(*r);
  if (!size) return std::unexpected(malformed(fmt::format("GET {}/{}", cfg_.bucket, key), "a length"));
  return object_info{*size, normalize_etag(header(*r, "etag"))};
}

result<object_info> client::head(std::string_view key) {
  auto r = send("HEAD", key, {}, {});
  if (!r) return std::unexpected(r.error());
  const auto size = parse_u64(header(*r, "content-length"));
  if (!size) return std::unexpected(malformed(fmt::format("HEAD {}/{}", cfg_.bucket, key), "Content-Length"));
  return object_info{*size, normalize_etag(header(*r, "etag"))};
}

result<void> client::remove(std::string_view key) {
  auto r = send("DELETE", key, {}, {});
  if (!r) return std::unexpected(r.error());
  return {};
}

result<std::string> client::copy(std::string_view from, std::string_view to) {
  http_request request;
  request.error_in_200 = true;
  const std::string source = "/" + cfg_.bucket + "/" + uri_encode(from, /*keep_slash=*/true);
  auto r = send("PUT", to, {}, std::move(request), {{"X-Amz-Copy-Source", source}});
  if (!r) return std::unexpected(r.error());
  const auto etag = xml::text(r->body, "ETag");
  if (!etag) return std::unexpected(malformed(fmt::format("PUT {}/{}", cfg_.bucket, to), "an ETag"));
  return normalize_etag(*etag);
}

result<std::string> client::create_multipart(std::string_view key) {
  auto r = send("POST", key, {{"uploads", ""}}, {});
  if (!r) return std::unexpected(r.error());
  auto id = xml::text(r->body, "UploadId");
  if (!id || id->empty()) return std::unexpected(malformed(fmt::format("POST {}/{}", cfg_.bucket, key), "an UploadId"));
  return std::move(*id);
}

result<std::string> client::upload_part(std::string_view key, std::string_view upload_id, int number,
                                        std::string_view body) {
  http_request request;
  request.body = body;
  auto r = send("PUT", key, {{"partNumber", std::to_string(number)}, {"uploadId", std::string(upload_id)}},
                std::move(request));
  if (!r) return std::unexpected(r.error());
  return normalize_etag(header(*r, "etag"));
}

result<std::string> client::upload_part_copy(std::string_view key, std::string_view upload_id, int number,
                                             std::string_view source) {
  http_request request;
  request.error_in_200 = true;
  const std::string from = "/" + cfg_.bucket + "/" + uri_encode(source, /*keep_slash=*/true);
  auto r = send("PUT", key, {{"partNumber", std::to_string(number)}, {"uploadId", std::string(upload_id)}},
                std::move(request), {{"X-Amz-Copy-Source", from}});
  if (!r) return std::unexpected(r.error());
  const auto etag = xml::text(r->body, "ETag");
  if (!etag || etag->empty()) return std::unexpected(malformed(fmt::format("PUT {}/{}", cfg_.bucket, key), "an ETag"));
  return normalize_etag(*etag);
}

result<std::string> client::complete_multipart(std::string_view key, std::string_view upload_id,
                                               const std::vector<part>& parts) {
  std::string doc = "<CompleteMultipartUpload>";
  for (const auto& p : parts) {
    doc += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", p.number,
                       xml::escape(normalize_etag(p.etag)));
  }
  doc += "</CompleteMultipartUpload>";
  http_request request;
  request.body = doc;
  request.error_in_200 = true;
  auto r = send("POST", key, {{"uploadId", std::string(upload_id)}}, std::move(request),
                {{"Content-Type", "application/xml"}});
  if (!r) return std::unexpected(r.error());
  const auto etag = xml::text(r->body, "ETag");
  if (!etag) return std::unexpected(malformed(fmt::format("POST {}/{}", cfg_.bucket, key), "an ETag"));
  if (etag->empty()) {  // Ceph 16's RGW answers <ETag></ETag>; the object has one
    auto info = head(key);
    if (!info) return std::unexpected(info.error());
    return info->etag;
  }
  return normalize_etag(*etag);
}

result<void> client::abort_multipart(std::string_view key, std::string_view upload_id) {
  auto r = send("DELETE", key, {{"uploadId", std::string(upload_id)}}, {});
  if (!r) return std::unexpected(r.error());
  return {};
}

result<std::vector<part>> client::list_parts(std::string_view key, std::string_view upload_id) {
  std::vector<part> parts;
  std::string marker;
  for (;;) {
    params query{{"uploadId", std::string(upload_id)}};
    if (!marker.empty()) query.emplace_back("part-number-marker", marker);
    auto r = send("GET", key, query, {});
    if (!r) return std::unexpected(r.error());
    for (const auto element : xml::elements(r->body, "Part")) {
      const auto number = parse_u64(xml::text(element, "PartNumber").value_or(""));
      const auto size = parse_u64(xml::text(element, "Size").value_or(""));
      const auto etag = xml::text(element, "ETag");
      if (!number || !size || !etag)
        return std::unexpected(malformed(fmt::format("GET {}/{}", cfg_.bucket, key), "a complete Part"));
      parts.push_back(part{static_cast<int>(*number), normalize_etag(*etag), *size});
    }
    marker = xml::text(r->body, "NextPartNumberMarker").value_or("");
    if (xml::text(r->body, "IsTruncated") != "true" || marker.empty()) return parts;
  }
}

result<std::vector<multipart_upload>> client::list_multipart(std::string_view prefix) {
  std::vector<multipart_upload> out;
  std::string key_marker, id_marker;
  for (;;) {
    params query{{"uploads", ""}};
    if (!prefix.empty()) query.emplace_back("prefix", std::string(prefix));
    if (!key_marker.empty()) query.emplace_back("key-marker", key_marker);
    if (!id_marker.empty()) query.emplace_back("upload-id-marker", id_marker);
    auto r = send("GET", "", query, {});
    if (!r) return std::unexpected(r.error());
    for (const auto element : xml::elements(r->body, "Upload")) {
      auto key = xml::text(element, "Key");
      auto id = xml::text(element, "UploadId");
      const auto initiated = parse_iso8601(xml::text(element, "Initiated").value_or(""));
      if (!key || !id || !initiated)
        return std::unexpected(malformed(fmt::format("GET {}/?uploads", cfg_.bucket), "a complete Upload"));
      out.push_back(multipart_upload{std::move(*key), std::move(*id), *initiated});
    }
    key_marker = xml::text(r->body, "NextKeyMarker").value_or("");
    id_marker = xml::text(r->body, "NextUploadIdMarker").value_or("");
    if (xml::text(r->body, "IsTruncated") != "true" || (key_marker.empty() && id_marker.empty())) return out;
  }
}

result<listing> client::list(std::string_view prefix, std::string_view token, std::string_view delimiter,
                             int max_keys) {
  params query{{"list-type", "2"}, {"max-keys", std::to_string(max_keys)}};
  if (!prefix.empty()) query.emplace_back("prefix", std::string(prefix));
  if (!token.empty()) query.emplace_back("continuation-token", std::string(token));
  if (!delimiter.empty()) query.emplace_back("delimiter", std::string(delimiter));
  auto r = send("GET", "", query, {});
  if (!r) return std::unexpected(r.error());
  listing out;
  for (const auto element : xml::elements(r->body, "Contents")) {
    auto key = xml::text(element, "Key");
    const auto size = parse_u64(xml::text(element, "Size").value_or(""));
    if (!key || !size) return std::unexpected(malformed(fmt::format("GET {}/", cfg_.bucket), "a complete Contents"));
    const auto modified = parse_iso8601(xml::text(element, "LastModified").value_or(""));
    if (!modified)
      return std::unexpected(malformed(fmt::format("GET {}/", cfg_.bucket), "a LastModified"));
    out.objects.push_back(
        {std::move(*key), *size, normalize_etag(xml::text(element, "ETag").value_or("")), *modified});
  }
  for (const auto element : xml::elements(r->body, "CommonPrefixes")) {
    if (auto p = xml::text(element, "Prefix")) out.prefixes.push_back(std::move(*p));
  }
  if (xml::text(r->body, "IsTruncated") == "true") {
    out.next_token = xml::text(r->body, "NextContinuationToken").value_or("");
    if (out.next_token.empty())
      return std::unexpected(malformed(fmt::format("GET {}/", cfg_.bucket), "a NextContinuationToken"));
  }
  return out;
}

std::string client::presign_get(std::string_view key, std::chrono::seconds expires,
                                std::chrono::system_clock::time_point now) const {
  const target t = locate(key, {});
  const request_to_sign to_sign{"GET", t.path, {}, {{"Host", t.host}}, std::string(kUnsignedPayload)};
  return t.url + "?" + presigned_query(cfg_.creds, scope_, amz_date(now), expires, to_sign);
}

}  // namespace berth::s3
