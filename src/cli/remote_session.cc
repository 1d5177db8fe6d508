#include "cli/remote_session.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace signet::cli {
namespace {

using nlohmann::json;

// Version 2 pins the CA certificates (version 1 only named their file).
constexpr int kFormatVersion = 2;
constexpr int kFirstFormatVersion = 1;  // read, never written (ParseSession)
// A session file holds a URL, three paths, a token and the pinned CA certificates (JSON escapes
// each newline of their PEM as two bytes); anything larger is not ours.
constexpr size_t kMaxSessionFileBytes = 2 * kMaxPinnedCaBytes + 64 * 1024;

constexpr const char kNotLoggedIn[] = "not logged in; run 'signet login --server URL'";

// Owns a file descriptor; closing twice would close someone else's descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(int err) { return std::strerror(err); }

// Overwrites a string that held a token before its memory goes back to the allocator.
void WipeString(std::string& s) {
  SecureWipe(s.data(), s.size());
  s.clear();
}

Status CheckFolder(const std::string& dir) {
  SIGNET_TRY(fs::EnsureDirectory(dir, 0700));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return Unavailable("cannot use folder " + dir + ": " + Errno(errno));
  }
  if (st.st_uid != ::geteuid()) {
    return PermissionDenied("folder " + dir +
                            " belongs to another user; the session file must "
                            "be in a folder of your own");
  }
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) {
    return PermissionDenied("cannot make folder " + dir + " owner-only: " + Errno(errno));
  }
  return OkStatus();
}

Error Corrupt(const std::string& path, std::string_view what) {
  return FailedPrecondition("session file " + path + " is not valid (" + std::string(what) +
                            "); run 'signet login' again");
}

// Reads the whole file after checking who may access it (the check is on the opened file, so a
// rename between check and read cannot swap in another one).
Result<SecretBytes> ReadSessionBytes(const std::string& path, SessionFileAccess access) {
  // O_NONBLOCK: a FIFO at the path is refused below as not a regular file instead of keeping
  // open() waiting for a writer; a regular file's reads do not change.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound(kNotLoggedIn);
    if (err == EACCES)
      return PermissionDenied("cannot open session file " + path + ": " + Errno(err));
    return Unavailable("cannot open session file " + path + ": " + Errno(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return Unavailable("cannot stat session file " + path + ": " + Errno(errno));
  }
  if (!S_ISREG(st.st_mode)) return Corrupt(path, "not a regular file");
  if (st.st_uid != ::geteuid()) {
    return PermissionDenied("session file " + path +
                            " belongs to another user; delete it and "
                            "run 'signet login'");
  }
  const mode_t tolerated = access == SessionFileAccess::kReadableByOthers ? 044 : 0;
  if ((st.st_mode & 077 & ~tolerated) != 0) {
    if ((st.st_mode & 022) != 0) {
      // Others could have changed it (pointed it at another server): logout will not use it to
      // revoke, only remove it.
      return PermissionDenied("session file " + path +
                              " is writable by other users, so it cannot be trusted; delete it "
                              "('signet logout' removes it) and log in again; its token, if it "
                              "leaked, stays valid until it expires unless an admin disables "
                              "the account");
    }
    return PermissionDenied("session file " + path +
                            " is readable by other users; run 'signet logout' (it revokes the "
                            "token, which may have leaked, and removes the file) or: chmod 600 " +
                            path);
  }
  if (static_cast<size_t>(st.st_size) > kMaxSessionFileBytes) return Corrupt(path, "too large");
  // Sized by what fstat saw, plus one byte to notice a file that grew past the limit meanwhile.
  Bytes buf(std::min(static_cast<size_t>(st.st_size), kMaxSessionFileBytes) + 1);
  size_t len = 0;
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      SecureWipe(buf.data(), buf.size());
      return Unavailable("cannot read session file " + path + ": " + Errno(err));
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
    if (len == buf.size()) {
      if (buf.size() > kMaxSessionFileBytes) {
        SecureWipe(buf.data(), buf.size());
        return Corrupt(path, "too large");
      }
      // The file grew since fstat: read on, up to the limit.
      Bytes bigger(std::min(buf.size() * 2, kMaxSessionFileBytes + 1));
      std::copy(buf.begin(), buf.end(), bigger.begin());
      SecureWipe(buf.data(), buf.size());
      buf.swap(bigger);
    }
  }
  SecretBytes out(ByteView(buf.data(), len));
  SecureWipe(buf.data(), buf.size());
  return out;
}

Result<std::string> StringField(const json& j, const char* name, const std::string& path,
                                bool required) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (required) return Corrupt(path, std::string("no '") + name + "'");
    return std::string();
  }
  if (!it->is_string()) return Corrupt(path, std::string("'") + name + "' is not a string");
  return it->get<std::string>();
}

