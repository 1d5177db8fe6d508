#include "hsm/pkcs11/internal/session_pool.h"

#include <algorithm>
#include <cstdlib>

namespace signet::hsm::internal {

RecoveryGate::RecoveryGate() {
  pthread_rwlockattr_t attributes;
  pthread_rwlockattr_init(&attributes);
  pthread_rwlockattr_setkind_np(&attributes, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  // Fails only for lack of memory or resources; without the lock nothing here is safe.
  if (pthread_rwlock_init(&lock_, &attributes) != 0) std::abort();
  pthread_rwlockattr_destroy(&attributes);
}

RecoveryGate::~RecoveryGate() { pthread_rwlock_destroy(&lock_); }

// pthread_rwlock_* fail only on misuse (deadlock, unlocking an unowned lock): a broken invariant.
void RecoveryGate::lock() {
  if (pthread_rwlock_wrlock(&lock_) != 0) std::abort();
}
void RecoveryGate::unlock() {
  if (pthread_rwlock_unlock(&lock_) != 0) std::abort();
}
void RecoveryGate::lock_shared() {
  if (pthread_rwlock_rdlock(&lock_) != 0) std::abort();
}
void RecoveryGate::unlock_shared() {
  if (pthread_rwlock_unlock(&lock_) != 0) std::abort();
}

std::optional<Session> SessionPool::TryTake() {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.empty()) return std::nullopt;
  Session session = std::move(idle_.back());
  idle_.pop_back();
  return session;
}

void SessionPool::Return(Session session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(session));
  }
  changed_.notify_one();
}

void SessionPool::Forget(Session session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    RemoveOpenLocked(session.Release());
  }
  changed_.notify_all();
}

void SessionPool::Discard(Session session) {
  CK_SESSION_HANDLE handle = session.get();
  session.Close();
  {
    std::lock_guard<std::mutex> lock(mu_);
    RemoveOpenLocked(handle);
  }
  changed_.notify_all();
}

bool SessionPool::ShouldOpen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.empty() && open_.size() < max_sessions_;
}

bool SessionPool::BelowLimit() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.size() < max_sessions_;
}

void SessionPool::WaitForSession(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, timeout,
                    [this] { return !idle_.empty() || open_.size() < max_sessions_; });
}

bool SessionPool::Holds(CK_SESSION_HANDLE handle) const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::find(open_.begin(), open_.end(), handle) != open_.end();
}

void SessionPool::Add(Session session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_.push_back(session.get());
    idle_.push_back(std::move(session));
  }
  changed_.notify_one();
}

void SessionPool::ForgetAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Session& session : idle_) session.Release();
    idle_.clear();
    open_.clear();
  }
  changed_.notify_all();
}

void SessionPool::CloseAll() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.clear();  // Each Session closes itself.
    open_.clear();
  }
  changed_.notify_all();
}

std::optional<CK_SESSION_HANDLE> SessionPool::AnyIdle() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.empty()) return std::nullopt;
  return idle_.back().get();
}

void SessionPool::RemoveOpenLocked(CK_SESSION_HANDLE handle) {
  auto it = std::find(open_.begin(), open_.end(), handle);
  if (it != open_.end()) {
    *it = open_.back();
    open_.pop_back();
  }
}

Lease::Lease(Lease&& other) noexcept
    : gate_(std::exchange(other.gate_, nullptr)),
      pool_(other.pool_),
      session_(std::move(other.session_)),
      epoch_(other.epoch_),
      disposition_(other.disposition_) {}

Lease::~Lease() {
  if (gate_ == nullptr) return;  // Moved from.
  switch (disposition_) {
    case Disposition::kReturn:
      pool_->Return(std::move(session_));
      break;
    case Disposition::kForget:
      pool_->Forget(std::move(session_));
      break;
    case Disposition::kDiscard:
      pool_->Discard(std::move(session_));
      break;
  }
  gate_->unlock_shared();
}

}  // namespace signet::hsm::internal
