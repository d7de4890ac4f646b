#include "s3/transport.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <stdexcept>
#include <thread>

#include "s3/xml.h"

namespace berth::s3 {
namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxErrorBody = 64 << 10;     // enough for any S3 error document
constexpr std::size_t kMaxBufferedBody = 64 << 20;  // listings, XML results; objects go to sinks
// libcurl's receive buffer for an object streamed into a sink: fewer recv(2) calls and sink calls
// per MiB than its default 16 KiB.
constexpr long kSinkBuffer = 512 << 10;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct easy_deleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct slist_deleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Exponential backoff with jitter: a delay drawn from [d/2, d], d = base * 2^(retry-1).
milliseconds backoff_for(milliseconds base, int retry) {
  thread_local std::minstd_rand rng(std::random_device{}());
  const auto full = base * (1LL << std::min(retry - 1, 16));
  std::uniform_int_distribution<long long> pick(full.count() / 2, full.count());
  return milliseconds(pick(rng));
}

}  // namespace

// The state of one attempt, shared with libcurl's callbacks.
struct transport::attempt {
  const http_request& request;
  CURL* easy;
  http_response response;
  std::size_t body_offset = 0;
  bool touched = false;  // bytes were pulled from the source or pushed to the sink
  bool aborted = false;
  bool too_large = false;

  bool success() const {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
  }

  static std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* self) {
    auto& a = *static_cast<attempt*>(self);
    const std::size_t room = size * count;
    if (a.request.source) {
      const auto n = (*a.request.source)(std::span<char>(buffer, room));
      if (!n) {
        a.aborted = true;
        return CURL_READFUNC_ABORT;
      }
      a.touched = a.touched || *n > 0;
      return *n;
    }
    const std::size_t n = std::min(room, a.request.body.size() - a.body_offset);
    std::copy_n(a.request.body.data() + a.body_offset, n, buffer);
    a.body_offset += n;
    return n;
  }

  // libcurl rewinds an in-memory body when it must send it again on the same attempt.
  static int on_seek(void* self, curl_off_t offset, int origin) {
    auto& a = *static_cast<attempt*>(self);
    if (a.request.source || origin != SEEK_SET || offset < 0 ||
        static_cast<std::uint64_t>(offset) > a.request.body.size())
      return CURL_SEEKFUNC_CANTSEEK;
    a.body_offset = static_cast<std::size_t>(offset);
    return CURL_SEEKFUNC_OK;
  }

  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* self) {
    auto& a = *static_cast<attempt*>(self);
    const std::string_view piece(data, size * count);
    if (a.request.sink && a.success()) {
      a.touched = true;
      if (!(*a.request.sink)(piece)) {
        a.aborted = true;
        return 0;
      }
      return piece.size();
    }
    const std::size_t cap = a.success() ? kMaxBufferedBody : kMaxErrorBody;
    if (a.response.body.size() + piece.size() > cap) {
      if (a.success()) {
        a.too_large = true;
        return 0;
      }
      return piece.size();  // an error body: its start has the code
    }
    a.response.body.append(piece);
    return piece.size();
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) {
    auto& a = *static_cast<attempt*>(self);
    const std::string_view line(data, size * count);
    if (line.starts_with("HTTP/")) {
      a.response.headers.clear();  // a new answer (after a 100 Continue)
    } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
      a.response.headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
    }
    return line.size();
  }
};

