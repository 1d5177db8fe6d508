// Unit tests for Metrics (metrics.h): values and the Prometheus text format.

#include "server/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace signet::server {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, CountsPerLabelSet) {
  Metrics metrics;
  metrics.DeclareCounter("requests_total", "Requests.");
  metrics.Increment("requests_total", {{"path", "/a"}});
  metrics.Increment("requests_total", {{"path", "/a"}}, 2);
  metrics.Increment("requests_total", {{"path", "/b"}});
  EXPECT_EQ(metrics.Value("requests_total", {{"path", "/a"}}), 3);
  EXPECT_EQ(metrics.Value("requests_total", {{"path", "/b"}}), 1);
  EXPECT_EQ(metrics.Value("requests_total", {{"path", "/c"}}), 0);
}

TEST(MetricsTest, RendersCountersWithHelpAndType) {
  Metrics metrics;
  metrics.DeclareCounter("requests_total", "Requests answered.");
  metrics.Increment("requests_total", {{"method", "GET"}, {"status", "200"}}, 5);
  std::string text = metrics.RenderPrometheus();
  EXPECT_THAT(text, HasSubstr("# HELP requests_total Requests answered.\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("requests_total{method=\"GET\",status=\"200\"} 5\n"));
}

TEST(MetricsTest, EscapesLabelValues) {
  Metrics metrics;
  metrics.Increment("x_total", {{"v", "a\"b\\c\nd"}});
  EXPECT_THAT(metrics.RenderPrometheus(), HasSubstr("x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

TEST(MetricsTest, SanitisesNames) {
  Metrics metrics;
  metrics.Increment("bad-name.total", {{"bad label", "x"}});
  EXPECT_THAT(metrics.RenderPrometheus(), HasSubstr("bad_name_total{bad_label=\"x\"} 1\n"));
}

TEST(MetricsTest, RendersCumulativeHistogramBuckets) {
  Metrics metrics;
  metrics.DeclareHistogram("latency_seconds", "Latency.", {0.1, 1});
  metrics.Observe("latency_seconds", {{"path", "/a"}}, 0.05);
  metrics.Observe("latency_seconds", {{"path", "/a"}}, 0.5);
  metrics.Observe("latency_seconds", {{"path", "/a"}}, 5);
  std::string text = metrics.RenderPrometheus();
  EXPECT_THAT(text, HasSubstr("# TYPE latency_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{path=\"/a\",le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_sum{path=\"/a\"} 5.55\n"));
  EXPECT_THAT(text, HasSubstr("latency_seconds_count{path=\"/a\"} 3\n"));
}

TEST(MetricsTest, GaugesGoUpAndDown) {
  Metrics metrics;
  metrics.DeclareGauge("open", "Open things.");
  metrics.AddGauge("open", {}, 3);
  metrics.AddGauge("open", {}, -1);
  EXPECT_EQ(metrics.Value("open"), 2);
  metrics.SetGauge("open", {}, 7);
  EXPECT_THAT(metrics.RenderPrometheus(), HasSubstr("# TYPE open gauge\nopen 7\n"));
}

TEST(MetricsTest, IgnoresCallsOfTheWrongKindAndNegativeIncrements) {
  Metrics metrics;
  metrics.DeclareCounter("c_total", "C.");
  metrics.Observe("c_total", {}, 1);
  metrics.SetGauge("c_total", {}, 9);
  metrics.Increment("c_total", {}, -4);
  EXPECT_EQ(metrics.Value("c_total"), 0);
  EXPECT_THAT(metrics.RenderPrometheus(), ::testing::Not(HasSubstr("c_total_bucket")));
}

TEST(MetricsTest, IsThreadSafe) {
  Metrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.Increment("n_total");
        metrics.Observe("d_seconds", {}, 0.01);
        if (i % 100 == 0) (void)metrics.RenderPrometheus();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(metrics.Value("n_total"), 4000);
}

}  // namespace
}  // namespace signet::server