Result<Session> ParseSession(json& j, const std::string& path) {
  if (!j.is_object()) return Corrupt(path, "not a JSON object");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() ||
      (version->get<int64_t>() != kFormatVersion &&
       version->get<int64_t>() != kFirstFormatVersion)) {
    return Corrupt(path, "unknown format version");
  }
  const bool first_format = version->get<int64_t>() == kFirstFormatVersion;
  Session s;
  SIGNET_ASSIGN_OR_RETURN(s.server_url, StringField(j, "server", path, true));
  SIGNET_ASSIGN_OR_RETURN(s.ca_file, StringField(j, "ca_file", path, false));
  SIGNET_ASSIGN_OR_RETURN(s.ca_certificates, StringField(j, "ca_certificates", path, false));
  SIGNET_ASSIGN_OR_RETURN(s.client_certificate_file,
                          StringField(j, "client_certificate_file", path, false));
  SIGNET_ASSIGN_OR_RETURN(s.client_private_key_file,
                          StringField(j, "client_private_key_file", path, false));
  SIGNET_ASSIGN_OR_RETURN(s.account, StringField(j, "account", path, true));
  auto token = j.find("access_token");
  if (token == j.end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    return Corrupt(path, "no access token");
  }
  std::string& text = token->get_ref<std::string&>();
  s.access_token = SecretBytes(std::string_view(text));
  WipeString(text);
  auto expires = j.find("expires_at");
  if (expires == j.end() || !expires->is_number_integer()) return Corrupt(path, "no expiry");
  s.expires_at = FromUnixSeconds(expires->get<int64_t>());
  if (s.server_url.empty() || s.account.empty()) return Corrupt(path, "empty server or account");
  if (s.client_certificate_file.empty() != s.client_private_key_file.empty()) {
    return Corrupt(path, "a client certificate without its key");
  }
  if (first_format) {
    // Version 1 pinned nothing and read the CA file at every command; a session saved by it is
    // still used (and, above all, can still be revoked by logout) with what the file holds now.
    if (!s.ca_certificates.empty()) return Corrupt(path, "pinned certificates in a version 1 file");
    if (!s.ca_file.empty()) {
      Result<Bytes> pem = fs::ReadFile(s.ca_file, kMaxPinnedCaBytes);
      if (!pem.ok()) {
        return pem.error().WithContext("the CA file of the version 1 session in " + path);
      }
      if (pem->empty()) return InvalidArgument("CA file " + s.ca_file + " is empty");
      s.ca_certificates.assign(pem->begin(), pem->end());
    }
  }
  if (s.ca_file.empty() != s.ca_certificates.empty()) {
    return Corrupt(path, "a CA file without its pinned certificates");
  }
  if (s.ca_certificates.size() > kMaxPinnedCaBytes)
    return Corrupt(path, "CA certificates too large");
  return s;
}

}  // namespace

Result<std::string> SessionFilePath(const char* xdg_config_home, const char* home) {
  namespace stdfs = std::filesystem;
  if (xdg_config_home != nullptr && xdg_config_home[0] == '/') {
    return (stdfs::path(xdg_config_home) / "signet" / "session.json").string();
  }
  if (home != nullptr && home[0] == '/') {
    return (stdfs::path(home) / ".config" / "signet" / "session.json").string();
  }
  return FailedPrecondition(
      "cannot tell where to keep the session: set HOME or XDG_CONFIG_HOME to an absolute path");
}

Result<std::string> DefaultSessionFilePath() {
  return SessionFilePath(std::getenv("XDG_CONFIG_HOME"), std::getenv("HOME"));
}

Status SaveSession(const std::string& path, const Session& session) {
  if (session.server_url.empty() || session.account.empty() || session.access_token.empty()) {
    return InvalidArgument("a session needs a server URL, an account and a token");
  }
  if (session.ca_file.empty() != session.ca_certificates.empty()) {
    return InvalidArgument("a session pins the CA certificates of its CA file, and only then");
  }
  if (session.ca_certificates.size() > kMaxPinnedCaBytes) {
    return InvalidArgument("the CA file is larger than " + std::to_string(kMaxPinnedCaBytes) +
                           " bytes; pass only the CA that issued the server's certificate");
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  SIGNET_TRY(CheckFolder(dir));
  json j = {{"version", kFormatVersion},
            {"server", session.server_url},
            {"ca_file", session.ca_file},
            {"ca_certificates", session.ca_certificates},
            {"client_certificate_file", session.client_certificate_file},
            {"client_private_key_file", session.client_private_key_file},
            {"account", session.account},
            {"access_token", std::string(session.access_token.text_view())},
            {"expires_at", ToUnixSeconds(session.expires_at)}};
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const json::type_error&) {
    WipeString(j["access_token"].get_ref<std::string&>());
    return InvalidArgument(
        "cannot save the session: the server URL or a file name (CA, client certificate or key) "
        "is not valid UTF-8, and the session file is JSON; use a path in UTF-8");
  }
  WipeString(j["access_token"].get_ref<std::string&>());
  Status written = fs::WriteFileAtomic(path, AsBytes(text), 0600);
  WipeString(text);
  if (!written.ok()) return written.error().WithContext("saving the session");
  return OkStatus();
}

Result<Session> LoadSession(const std::string& path, SessionFileAccess access) {
  SIGNET_ASSIGN_OR_RETURN(SecretBytes bytes, ReadSessionBytes(path, access));
  json j = json::parse(bytes.data(), bytes.data() + bytes.size(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt(path, "not JSON");
  auto session = ParseSession(j, path);
  if (auto t = j.find("access_token"); t != j.end() && t->is_string()) {
    WipeString(t->get_ref<std::string&>());
  }
  return session;
}

Result<Session> LoadActiveSession(const std::string& path, TimePoint now) {
  auto session = LoadSession(path);
  if (!session.ok()) {
    if (session.error().code() == ErrorCode::kNotFound) return Unauthenticated(kNotLoggedIn);
    return std::move(session).error();
  }
  if (session->ExpiredAt(now)) {
    return Unauthenticated("session expired; run 'signet login'");
  }
  return session;
}

Result<bool> DeleteSession(const std::string& path) {
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  int err = errno;
  if (err == EACCES || err == EPERM) {
    return PermissionDenied("cannot delete session file " + path + ": " + Errno(err));
  }
  return Unavailable("cannot delete session file " + path + ": " + Errno(err));
}

}  // namespace signet::cli
