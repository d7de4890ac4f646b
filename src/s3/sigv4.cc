#include "s3/sigv4.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "core/digest.h"

namespace berth::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &size);
  return std::string(reinterpret_cast<const char*>(out), size);
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Trims the value and collapses runs of spaces and tabs into one space, as SigV4 requires.
std::string trim_collapse(std::string_view value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

// Lower-cased names, sorted; repeated headers joined with ',' in the order given.
std::map<std::string, std::string> canonical_header_map(const params& headers) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : headers) {
    auto [it, inserted] = out.try_emplace(lower(name), trim_collapse(value));
    if (!inserted) it->second += "," + trim_collapse(value);
  }
  return out;
}

std::string signed_header_list(const std::map<std::string, std::string>& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

std::string credential_scope(std::string_view date, const scope& scope) {
  return fmt::format("{}/{}/{}/aws4_request", date.substr(0, 8), scope.region, scope.service);
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string canonical_query(const params& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) encoded.emplace_back(uri_encode(name), uri_encode(value));
  std::ranges::sort(encoded);
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point time) {
  return fmt::format("{:%Y%m%dT%H%M%SZ}", std::chrono::floor<std::chrono::seconds>(time));
}

std::string sha256_hex(std::string_view bytes) { return std::string(digest_of(bytes).hex()); }

std::string canonical_request(const request_to_sign& request) {
  const auto headers = canonical_header_map(request.headers);
  std::string header_block;
  for (const auto& [name, value] : headers) header_block += name + ":" + value + "\n";
  const std::string path = request.path.empty() ? "/" : uri_encode(request.path, /*keep_slash=*/true);
  return fmt::format("{}\n{}\n{}\n{}\n{}\n{}", request.method, path, canonical_query(request.query), header_block,
                     signed_header_list(headers), request.payload_hash);
}

std::string string_to_sign(std::string_view date, const scope& scope, std::string_view canonical_request) {
  return fmt::format("{}\n{}\n{}\n{}", kAlgorithm, date, credential_scope(date, scope),
                     sha256_hex(canonical_request));
}

std::string signature(std::string_view secret_key, std::string_view date, const scope& scope,
                      std::string_view string_to_sign) {
  std::string key = hmac("AWS4" + std::string(secret_key), date.substr(0, 8));
  key = hmac(key, scope.region);
  key = hmac(key, scope.service);
  key = hmac(key, "aws4_request");
  const std::string mac = hmac(key, string_to_sign);
  return hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
}

std::string authorization(const credentials& creds, const scope& scope, std::string_view date,
                          const request_to_sign& request) {
  const std::string to_sign = string_to_sign(date, scope, canonical_request(request));
  return fmt::format("{} Credential={}/{}, SignedHeaders={}, Signature={}", kAlgorithm, creds.access_key,
                     credential_scope(date, scope), signed_header_list(canonical_header_map(request.headers)),
                     signature(creds.secret_key, date, scope, to_sign));
}

std::string presigned_query(const credentials& creds, const scope& scope, std::string_view date,
                            std::chrono::seconds expires, request_to_sign request) {
  request.query.emplace_back("X-Amz-Algorithm", std::string(kAlgorithm));
  request.query.emplace_back("X-Amz-Credential", creds.access_key + "/" + credential_scope(date, scope));
  request.query.emplace_back("X-Amz-Date", std::string(date));
  request.query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  request.query.emplace_back("X-Amz-SignedHeaders", signed_header_list(canonical_header_map(request.headers)));
  const std::string to_sign = string_to_sign(date, scope, canonical_request(request));
  request.query.emplace_back("X-Amz-Signature", signature(creds.secret_key, date, scope, to_sign));
  return canonical_query(request.query);
}

}  // namespace berth::s3
