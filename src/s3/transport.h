// The HTTP layer of the S3 client (internal to berth_s3): sends one prepared request over libcurl
// with a deadline, retries with exponential backoff and jitter on 5xx, throttling and network
// failures, and reuses connections across requests and threads (one curl share of connections,
// DNS and TLS sessions).
//
// A request body is in memory (resent on every retry) or pulled piecewise from a source (retried
// only while nothing has been read from it). An answer body is buffered, or pushed piecewise into a
// sink for 2xx answers (retried only while nothing has been pushed); error bodies are always
// buffered (capped) to read S3's error code.
// Thread-safety: perform() may be called from any number of threads at once. It blocks.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "s3/error.h"

namespace berth::s3 {

// Pulls the next piece of a streamed request body into `buffer`: returns the number of bytes
// written (0 only at the end of the body), or nullopt to abort the request (errc::aborted). May
// block; runs on the calling thread.
using body_source = std::function<std::optional<std::size_t>(std::span<char> buffer)>;

// Takes the next piece of an answer body; returns false to stop the transfer (errc::aborted). May
// block; runs on the calling thread.
using body_sink = std::function<bool(std::string_view piece)>;

struct transport_options {
  std::chrono::milliseconds timeout{60'000};  // the deadline of one call, all attempts included
  std::chrono::milliseconds connect_timeout{5'000};
  int max_attempts = 4;
  std::chrono::milliseconds backoff{100};  // before the second attempt; doubled for each next one
  std::string ca_file;                     // PEM bundle to trust for https ("" = the system's)
};

struct http_request {
  std::string what;  // for messages: "PUT bucket/key"
  std::string method;
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string_view body;             // in memory; ignored when `source` is set
  const body_source* source = nullptr;
  std::uint64_t source_size = 0;  // REQUIRES: the exact length `source` yields
  const body_sink* sink = nullptr;
  bool error_in_200 = false;  // a 200 whose body is an <Error> document is an error (Complete, Copy)
};

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // empty when the body went to a sink
};

class transport {
 public:
  explicit transport(transport_options options);
  ~transport();
  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  // Sends `request` until it gets a 2xx answer, a failure that retrying cannot fix, or the deadline.
  // Returns the 2xx answer; or the error of the last attempt.
  result<http_response> perform(const http_request& request);

  // How many TCP (or TLS) connections were opened so far: with connection reuse, far fewer than
  // requests.
  std::uint64_t connections_opened() const { return connections_opened_.load(); }
  // How many attempts were retries.
  std::uint64_t retries() const { return retries_.load(); }

 private:
  struct share_deleter {
    void operator()(CURLSH* share) const { curl_share_cleanup(share); }
  };
  struct attempt;
  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self);
  static void unlock(CURL*, curl_lock_data data, void* self);

  result<http_response> once(const http_request& request, std::chrono::steady_clock::time_point deadline,
                             bool& body_touched);

  transport_options options_;
  std::mutex locks_[CURL_LOCK_DATA_LAST];
  std::unique_ptr<CURLSH, share_deleter> share_;
  std::atomic<std::uint64_t> connections_opened_{0};
  std::atomic<std::uint64_t> retries_{0};
};

}  // namespace berth::s3
