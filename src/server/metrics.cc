// Metrics (metrics.h). Series are keyed by their rendered label text, so rendering is a walk over
// sorted maps and a series is created on first use.

#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace signet::server {
namespace {

std::string SanitizeName(std::string_view name) {
  std::string out(name);
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) out[i] = '_';
  }
  if (out.empty()) out = "_";
  return out;
}

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendEscapedHelp(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string LabelKey(const Labels& labels) {
  std::string key;
  for (const auto& [name, value] : labels) {
    if (!key.empty()) key += ',';
    key += SanitizeName(name);
    key += "=\"";
    AppendEscapedLabelValue(key, value);
    key += '"';
  }
  return key;
}

// Prometheus floats: integers without a fraction, +Inf/-Inf/NaN spelled as the format wants.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    // The shortest of 15 or 17 significant digits that reads back as the same double.
    std::snprintf(buf, sizeof buf, "%.15g", v);
    if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  return buf;
}

std::string Braced(const std::string& key) { return key.empty() ? "" : "{" + key + "}"; }

std::string WithLe(const std::string& key, const std::string& le) {
  return "{" + key + (key.empty() ? "" : ",") + "le=\"" + le + "\"}";
}

}  // namespace

std::vector<double> DefaultLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Metrics::Family& Metrics::FamilyLocked(std::string_view name, Type type) {
  auto [it, inserted] = families_.try_emplace(SanitizeName(name));
  if (inserted) {
    it->second.type = type;
    if (type == Type::kHistogram) it->second.bounds = DefaultLatencyBuckets();
  }
  return it->second;
}

void Metrics::DeclareCounter(std::string_view name, std::string_view help) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = families_.try_emplace(SanitizeName(name));
  if (inserted) {
    it->second.type = Type::kCounter;
    it->second.help = std::string(help);
  }
}

void Metrics::DeclareGauge(std::string_view name, std::string_view help) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = families_.try_emplace(SanitizeName(name));
  if (inserted) {
    it->second.type = Type::kGauge;
    it->second.help = std::string(help);
  }
}

void Metrics::DeclareHistogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  bounds.erase(std::remove_if(bounds.begin(), bounds.end(),
                              [](double b) { return std::isnan(b) || std::isinf(b); }),
               bounds.end());
  std::lock_guard lock(mu_);
  auto [it, inserted] = families_.try_emplace(SanitizeName(name));
  if (inserted) {
    it->second.type = Type::kHistogram;
    it->second.help = std::string(help);
    it->second.bounds = std::move(bounds);
  }
}

void Metrics::Increment(std::string_view name, const Labels& labels, double amount) {
  if (!(amount >= 0)) return;
  std::string key = LabelKey(labels);
  std::lock_guard lock(mu_);
  Family& family = FamilyLocked(name, Type::kCounter);
  if (family.type != Type::kCounter) return;
  family.values[key] += amount;
}

void Metrics::SetGauge(std::string_view name, const Labels& labels, double value) {
  std::string key = LabelKey(labels);
  std::lock_guard lock(mu_);
  Family& family = FamilyLocked(name, Type::kGauge);
  if (family.type != Type::kGauge) return;
  family.values[key] = value;
}

void Metrics::AddGauge(std::string_view name, const Labels& labels, double delta) {
  std::string key = LabelKey(labels);
  std::lock_guard lock(mu_);
  Family& family = FamilyLocked(name, Type::kGauge);
  if (family.type != Type::kGauge) return;
  family.values[key] += delta;
}

void Metrics::Observe(std::string_view name, const Labels& labels, double value) {
  std::string key = LabelKey(labels);
  std::lock_guard lock(mu_);
  Family& family = FamilyLocked(name, Type::kHistogram);
  if (family.type != Type::kHistogram) return;
  HistogramData& data = family.histograms[key];
  if (data.bucket_counts.empty()) data.bucket_counts.assign(family.bounds.size() + 1, 0);
  size_t bucket = static_cast<size_t>(
      std::lower_bound(family.bounds.begin(), family.bounds.end(), value) - family.bounds.begin());
  ++data.bucket_counts[bucket];
  ++data.count;
  data.sum += value;
}

double Metrics::Value(std::string_view name, const Labels& labels) const {
  std::string key = LabelKey(labels);
  std::lock_guard lock(mu_);
  auto family = families_.find(SanitizeName(name));
  if (family == families_.end()) return 0;
  auto series = family->second.values.find(key);
  return series == family->second.values.end() ? 0 : series->second;
}

std::string Metrics::RenderPrometheus() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " ";
    AppendEscapedHelp(out, family.help);
    out += "\n# TYPE " + name + " ";
    switch (family.type) {
      case Type::kCounter:
        out += "counter\n";
        break;
      case Type::kGauge:
        out += "gauge\n";
        break;
      case Type::kHistogram:
        out += "histogram\n";
        break;
    }
    for (const auto& [key, value] : family.values) {
      out += name + Braced(key) + " " + FormatValue(value) + "\n";
    }
    for (const auto& [key, data] : family.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < family.bounds.size(); ++i) {
        cumulative += data.bucket_counts[i];
        out += name + "_bucket" + WithLe(key, FormatValue(family.bounds[i])) + " " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_bucket" + WithLe(key, "+Inf") + " " + std::to_string(data.count) + "\n";
      out += name + "_sum" + Braced(key) + " " + FormatValue(data.sum) + "\n";
      out += name + "_count" + Braced(key) + " " + std::to_string(data.count) + "\n";
    }
  }
  return out;
}

}  // namespace signet::server
