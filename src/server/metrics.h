// Metrics: a small registry of counters, gauges and histograms with labels, rendered in the
// Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// One Metrics object is built by the composition root and handed by reference to whoever records
// into it (the server records its own request counts and latencies). There is no global registry.
//
// Threads: every method is thread-safe; one mutex guards all series, held only for a map lookup
// and an addition, or while rendering. Names and label names come from code, not from clients:
// callers must bound label values (the server labels by route pattern, never by raw path).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace signet::server {

// Label pairs, e.g. {{"method", "GET"}, {"path", "/healthz"}}. Order is kept as given; use the same
// order for the same series.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Default histogram bucket upper bounds for request durations in seconds.
std::vector<double> DefaultLatencyBuckets();

class Metrics {
 public:
  Metrics() = default;
  // A registry is shared by reference; copying it would split the series silently.
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Declare a metric family with its HELP text (and, for histograms, its bucket upper bounds,
  // sorted ascending; +Inf is implicit). Declaring again keeps the first declaration. Using a
  // family that was never declared declares it with empty help (and DefaultLatencyBuckets()).
  // Characters outside [a-zA-Z0-9_:] in names and label names are replaced by '_'. A call whose
  // kind (counter, gauge, histogram) differs from the family's declared kind is ignored.
  void DeclareCounter(std::string_view name, std::string_view help);
  void DeclareGauge(std::string_view name, std::string_view help);
  void DeclareHistogram(std::string_view name, std::string_view help, std::vector<double> bounds);

  // Adds `amount` (>= 0; negative amounts are ignored) to the counter series `name{labels}`.
  void Increment(std::string_view name, const Labels& labels = {}, double amount = 1);
  // Sets / adds to the gauge series `name{labels}`.
  void SetGauge(std::string_view name, const Labels& labels, double value);
  void AddGauge(std::string_view name, const Labels& labels, double delta);
  // Records one observation in the histogram series `name{labels}`.
  void Observe(std::string_view name, const Labels& labels, double value);

  // The current value of a counter or gauge series (0 if absent); for tests and health checks.
  double Value(std::string_view name, const Labels& labels = {}) const;

  // All families in name order, each with "# HELP" and "# TYPE" lines, then its series; label
  // values escaped as the format requires (\\, \", \n). Content type: kPrometheusContentType.
  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct HistogramData {
    std::vector<uint64_t> bucket_counts;  // one per bound, not cumulative; last is +Inf
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<double> bounds;  // histograms only
    // Keyed by the rendered label text without braces, e.g. method="GET",path="/healthz".
    std::map<std::string, double> values;             // counters and gauges
    std::map<std::string, HistogramData> histograms;  // histograms
  };

  Family& FamilyLocked(std::string_view name, Type type);  // requires mu_

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;  // guarded by mu_
};

inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace signet::server
