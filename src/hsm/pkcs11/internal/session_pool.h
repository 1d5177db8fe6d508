// The sessions one Pkcs11KeyStore keeps open on its token, and the lock that lets recovery change
// them while no signature is in flight.
//
// A PKCS#11 session must be used by one thread at a time (the standard leaves concurrent use to
// the application; SoftHSM 2.6.1 segfaults when two threads share one, pkcs11-softhsm.md §4). So a
// session is either idle in the SessionPool or leased to exactly one thread. Sessions are opened on
// demand up to a limit and reused, so the hot path never calls C_OpenSession.
//
// Threads: RecoveryGate is a readers-writer lock: every operation holds it shared while it uses a
// session; recovery (re-login, module re-initialisation) and opening sessions hold it exclusively,
// so they never run while a leased session is in use. SessionPool's methods are thread-safe (their
// bookkeeping is guarded by mu_); the ones marked "exclusive gate" must only be called with the
// gate held exclusively, because they touch sessions other threads could otherwise be using.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/module.h"

namespace signet::hsm::internal {

// A readers-writer lock that prefers writers (glibc PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP):
// with many threads signing, the plain std::shared_mutex (reader-preferring on glibc) can keep a
// recovering thread waiting forever. Not recursive: a thread holding it shared must not lock it
// again. Meets the Lockable and SharedLockable requirements, so std::unique_lock and
// std::shared_lock work with it.
class RecoveryGate {
 public:
  RecoveryGate();
  ~RecoveryGate();
  // POSIX forbids copying or moving a pthread_rwlock_t that may be in use.
  RecoveryGate(const RecoveryGate&) = delete;
  RecoveryGate& operator=(const RecoveryGate&) = delete;

  void lock();
  void unlock();
  void lock_shared();
  void unlock_shared();

 private:
  pthread_rwlock_t lock_;
};

class SessionPool {
 public:
  explicit SessionPool(size_t max_sessions) : max_sessions_(max_sessions) {}
  // The pool owns every session it holds (idle or leased) and closes the idle ones when it goes;
  // a copy would close them twice.
  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // An idle session, if there is one; the caller must hold the gate shared and give the session
  // back with Return, Forget or Discard.
  std::optional<Session> TryTake();
  // Puts a leased session back for reuse.
  void Return(Session session);
  // Drops a leased session that is known dead without closing it (see Session::Release).
  void Forget(Session session);
  // Closes a leased session that is alive but in an unknown state (e.g. an operation left active).
  void Discard(Session session);

  // True if no session is idle and fewer than the maximum are open, i.e. a thread that needs a
  // session should open one rather than wait.
  bool ShouldOpen() const;
  // True if fewer than the maximum number of sessions are open.
  bool BelowLimit() const;
  // Waits at most `timeout` for an idle session or room for a new one.
  void WaitForSession(std::chrono::milliseconds timeout);

  // Exclusive gate. Whether an open session (idle or leased) has this handle number. A new session
  // that gets the number of one we still hold proves the module was re-initialised behind our back
  // (handles restart at 1) and every session we hold is stale.
  bool Holds(CK_SESSION_HANDLE handle) const;
  // Exclusive gate. Adds a freshly opened session as idle.
  void Add(Session session);
  // Exclusive gate. Forgets every session without closing it (they are stale).
  void ForgetAll();
  // Exclusive gate. Closes every session.
  void CloseAll();
  // Exclusive gate. Forgets the sessions for which `is_dead(handle)` is true and keeps the rest.
  template <typename Predicate>
  void ForgetDead(Predicate is_dead);
  // Exclusive gate. Any idle session, without taking it out of the pool.
  std::optional<CK_SESSION_HANDLE> AnyIdle() const;

 private:
  void RemoveOpenLocked(CK_SESSION_HANDLE handle);  // mu_ held

  const size_t max_sessions_;

  mutable std::mutex mu_;
  std::condition_variable changed_;      // Signalled when idle_ or open_ shrinks/grows.
  std::vector<Session> idle_;            // Guarded by mu_.
  std::vector<CK_SESSION_HANDLE> open_;  // Guarded by mu_. Idle and leased handles.
};

template <typename Predicate>
void SessionPool::ForgetDead(Predicate is_dead) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < idle_.size();) {
    if (is_dead(idle_[i].get())) {
      RemoveOpenLocked(idle_[i].Release());
      idle_[i] = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++i;
    }
  }
}

// One session lent to one thread, with the gate held shared for as long as the lease lives. On
// destruction the session goes back to the pool (or is forgotten or closed, as set) and the gate is
// released.
class Lease {
 public:
  enum class Disposition { kReturn, kForget, kDiscard };

  // `gate` must already be held shared by this thread; the Lease releases it.
  Lease(RecoveryGate* gate, SessionPool* pool, Session session, uint64_t epoch)
      : gate_(gate), pool_(pool), session_(std::move(session)), epoch_(epoch) {}
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&&) = delete;
  // A lease hands a session to exactly one thread; a copy would share it.
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  CK_SESSION_HANDLE session() const { return session_.get(); }
  // The key store's recovery epoch when the lease was taken; recovery compares it to tell whether
  // someone else already repaired what this lease saw failing.
  uint64_t epoch() const { return epoch_; }
  void set_disposition(Disposition disposition) { disposition_ = disposition; }

 private:
  RecoveryGate* gate_;
  SessionPool* pool_;
  Session session_;
  uint64_t epoch_;
  Disposition disposition_ = Disposition::kReturn;
};

}  // namespace signet::hsm::internal
