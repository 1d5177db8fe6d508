// libFuzzer target for ParseConfig (config.h), the reader of signet.toml: any text must be
// accepted or refused with an InvalidArgument that names the file, never crash or throw. What is
// accepted must hold the invariants `signet serve` relies on without checking again: every
// number inside its documented range, a [server] listen host that is an IP address
// (inet_pton) agreeing with the host and port parsed from it, no string with a NUL (it would be
// cut short in C calls), exactly one of token_label and token_serial, client_ca present exactly
// when client certificates are asked for, a log origin that the audit log accepts as a
// signed-note key name (audit::CheckKeyName, a separate implementation), every file path absolute
// (resolved against the data folder), and hsm.module absolute as written.
//
// Run (libFuzzer writes new inputs to the first folder):
//   mkdir -p /tmp/config
//   build/fuzz/src/config/config_config_fuzz /tmp/config src/config/fuzz/corpus/config
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "audit/note.h"
#include "config/config.h"

namespace {

constexpr std::string_view kSource = "fuzz/signet.toml";

void Require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "config fuzz: %s\n", what);
    std::abort();
  }
}

bool InRange(int64_t value, int64_t low, int64_t high) { return value >= low && value <= high; }

bool AbsoluteOrEmpty(const std::string& path) { return path.empty() || path.front() == '/'; }

bool IpAddress(const std::string& host) {
  unsigned char address[16];
  return ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseConfig(text, kSource, "/srv/signet");
  if (!parsed.ok()) {
    Require(parsed.error().code() == signet::ErrorCode::kInvalidArgument,
            "a refusal that is not InvalidArgument");
    Require(parsed.error().message().starts_with(kSource), "an error that does not name the file");
    return 0;
  }
  const Config& c = *parsed;
  Require(c.data_dir == "/srv/signet", "the data folder changed");
  for (const std::string* value :
       {&c.hsm.module_path, &c.hsm.token_label, &c.hsm.token_serial, &c.hsm.pin_file,
        &c.hsm.softhsm_conf, &c.store.sqlite_path, &c.server.listen, &c.server.host,
        &c.server.tls_certificate, &c.server.tls_private_key, &c.server.client_ca, &c.log.origin}) {
    Require(value->find('\0') == std::string::npos, "a string with a NUL");
  }
  Require(!c.hsm.module_path.empty() && c.hsm.module_path.front() == '/',
          "no hsm.module, or a relative one");
  Require(c.hsm.token_label.empty() != c.hsm.token_serial.empty(),
          "not exactly one of token_label and token_serial");
  Require(AbsoluteOrEmpty(c.hsm.pin_file) && AbsoluteOrEmpty(c.hsm.softhsm_conf) &&
              !c.store.sqlite_path.empty() && AbsoluteOrEmpty(c.store.sqlite_path) &&
              AbsoluteOrEmpty(c.server.tls_certificate) &&
              AbsoluteOrEmpty(c.server.tls_private_key) && AbsoluteOrEmpty(c.server.client_ca),
          "a relative path");

  std::string host;
  uint16_t port = 0;
  Require(IpAddress(c.server.host), "a listen host that is not an IP address");
  Require(ParseListenAddress(c.server.listen, "listen", &host, &port).ok() &&
              host == c.server.host && port == c.server.port,
          "server.listen disagrees with host and port");
  Require((c.server.client_auth == ClientAuthMode::kNone) == c.server.client_ca.empty(),
          "client_ca without client_auth or the reverse");
  Require(InRange(c.server.io_threads, 1, 64) && InRange(c.server.worker_threads, 1, 256),
          "thread counts out of range");

  const LimitsConfig& l = c.limits;
  Require(InRange(l.max_body_bytes, 1024, 64 << 20) && InRange(l.max_header_bytes, 1024, 1 << 20) &&
              InRange(l.max_connections, 1, 100000) &&
              InRange(l.max_connections_per_address, 1, 100000) &&
              InRange(l.request_timeout_seconds, 1, 3600) &&
              InRange(l.idle_timeout_seconds, 1, 3600),
          "a limit out of range");
  const AccountsConfig& a = c.accounts;
  Require(InRange(a.token_lifetime_seconds, 60, 86400) && InRange(a.lockout_threshold, 1, 5) &&
              InRange(a.lockout_seconds, 60, 86400),
          "an account setting out of range");
  Require(InRange(c.activation.sad_lifetime_seconds, 10, 3600), "sad_lifetime out of range");
  Require(InRange(c.log.checkpoint_interval_ms, 50, 60000) &&
              InRange(c.log.verify_interval_seconds, 1, 86400),
          "a log interval out of range");
  Require(c.log.origin.size() <= 256, "a log origin over 256 bytes");
  Require(c.log.origin.empty() || signet::audit::CheckKeyName(c.log.origin).ok(),
          "a log origin that the audit log refuses as a key name");
  return 0;
}