transport::transport(transport_options options) : options_(std::move(options)) {
  global_init();
  share_.reset(curl_share_init());
  if (!share_) throw std::runtime_error("curl_share_init failed");
  curl_share_setopt(share_.get(), CURLSHOPT_LOCKFUNC, &transport::lock);
  curl_share_setopt(share_.get(), CURLSHOPT_UNLOCKFUNC, &transport::unlock);
  curl_share_setopt(share_.get(), CURLSHOPT_USERDATA, this);
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(share_.get(), CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

transport::~transport() = default;

void transport::lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
  static_cast<transport*>(self)->locks_[data].lock();
}

void transport::unlock(CURL*, curl_lock_data data, void* self) { static_cast<transport*>(self)->locks_[data].unlock(); }

result<http_response> transport::perform(const http_request& request) {
  const auto deadline = clock::now() + options_.timeout;
  for (int attempt = 1;; ++attempt) {
    bool touched = false;
    auto r = once(request, deadline, touched);
    if (r || !retryable(r.error()) || touched || attempt >= options_.max_attempts) return r;
    const auto delay = backoff_for(options_.backoff, attempt);
    if (clock::now() + delay >= deadline) return r;
    std::this_thread::sleep_for(delay);
    ++retries_;
  }
}

result<http_response> transport::once(const http_request& request, clock::time_point deadline, bool& body_touched) {
  const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
  if (remaining.count() <= 0) {
    return std::unexpected(error{errc::unavailable, 0, "", request.what + ": deadline exceeded"});
  }

  std::unique_ptr<CURL, easy_deleter> handle(curl_easy_init());
  if (!handle) return std::unexpected(error{errc::unavailable, 0, "", request.what + ": curl_easy_init failed"});
  CURL* easy = handle.get();
  attempt a{request, easy};

  std::unique_ptr<curl_slist, slist_deleter> headers;
  const bool has_body = request.method == "PUT" || request.method == "POST";
  auto add_header = [&](const std::string& h) { headers.reset(curl_slist_append(headers.release(), h.c_str())); };
  for (const auto& h : request.headers) add_header(h);
  // libcurl would add a form Content-Type to a POST; S3 wants none unless the caller set one.
  if (request.method == "POST" &&
      std::ranges::none_of(request.headers, [](const std::string& h) { return lower(h).starts_with("content-type:"); }))
    add_header("Content-Type:");

  char error_text[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(easy, CURLOPT_SHARE, share_.get());
  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);  // keys are names: "a/../b" is not "b"
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(remaining, options_.connect_timeout).count()));
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &attempt::on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &attempt::on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &a);
  if (request.sink) curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, kSinkBuffer);
  if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (has_body) {
    const auto size = static_cast<curl_off_t>(request.source ? request.source_size : request.body.size());
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &attempt::on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, &a);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, &attempt::on_seek);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, &a);
    if (request.method == "PUT") {
      curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, size);
    } else {
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, size);
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  const CURLcode rc = curl_easy_perform(easy);
  long connects = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
  connections_opened_ += static_cast<std::uint64_t>(connects);
  body_touched = a.touched;

  if (a.aborted) return std::unexpected(error{errc::aborted, 0, "", request.what + ": stopped by the caller"});
  if (a.too_large) return std::unexpected(error{errc::invalid, 0, "", request.what + ": answer too large"});
  if (rc != CURLE_OK) {
    const bool bad_request = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
    std::string cause = error_text[0] != '\0' ? error_text : curl_easy_strerror(rc);
    // libcurl's timer fires up to a few ms early, so the clock cannot tell. Connected, the timeout
    // that fired is the whole transfer's, which is the time left to the deadline; not connected, the
    // connect timeout, which is the deadline's when less time was left than connect_timeout.
    curl_off_t connect_us = 0;
    curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    const bool at_deadline = connect_us > 0 || remaining <= options_.connect_timeout;
    if (rc == CURLE_OPERATION_TIMEDOUT && at_deadline) cause = "deadline exceeded (" + cause + ")";
    return std::unexpected(
        error{bad_request ? errc::invalid : errc::unavailable, 0, "", fmt::format("{}: {}", request.what, cause)});
  }
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  a.response.status = static_cast<int>(status);
  if (status < 200 || status >= 300) {
    return std::unexpected(error_from_response(request.what, a.response.status, a.response.body));
  }
  if (request.error_in_200 && xml::root(a.response.body) == "Error") {
    return std::unexpected(error_from_response(request.what, a.response.status, a.response.body));
  }
  return std::move(a.response);
}

}  // namespace berth::s3
