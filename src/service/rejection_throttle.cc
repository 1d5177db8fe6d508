#include "service/rejection_throttle.h"

namespace signet::service {

std::string RejectionThrottle::AddressOf(std::string_view client_address) {
  const size_t colon = client_address.rfind(':');
  if (colon == std::string_view::npos) return std::string(client_address);
  // "[v6]:port" and "v4:port"; a bare IPv6 address without brackets has no port to drop.
  if (client_address.front() != '[' && client_address.find(':') != colon) {
    return std::string(client_address);
  }
  return std::string(client_address.substr(0, colon));
}

RejectionThrottle::Decision RejectionThrottle::Note(std::string_view kind,
                                                    std::string_view client_address,
                                                    TimePoint now) {
  Decision decision;
  if (per_minute_ < 1) return decision;
  std::string address = AddressOf(client_address);
  std::lock_guard lock(mu_);
  auto key = std::make_pair(std::string(kind), address);
  auto it = buckets_.find(key);
  if (it == buckets_.end() && buckets_.size() >= kMaxAddresses) {
    key.second = "*";
    it = buckets_.find(key);
  }
  if (it != buckets_.end() && now - it->second.start >= kWindow) {
    if (it->second.held.count > 0) decision.released.push_back(std::move(it->second.held));
    buckets_.erase(it);
    it = buckets_.end();
  }
  if (it == buckets_.end()) {
    Bucket bucket;
    bucket.start = now;
    bucket.held.kind = key.first;
    bucket.held.address = key.second;
    it = buckets_.emplace(std::move(key), std::move(bucket)).first;
  }
  Bucket& b = it->second;
  if (b.recorded < per_minute_) {
    ++b.recorded;
    return decision;
  }
  decision.record = false;
  if (b.held.count++ == 0) b.held.first = now;
  b.held.last = now;
  return decision;
}

void RejectionThrottle::Requeue(std::vector<Held> held) {
  std::lock_guard lock(mu_);
  for (Held& h : held) {
    if (requeued_.size() < kMaxAddresses) {
      requeued_.push_back(std::move(h));
    } else {
      requeued_.back().count += h.count;
    }
  }
}

std::vector<RejectionThrottle::Held> RejectionThrottle::Flush(TimePoint now) {
  std::lock_guard lock(mu_);
  std::vector<Held> out = std::move(requeued_);
  requeued_.clear();
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (now - it->second.start < kWindow) {
      ++it;
      continue;
    }
    if (it->second.held.count > 0) out.push_back(std::move(it->second.held));
    it = buckets_.erase(it);
  }
  return out;
}

}  // namespace signet::service
