#include "common/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace signet::fs {
namespace {

Error ErrnoError(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == EACCES || err == EPERM) return PermissionDenied(msg);
  if (err == ENOENT || err == ENOTDIR) return NotFound(msg);
  if (err == ENOSPC || err == EDQUOT) return ResourceExhausted(msg);
  return Unavailable(msg);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;  // Owns the descriptor; a copy would close it twice.
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

Result<Bytes> ReadFd(int fd, const std::string& path, size_t max_size) {
  Bytes out;
  // Room for all of a small file (secrets are at most 4 KiB) before the first read, so growing the
  // vector never leaves a copy of what was read in freed memory.
  out.reserve(std::min<size_t>(max_size, 64 * 1024) + 1);
  uint8_t buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      SecureWipe(out.data(), out.size());
      return ErrnoError("cannot read", path, err);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_size) {
      SecureWipe(out.data(), out.size());
      SecureWipe(buf, sizeof buf);
      return InvalidArgument(path + " is larger than the limit of " + std::to_string(max_size) +
                             " bytes");
    }
    out.insert(out.end(), buf, buf + n);
  }
  SecureWipe(buf, sizeof buf);
  return out;
}

}  // namespace

Result<Bytes> ReadFile(const std::string& path, size_t max_size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  if (S_ISDIR(st.st_mode)) return InvalidArgument(path + " is a folder, expected a file");
  return ReadFd(fd.get(), path, max_size);
}

// Files that must be regular are opened with O_NONBLOCK (no effect on a regular file's reads): a
// FIFO put in their place would otherwise keep open() waiting for a writer forever, where the
// S_ISREG check after it refuses it at once.
Result<Bytes> ReadProtectedFile(const std::string& path, size_t max_size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) return ErrnoError("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return PermissionDenied(path + " is writable by other users, who could change what it makes " +
                            "signet trust or load; run: chmod go-w " + path);
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return PermissionDenied(path + " belongs to another user (uid " + std::to_string(st.st_uid) +
                            "), who could change what it makes signet trust or load; it must "
                            "belong to this user or root");
  }
  return ReadFd(fd.get(), path, max_size);
}

Result<SecretBytes> ReadSecretFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));  // as ReadProtectedFile
  if (fd.get() < 0) return ErrnoError("cannot open secret file", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    return PermissionDenied("secret file " + path +
                            " is accessible by other users; run: chmod 600 " + path);
  }
  auto data = ReadFd(fd.get(), path, 4096);
  if (!data.ok()) return std::move(data).error();
  Bytes& b = *data;
  size_t len = b.size();
  if (len > 0 && b[len - 1] == '\n') {
    --len;
    if (len > 0 && b[len - 1] == '\r') --len;  // CRLF; a lone trailing CR is part of the secret
  }
  SecretBytes secret(ByteView(b.data(), len));
  SecureWipe(b.data(), b.size());
  if (secret.empty()) return InvalidArgument("secret file " + path + " is empty");
  return secret;
}

Status WriteFileAtomic(const std::string& path, ByteView data, mode_t mode) {
  std::filesystem::path target(path);
  std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  std::string tmp = (dir / ("." + target.filename().string() + ".tmpXXXXXX")).string();
  int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (raw < 0) return ErrnoError("cannot create a file in", dir.string(), errno);
  Fd fd(raw);
  auto fail = [&](const char* what) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(what, path, err);
  };
  if (::fchmod(fd.get(), mode) != 0) return fail("cannot set permissions on");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("cannot sync");
  if (::close(fd.release()) != 0) return fail("cannot close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename into place");
  Status synced = SyncFolder(dir.string());
  if (!synced.ok()) {
    // The new content is in place (nothing to undo), but a crash could still bring back the old.
    return Error(synced.error().code(), path + " was written, but it may not survive a crash: " +
                                            synced.error().message());
  }
  return OkStatus();
}

Status SyncFolder(const std::string& folder) {
  Fd fd(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open the folder to sync it:", folder, errno);
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP) {
    return ErrnoError("cannot sync the folder", folder, errno);
  }
  return OkStatus();
}

Status EnsureDirectory(const std::string& path, mode_t mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return FailedPrecondition(path + " exists and is not a folder");
    if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) {
      return PermissionDenied("no permission to use folder " + path + ": " + std::strerror(errno));
    }
    return OkStatus();
  }
  if (errno != ENOENT) return ErrnoError("cannot use folder", path, errno);
  std::filesystem::path p(path);
  if (p.has_parent_path() && !p.parent_path().empty()) {
    SIGNET_TRY(EnsureDirectory(p.parent_path().string(), 0755));
  }
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno != EEXIST) return ErrnoError("cannot create folder", path, errno);
    // Made meanwhile by someone else: it must still be a folder.
    struct stat made {};
    if (::stat(path.c_str(), &made) != 0) return ErrnoError("cannot use folder", path, errno);
    if (!S_ISDIR(made.st_mode)) return FailedPrecondition(path + " exists and is not a folder");
    return OkStatus();
  }
  const std::string parent =
      p.has_parent_path() && !p.parent_path().empty() ? p.parent_path().string() : ".";
  Status synced = SyncFolder(parent);
  // A parent this process may write to but not open (mode 0311) holds the new folder all the
  // same; only a failed sync itself is an error.
  if (!synced.ok() && synced.error().code() != ErrorCode::kPermissionDenied) return synced;
  return OkStatus();
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<ExclusiveLock> ExclusiveLock::Acquire(const std::string& path, const std::string& what) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
  if (fd.get() < 0) return ErrnoError("cannot open the lock file", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) return ErrnoError("cannot lock", path, err);
    char holder[32] = {};
    const ssize_t n = ::pread(fd.get(), holder, sizeof holder - 1, 0);
    std::string pid;
    for (ssize_t i = 0; i < n && holder[i] >= '0' && holder[i] <= '9'; ++i) pid += holder[i];
    return FailedPrecondition("another process" + (pid.empty() ? "" : " (pid " + pid + ")") +
                              " is using " + what + " (it holds the lock " + path + ")");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd.get(), 0) != 0 ||
      ::pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return ErrnoError("cannot write to the lock file", path, errno);
  }
  return ExclusiveLock(fd.release());
}

ExclusiveLock::~ExclusiveLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace signet::fs
