#include "service/rejection_throttle.h"

#include <arpa/inet.h>

#include <cstring>

namespace signet::service {

std::string RejectionThrottle::AddressOf(std::string_view client_address) {
  if (client_address.starts_with('[')) {
    const size_t close = client_address.find(']');
    if (close == std::string_view::npos) return std::string(client_address);
    const std::string inside(client_address.substr(1, close - 1));
    unsigned char bytes[16];
    if (inet_pton(AF_INET6, inside.c_str(), bytes) != 1) return std::string(client_address);
    // An IPv4 client of a dual-stack listener (::ffff:a.b.c.d): its own IPv4 address, or every
    // IPv4 client would share the one bucket of ::/64.
    constexpr unsigned char kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(bytes, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0) {
      char v4[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, bytes + 12, v4, sizeof v4) != nullptr) return std::string(v4);
    }
    std::memset(bytes + 8, 0, 8);  // the interface identifier: one host may use them all
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, bytes, text, sizeof text) == nullptr) {
      return std::string(client_address);
    }
    return "[" + std::string(text) + "]/64";
  }
  const size_t colon = client_address.rfind(':');
  // "v4:port"; text with more than one colon (a bare IPv6 address) has no port to drop.
  if (colon == std::string_view::npos || client_address.find(':') != colon) {
    return std::string(client_address);
  }
  return std::string(client_address.substr(0, colon));
}

void RejectionThrottle::Hold(Held& held, std::string_view reason, TimePoint now) {
  if (held.count++ == 0) held.first = now;
  held.last = now;
  ++held.reasons[std::string(reason)];
}

void RejectionThrottle::Merge(Held& into, Held from) {
  if (into.count == 0) {
    into = std::move(from);
    return;
  }
  into.count += from.count;
  if (from.first < into.first) into.first = from.first;
  if (from.last > into.last) into.last = from.last;
  for (const auto& [reason, n] : from.reasons) into.reasons[reason] += n;
}

RejectionThrottle::Decision RejectionThrottle::Note(std::string_view kind, std::string_view reason,
                                                    std::string_view client_address,
                                                    TimePoint now) {
  Decision decision;
  if (per_minute_ < 1) return decision;
  std::string address = AddressOf(client_address);
  std::lock_guard lock(mu_);
  if (global_recorded_ == 0 || now - global_start_ >= kWindow) {
    global_start_ = now;
    global_recorded_ = 0;
  }
  auto key = std::make_pair(std::string(kind), std::move(address));
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
    it = buckets_.emplace(key, std::move(bucket)).first;
  }
  Bucket& b = it->second;
  if (b.recorded < per_minute_ && global_recorded_ < global_per_minute_) {
    ++b.recorded;
    ++global_recorded_;
    return decision;
  }
  decision.record = false;
  if (b.recorded < per_minute_) {
    // Within the address's budget but over the shared one: held in the shared bucket, so that
    // many addresses cannot each leave an entry of their own.
    auto shared = buckets_.find({key.first, "*"});
    if (shared == buckets_.end()) {
      Bucket bucket;
      bucket.start = now;
      bucket.held.kind = key.first;
      bucket.held.address = "*";
      shared =
          buckets_.emplace(std::make_pair(key.first, std::string("*")), std::move(bucket)).first;
    }
    Hold(shared->second.held, reason, now);
    return decision;
  }
  Hold(b.held, reason, now);
  return decision;
}

void RejectionThrottle::Requeue(std::vector<Held> held) {
  std::lock_guard lock(mu_);
  for (Held& h : held) {
    std::pair<std::string, std::string> key{h.kind, h.address};
    if (!requeued_.contains(key) && requeued_.size() >= kMaxAddresses) {
      key.second = "*";
      h.address = "*";
    }
    Merge(requeued_[key], std::move(h));
  }
}

std::vector<RejectionThrottle::Held> RejectionThrottle::Flush(TimePoint now) {
  std::lock_guard lock(mu_);
  std::vector<Held> out;
  for (auto& [key, h] : requeued_) out.push_back(std::move(h));
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
