// The remote CLI's session: what `signet login` leaves behind for later commands (server URL, CA
// file, account name, bearer token, expiry) in $XDG_CONFIG_HOME/signet/session.json (default
// ~/.config/signet/session.json).
//
// The token is a credential, so the file is treated like an ssh private key: written atomically
// with mode 0600 in a folder of mode 0700, and refused when it belongs to another user or other
// users may read or write it. In memory the token lives in SecretBytes. nlohmann-json keeps
// transient copies while parsing and serialising; the buffers this code owns are wiped.
//
// Plain functions over the filesystem; safe to call from any thread, though a CLI uses one.
#pragma once

#include <cstddef>
#include <string>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace signet::cli {

struct Session {
  std::string server_url;  // "https://host:port", as given to login (no trailing '/')
  std::string ca_file;     // absolute path; empty: the system trust store
  // The PEM text of ca_file as read at login: later commands trust these certificates, not
  // whatever the file holds by then (it may sit where others can replace it). Empty exactly when
  // ca_file is.
  std::string ca_certificates;
  // mTLS identity of a service account (absolute paths, both or neither).
  std::string client_certificate_file;
  std::string client_private_key_file;
  std::string account;  // the account the token belongs to
  SecretBytes access_token;
  TimePoint expires_at;

  bool ExpiredAt(TimePoint now) const { return now >= expires_at; }
};

// The largest CA file a session pins (a CA certificate or a bundle of them, in PEM).
inline constexpr size_t kMaxPinnedCaBytes = 1024 * 1024;

// The session file for the given environment values (either may be null or empty):
// "$XDG_CONFIG_HOME/signet/session.json" when XDG_CONFIG_HOME is an absolute path (the XDG base
// directory specification ignores relative ones), else "$HOME/.config/signet/session.json".
// FailedPrecondition if neither gives an absolute folder.
Result<std::string> SessionFilePath(const char* xdg_config_home, const char* home);

// The same, from this process's environment.
Result<std::string> DefaultSessionFilePath();

// Creates or replaces the session file: its folder is created with mode 0700 (an existing one
// that others can access is tightened to 0700), the file is written atomically with mode 0600.
// InvalidArgument for an empty server URL, account or token.
Status SaveSession(const std::string& path, const Session& session);

// Who else may access a session file that LoadSession still reads.
enum class SessionFileAccess {
  kOwnerOnly,         // any group/other permission bit is refused
  kReadableByOthers,  // group/other read is tolerated (logout revokes such a token: it may have
                      // leaked); write or execute bits, or another owner, are still refused, since
                      // others could have changed where the token would be sent
};

// Reads the session file, expired or not. Errors:
//   NotFound           no session file ("not logged in; run 'signet login --server URL'")
//   PermissionDenied   the file belongs to another user, or group/other permission bits are set
//                      beyond what `access` tolerates
//   FailedPrecondition the file is not a valid session file (the message says to log in again)
Result<Session> LoadSession(const std::string& path,
                            SessionFileAccess access = SessionFileAccess::kOwnerOnly);

// LoadSession for a command that needs a usable session: a missing file or an expired session is
// Unauthenticated, with a message that says to run `signet login`.
Result<Session> LoadActiveSession(const std::string& path, TimePoint now);

// Deletes the session file. Returns whether there was one.
Result<bool> DeleteSession(const std::string& path);

}  // namespace signet::cli
