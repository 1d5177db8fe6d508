// Filesystem helpers with the guarantees signet needs: bounded reads, atomic owner-only writes
// (write to a temporary file, fsync, rename, fsync the folder) so a crash never leaves a
// half-written file, and secret files read straight into zeroizing buffers. Errors name the path
// and what to do. Thread-safe as far as the filesystem is.
#pragma once

#include <string>
#include <sys/types.h>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::fs {

// Reads a whole file of at most `max_size` bytes.
Result<Bytes> ReadFile(const std::string& path, size_t max_size = 16 * 1024 * 1024);

// Reads a file that decides what this process trusts or runs (the configuration names the PKCS#11
// module to load): refuses one that users other than its owner could change, that is one writable
// by group or others, or owned by someone other than this process's user or root.
Result<Bytes> ReadProtectedFile(const std::string& path, size_t max_size);

// Reads a secret (PIN, password) from a file: at most 4 KiB, one trailing newline (LF or CRLF)
// removed, empty files refused. Refuses a file other users can read or write (mode & 077), the
// way ssh refuses a loose private key.
Result<SecretBytes> ReadSecretFile(const std::string& path);

// Atomically creates or replaces `path` with `data` and permission `mode` (default owner-only).
Status WriteFileAtomic(const std::string& path, ByteView data, mode_t mode = 0600);

// Creates `path` (and missing parents) with `mode` if absent, each new folder made durable in its
// parent; if present, checks it is a folder this process can write to.
Status EnsureDirectory(const std::string& path, mode_t mode = 0700);

// Makes the entries of `folder` (a rename or a new file in it) durable: fsync of the folder. A
// file system that cannot sync folders (EINVAL, ENOTSUP) counts as done.
Status SyncFolder(const std::string& folder);

bool Exists(const std::string& path);

// An exclusive advisory lock (flock) on the file `path`, created owner-only if absent, held until
// the object is destroyed or the process ends (however it ends: the kernel releases it). The
// holder's pid is written into the file. FailedPrecondition if another process holds the lock;
// its message names `what` is locked and the holder's pid.
class ExclusiveLock {
 public:
  static Result<ExclusiveLock> Acquire(const std::string& path, const std::string& what);
  ExclusiveLock(ExclusiveLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ExclusiveLock& operator=(ExclusiveLock&&) = delete;
  ExclusiveLock(const ExclusiveLock&) = delete;
  ExclusiveLock& operator=(const ExclusiveLock&) = delete;
  ~ExclusiveLock();

 private:
  explicit ExclusiveLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace signet::fs
