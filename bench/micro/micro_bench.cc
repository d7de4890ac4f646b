// Micro-benchmarks for the functions every request goes through: digest and name/tag parsing,
// manifest validation, routing, error rendering, and what every request adds for operations (the
// metrics' counters, an access-log line). Run by bench/run; by hand:
//   build/bench/bench/micro/berth_micro --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <string>

#include "api/errors.h"
#include "api/router.h"
#include "core/digest.h"
#include "core/manifest.h"
#include "core/reference.h"
#include "ops/access_log.h"
#include "ops/metrics.h"

namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');
const std::string kHex = std::string(32, 'a') + std::string(32, '7');

std::string descriptor_json(std::string_view media_type, int i) {
  std::string hex = std::to_string(1000000 + i);
  hex += std::string(64 - hex.size(), 'b');
  return "{\"mediaType\":\"" + std::string(media_type) + "\",\"digest\":\"sha256:" + hex +
         "\",\"size\":" + std::to_string(1000 + i) + "}";
}

// An OCI image manifest with `layers` layers and an annotation, as clients push them.
std::string image_manifest(int layers) {
  std::string m = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":" +
                  descriptor_json("application/vnd.oci.image.config.v1+json", 0) + ",\"layers\":[";
  for (int i = 0; i < layers; ++i) {
    if (i > 0) m += ',';
    m += descriptor_json("application/vnd.oci.image.layer.v1.tar+gzip", i + 1);
  }
  m += "],\"annotations\":{\"org.opencontainers.image.created\":\"2024-01-01T00:00:00Z\"}}";
  return m;
}

void BM_digest_parse(benchmark::State& state) {
  for (auto _ : state) {
    auto d = berth::digest::parse(kDigest);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_digest_parse);

void BM_digest_parse_invalid(benchmark::State& state) {
  const std::string bad = "sha256:" + std::string(63, 'a') + "G";
  for (auto _ : state) {
    auto d = berth::digest::parse(bad);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_digest_parse_invalid);

void BM_valid_name(benchmark::State& state) {
  const std::string name = "library/team-a/my_app.service";
  for (auto _ : state) benchmark::DoNotOptimize(berth::valid_name(name));
}
BENCHMARK(BM_valid_name);

void BM_valid_tag(benchmark::State& state) {
  const std::string tag = "v1.2.3-rc.1_linux-amd64";
  for (auto _ : state) benchmark::DoNotOptimize(berth::valid_tag(tag));
}
BENCHMARK(BM_valid_tag);

void BM_parse_manifest(benchmark::State& state) {
  const std::string body = image_manifest(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto m = berth::parse_manifest("application/vnd.oci.image.manifest.v1+json", body);
    if (!m) state.SkipWithError("parse_manifest failed");
    benchmark::DoNotOptimize(m);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_parse_manifest)->Arg(1)->Arg(10)->Arg(100);

void BM_digest_of_manifest(benchmark::State& state) {
  const std::string body = image_manifest(10);
  for (auto _ : state) benchmark::DoNotOptimize(berth::digest_of(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_digest_of_manifest);

void BM_match_route(benchmark::State& state) {
  const std::string paths[] = {
      "/v2/",
      "/v2/library/alpine/manifests/3.20",
      "/v2/team/app/blobs/" + kDigest,
      "/v2/team/app/blobs/uploads/",
      "/v2/team/app/blobs/uploads/0f8fad5b-d9cb-469f-a165-70867728950e",
      "/v2/team/app/tags/list",
  };
  std::size_t i = 0;
  for (auto _ : state) {
    auto r = berth::api::match_route(paths[i++ % std::size(paths)]);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_match_route);

void BM_error_response(benchmark::State& state) {
  const berth::error e{berth::errc::manifest_unknown, "3.20"};
  for (auto _ : state) {
    auto res = berth::api::error_response(e);
    benchmark::DoNotOptimize(res);
  }
}
BENCHMARK(BM_error_response);

constexpr berth::ops::endpoint_labels kEndpoints[] = {{"manifest_get", "GET"}, {"blob_get", "GET"}};
berth::ops::metrics shared_metrics(kEndpoints);

// What registry_api::handle adds to every request for the metrics: two clock reads and the counters
// (threads share one metrics object, as the server's I/O threads do).
void BM_metrics_request(benchmark::State& state) {
  for (auto _ : state) {
    const auto started = std::chrono::steady_clock::now();
    shared_metrics.request(0, 200, std::chrono::steady_clock::now() - started);
  }
}
BENCHMARK(BM_metrics_request)->Threads(1)->Threads(2);

// Formatting one JSON access-log line (writing it is a write(2) on top).
void BM_access_log_json(benchmark::State& state) {
  berth::ops::access_entry e;
  e.time = std::chrono::system_clock::now();
  e.remote_address = "10.0.0.7";
  e.identity = "user:ci";
  e.method = "GET";
  e.route = "manifest_get";
  e.repository = "production/shop";
  e.status = 200;
  e.bytes_out = 1571;
  e.duration = std::chrono::microseconds(412);
  e.user_agent = "containers/5.23.1 (github.com/containers/image)";
  for (auto _ : state) {
    auto line = berth::ops::format_access(e, berth::ops::access_log_format::json);
    benchmark::DoNotOptimize(line);
  }
}
BENCHMARK(BM_access_log_json);

}  // namespace

BENCHMARK_MAIN();
