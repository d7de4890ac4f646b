#include "ops/metrics.h"

#include <gtest/gtest.h>

namespace berth::ops {
namespace {

using namespace std::chrono_literals;

constexpr endpoint_labels kLabels[] = {{"manifest_get", "GET"}, {"blob_get", "GET"}};

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(Metrics, CountsRequestsByEndpointAndStatus) {
  metrics m(kLabels);
  m.request(0, 200, 1ms);
  m.request(0, 200, 1ms);
  m.request(0, 404, 1ms);
  m.request(2, 404, 1ms);  // matched no endpoint
  const auto text = m.render();
  EXPECT_TRUE(has_line(text, R"(berth_http_requests_total{route="manifest_get",method="GET",code="200"} 2)")) << text;
  EXPECT_TRUE(has_line(text, R"(berth_http_requests_total{route="manifest_get",method="GET",code="404"} 1)"));
  EXPECT_TRUE(has_line(text, R"(berth_http_requests_total{route="none",method="other",code="404"} 1)"));
  EXPECT_EQ(text.find("route=\"blob_get\""), std::string::npos) << "series with no requests are left out";
}

TEST(Metrics, HistogramBucketsAreCumulative) {
  metrics m(kLabels);
  m.request(1, 200, 3ms);     // le 0.005
  m.request(1, 200, 200ms);   // le 0.25
  m.request(1, 200, 20s);     // +Inf only
  const auto text = m.render();
  const std::string series = R"(berth_http_request_duration_seconds_bucket{route="blob_get",method="GET",le=)";
  EXPECT_TRUE(has_line(text, series + R"("0.005"} 1)")) << text;
  EXPECT_TRUE(has_line(text, series + R"("0.1"} 1)"));
  EXPECT_TRUE(has_line(text, series + R"("0.25"} 2)"));
  EXPECT_TRUE(has_line(text, series + R"("10"} 2)"));
  EXPECT_TRUE(has_line(text, series + R"("+Inf"} 3)"));
  EXPECT_TRUE(has_line(text, R"(berth_http_request_duration_seconds_count{route="blob_get",method="GET"} 3)"));
  EXPECT_TRUE(has_line(text, R"(berth_http_request_duration_seconds_sum{route="blob_get",method="GET"} 20.203)"));
}

TEST(Metrics, CountersGaugesAndProcess) {
  metrics m(kLabels);
  m.blob_bytes_received(10);
  m.blob_bytes_sent(7);
  m.upload(true);
  m.upload(true);
  m.upload(false);
  m.token_issued();
  m.auth_failed(auth_failure::denied);
  m.set_connections_source([] { return std::size_t{5}; });
  const auto text = m.render();
  EXPECT_TRUE(has_line(text, "berth_blob_bytes_received_total 10")) << text;
  EXPECT_TRUE(has_line(text, "berth_blob_bytes_sent_total 7"));
  EXPECT_TRUE(has_line(text, "berth_uploads_in_flight 1"));
  EXPECT_TRUE(has_line(text, "berth_connections_open 5"));
  EXPECT_TRUE(has_line(text, "berth_tokens_issued_total 1"));
  EXPECT_TRUE(has_line(text, R"(berth_auth_failures_total{reason="denied"} 1)"));
  EXPECT_TRUE(has_line(text, R"(berth_auth_failures_total{reason="bad_token"} 0)"));
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds ",
                           "process_start_time_seconds "}) {
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name;
  }
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos);
}

TEST(Metrics, StorageGcAndRetention) {
  metrics m(kLabels);
  m.gc_ran(50ms, 1000);
  m.gc_ran(2min, 24);
  m.gc_failed();
  m.retention_ran(3, 2);
  m.retention_ran(1, 0);
  m.retention_failed();
  EXPECT_EQ(m.render().find("berth_gc_last_success_timestamp_seconds"), std::string::npos);
  const auto text = m.render({{{"dev", 1234, 2}, {"prod", 0, 0}}, 1'700'000'000'250});
  EXPECT_TRUE(has_line(text, "berth_gc_last_success_timestamp_seconds 1700000000.250")) << text;
  EXPECT_TRUE(has_line(text, R"(berth_storage_bytes{namespace="dev"} 1234)")) << text;
  EXPECT_TRUE(has_line(text, R"(berth_storage_bytes{namespace="prod"} 0)"));
  EXPECT_TRUE(has_line(text, R"(berth_repositories{namespace="dev"} 2)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_runs_total{outcome="success"} 2)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_runs_total{outcome="failure"} 1)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_duration_seconds_bucket{le="0.1"} 1)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_duration_seconds_bucket{le="60"} 1)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_duration_seconds_bucket{le="300"} 2)"));
  EXPECT_TRUE(has_line(text, R"(berth_gc_duration_seconds_bucket{le="+Inf"} 2)"));
  EXPECT_TRUE(has_line(text, "berth_gc_duration_seconds_sum 120.05"));
  EXPECT_TRUE(has_line(text, "berth_gc_duration_seconds_count 2"));
  EXPECT_TRUE(has_line(text, "berth_gc_freed_bytes_total 1024"));
  EXPECT_TRUE(has_line(text, R"(berth_retention_runs_total{outcome="success"} 2)"));
  EXPECT_TRUE(has_line(text, R"(berth_retention_runs_total{outcome="failure"} 1)"));
  EXPECT_TRUE(has_line(text, "berth_retention_deleted_tags_total 4"));
  EXPECT_TRUE(has_line(text, "berth_retention_deleted_manifests_total 2"));
}

}  // namespace
}  // namespace berth::ops
