#include "config/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/fs.h"

namespace signet::config {
namespace {

TEST(ConfigTest, EmbeddedDefaultParsesAndResolvesPaths) {
  auto c = ParseConfig(EmbeddedDefaultConfigText(), "signet.toml", "/srv/signet");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.module_path, kSoftHsmModulePath);
  EXPECT_EQ(c->hsm.token_label, "signet");
  EXPECT_EQ(c->hsm.pin_file, "/srv/signet/user.pin");
  EXPECT_EQ(c->hsm.softhsm_conf, "/srv/signet/softhsm2.conf");
  EXPECT_EQ(c->store.sqlite_path, "/srv/signet/signet.db");
}

TEST(ConfigTest, EmbeddedDefaultNamesTheModuleUsed) {
  auto c = ParseConfig(EmbeddedDefaultConfigText("/opt/hsm/libvendor.so"), "signet.toml", "/d");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.module_path, "/opt/hsm/libvendor.so");
}

// Whatever the module's path holds, signet.toml reads it back as given (a quote or backslash
// written as is made the file unreadable, or a "\t" in it read as a tab).
TEST(ConfigTest, EmbeddedDefaultKeepsAnyModulePath) {
  for (std::string path : {"/opt/a\"b/p11.so", "/opt/a\\tb/p11.so", "/opt/tab\there.so",
                           "/opt/\xc3\xa9t\xc3\xa9/p11.so"}) {
    auto c = ParseConfig(EmbeddedDefaultConfigText(path), "signet.toml", "/d");
    ASSERT_TRUE(c.ok()) << path << ": " << c.error().message();
    EXPECT_EQ(c->hsm.module_path, path);
  }
}

TEST(ConfigTest, AnUnknownKeyIsShownEscaped) {
  auto c = ParseConfig("[hsm]\nmodule='/m.so'\ntoken_label='t'\n\"bad\\u001b[2Jkey\" = 1\n",
                       "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message().find('\x1b'), std::string::npos) << c.error().message();
  EXPECT_NE(c.error().message().find("hsm.bad\\x1b[2Jkey: unknown setting"), std::string::npos)
      << c.error().message();
}

TEST(ConfigTest, TheModuleMustBeAnAbsolutePath) {
  for (const char* module : {"libsofthsm2.so", "./lib/x.so", "lib/x.so"}) {
    auto c = ParseConfig(std::string("[hsm]\nmodule='") + module + "'\ntoken_label='t'\n", "f.toml",
                         "/d");
    ASSERT_FALSE(c.ok()) << module;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(c.error().message().find("hsm.module"), std::string::npos) << c.error().message();
    EXPECT_NE(c.error().message().find("absolute path"), std::string::npos) << c.error().message();
  }
}

TEST(ConfigTest, AbsolutePathsStay) {
  auto c = ParseConfig(
      "[hsm]\nmodule='/m.so'\ntoken_serial='abc'\npin_file='/etc/pin'\n[store]\nsqlite_path='/x.db'\n",
      "f", "/d");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.pin_file, "/etc/pin");
  EXPECT_EQ(c->store.sqlite_path, "/x.db");
  EXPECT_EQ(c->hsm.token_serial, "abc");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  auto c = ParseConfig("[hsm]\nmodule='/m.so'\ntoken_label='t'\nmodul='x'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find("hsm.modul"), std::string::npos) << c.error().message();
}

TEST(ConfigTest, UnknownSectionIsRefused) {
  auto c = ParseConfig("[hsm]\nmodule='/m.so'\ntoken_label='t'\n[stor]\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("stor"), std::string::npos);
}

TEST(ConfigTest, WrongTypeIsRefused) {
  auto c = ParseConfig("[hsm]\nmodule=3\ntoken_label='t'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("must be a string"), std::string::npos);
}

TEST(ConfigTest, SyntaxErrorHasLineNumber) {
  auto c = ParseConfig("[hsm\nmodule='x'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("f.toml:1"), std::string::npos) << c.error().message();
}

TEST(ConfigTest, LabelAndSerialAreExclusive) {
  EXPECT_FALSE(ParseConfig("[hsm]\nmodule='/m'\n", "f", "/d").ok());
  EXPECT_FALSE(ParseConfig("[hsm]\nmodule='/m'\ntoken_label='a'\ntoken_serial='b'\n", "f", "/d").ok());
}

TEST(ConfigTest, MissingFileSaysRunInit) {
  auto c = LoadDataDirConfig("/nonexistent-signet-dir");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find("signet init"), std::string::npos);
}

// The configuration names the module signet loads: one that others could edit is refused.
TEST(ConfigTest, AConfigurationOthersCouldChangeIsRefused) {
  char tmpl[] = "/tmp/signet-config-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/signet.toml";
  ASSERT_TRUE(
      fs::WriteFileAtomic(path, AsBytes("[hsm]\nmodule='/m.so'\ntoken_label='t'\n"), 0644).ok());
  EXPECT_TRUE(LoadConfigFile(path, dir).ok());
  EXPECT_TRUE(LoadDataDirConfig(dir).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  for (const auto& loaded : {LoadConfigFile(path, dir), LoadDataDirConfig(dir)}) {
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(loaded.error().message().find("chmod go-w"), std::string::npos)
        << loaded.error().message();
  }
  std::filesystem::remove_all(dir);
}

constexpr std::string_view kHsm = "[hsm]\nmodule='/m.so'\ntoken_label='t'\n";

Result<Config> ParseWithHsm(std::string_view extra) {
  return ParseConfig(std::string(kHsm) + std::string(extra), "f.toml", "/d");
}

TEST(ConfigTest, ServiceDefaultsAreSafe) {
  auto c = ParseWithHsm("");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server.host, "127.0.0.1");  // loopback unless configured otherwise
  EXPECT_EQ(c->server.port, 8443);
  EXPECT_EQ(c->server.tls_certificate, "/d/tls-server.crt");
  EXPECT_EQ(c->server.tls_private_key, "/d/tls-server.key");
  EXPECT_EQ(c->server.client_auth, ClientAuthMode::kNone);
  EXPECT_TRUE(c->server.client_ca.empty());
  EXPECT_EQ(c->limits.max_body_bytes, 1024 * 1024);
  EXPECT_EQ(c->accounts.lockout_threshold, 5);
  EXPECT_EQ(c->accounts.lockout_seconds, 900);
  EXPECT_EQ(c->activation.sad_lifetime_seconds, 300);
  EXPECT_EQ(c->activation.max_open_per_account, 256);
  EXPECT_TRUE(c->log.origin.empty());
  EXPECT_FALSE(c->log.public_read);
  EXPECT_FALSE(c->server.metrics_public);
  EXPECT_EQ(c->log.checkpoint_interval_ms, 500);
  EXPECT_EQ(c->log.verify_interval_seconds, 60);
}

TEST(ConfigTest, EmbeddedDefaultHasServerSection) {
  auto c = ParseConfig(EmbeddedDefaultConfigText(), "signet.toml", "/srv/signet");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server.listen, "127.0.0.1:8443");
  EXPECT_EQ(c->server.tls_certificate, "/srv/signet/tls-server.crt");
  EXPECT_EQ(c->server.tls_private_key, "/srv/signet/tls-server.key");
}

TEST(ConfigTest, ServiceSectionsAreRead) {
  auto c = ParseWithHsm(
      "[server]\nlisten='[::1]:0'\ntls_certificate='/etc/c.pem'\ntls_private_key='k.pem'\n"
      "client_ca='ca.pem'\nclient_auth='required'\nio_threads=3\nworker_threads=8\n"
      "metrics_public=true\n"
      "[limits]\nmax_body_bytes=2048\nmax_header_bytes=4096\nmax_connections=10\n"
      "max_connections_per_address=3\n"
      "request_timeout_seconds=5\nidle_timeout_seconds=6\n"
      "[accounts]\ntoken_lifetime_seconds=600\nlockout_threshold=3\nlockout_seconds=120\n"
      "[activation]\nsad_lifetime_seconds=60\nmax_open_per_account=0\n"
      "[log]\norigin='signet.example/prod'\npublic=true\ncheckpoint_interval_ms=250\n"
      "verify_interval_seconds=30\n");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server.host, "::1");
  EXPECT_EQ(c->server.port, 0);
  EXPECT_EQ(c->server.tls_certificate, "/etc/c.pem");
  EXPECT_EQ(c->server.tls_private_key, "/d/k.pem");
  EXPECT_EQ(c->server.client_ca, "/d/ca.pem");
  EXPECT_EQ(c->server.client_auth, ClientAuthMode::kRequired);
  EXPECT_EQ(c->server.io_threads, 3);
  EXPECT_EQ(c->server.worker_threads, 8);
  EXPECT_TRUE(c->server.metrics_public);
  EXPECT_EQ(c->limits.max_body_bytes, 2048);
  EXPECT_EQ(c->limits.max_header_bytes, 4096);
  EXPECT_EQ(c->limits.max_connections, 10);
  EXPECT_EQ(c->limits.max_connections_per_address, 3);
  EXPECT_EQ(c->limits.request_timeout_seconds, 5);
  EXPECT_EQ(c->limits.idle_timeout_seconds, 6);
  EXPECT_EQ(c->accounts.token_lifetime_seconds, 600);
  EXPECT_EQ(c->accounts.lockout_threshold, 3);
  EXPECT_EQ(c->accounts.lockout_seconds, 120);
  EXPECT_EQ(c->activation.sad_lifetime_seconds, 60);
  EXPECT_EQ(c->activation.max_open_per_account, 0);
  EXPECT_EQ(c->log.origin, "signet.example/prod");
  EXPECT_TRUE(c->log.public_read);
  EXPECT_EQ(c->log.checkpoint_interval_ms, 250);
  EXPECT_EQ(c->log.verify_interval_seconds, 30);
}

// Each bad value is refused with a message naming the key.
// A value quoted back in an error reaches the terminal escaped, as unknown keys do.
TEST(ConfigTest, AQuotedBadValueCannotDriveTheTerminal) {
  auto c = ParseWithHsm("[server]\nlisten=\"\\u001b]0;x\\u0007:1\"\n");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("\\x1b]0;x\\x07:1"), std::string::npos) << c.error().message();
  EXPECT_EQ(c.error().message().find('\x1b'), std::string::npos);
}

TEST(ConfigTest, BadServiceValuesNameTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[server]\nlisten='localhost:8443'\n", "server.listen"},
      {"[server]\nlisten='127.0.0.1'\n", "server.listen"},
      {"[server]\nlisten='127.0.0.1:70000'\n", "server.listen"},
      {"[server]\nlisten='::1:8443'\n", "server.listen"},
      {"[server]\nclient_auth='sometimes'\n", "server.client_auth"},
      {"[server]\nclient_auth='optional'\n", "server.client_ca"},
      {"[server]\nclient_ca='ca.pem'\n", "server.client_ca"},
      {"[server]\nio_threads=0\n", "server.io_threads"},
      {"[server]\nworker_threads='4'\n", "server.worker_threads"},
      {"[server]\ntls_certificate=''\n", "server.tls_certificate"},
      {"[server]\nport=1\n", "server.port"},
      {"[limits]\nmax_body_bytes=-1\n", "limits.max_body_bytes"},
      {"[limits]\nidle_timeout_seconds=1.5\n", "limits.idle_timeout_seconds"},
      {"[limits]\nmax_connections_per_address=0\n", "limits.max_connections_per_address"},
      {"[accounts]\nlockout_threshold=6\n", "accounts.lockout_threshold"},
      {"[accounts]\nlockout=1\n", "accounts.lockout"},
      {"[activation]\nsad_lifetime_seconds=0\n", "activation.sad_lifetime_seconds"},
      {"[activation]\nmax_open_per_account=-1\n", "activation.max_open_per_account"},
      {"[log]\norigin='signet example'\n", "log.origin"},
      {"[log]\norigin='a+b'\n", "log.origin"},
      {"[log]\norigin=\"a\\u00a0b\"\n", "log.origin"},  // no-break space: not a key name
      {"[server]\nlisten=\"127.0.0.1\\u0000junk:1\"\n", "server.listen"},
      {"[store]\nsqlite_path=\"a.db\\u0000.txt\"\n", "store.sqlite_path"},
      {"[log]\npublic='yes'\n", "log.public"},
      {"[log]\ncheckpoint_interval_ms=10\n", "log.checkpoint_interval_ms"},
      {"[log]\nverify_interval_seconds=0\n", "log.verify_interval_seconds"},
      {"[log]\nwitness=1\n", "log.witness"},
      {"server=1\n", "server"},
  };
  for (const auto& [text, key] : cases) {
    auto c = ParseWithHsm(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(c.error().message().find(key), std::string::npos)
        << text << " -> " << c.error().message();
  }
}

TEST(ConfigTest, ListenAddressParsing) {
  std::string host;
  uint16_t port = 1;
  ASSERT_TRUE(ParseListenAddress("0.0.0.0:0", "--listen", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(ParseListenAddress("[::]:443", "--listen", &host, &port).ok());
  EXPECT_EQ(host, "::");
  EXPECT_EQ(port, 443);
  auto bad = ParseListenAddress("127.0.0.1:", "--listen", &host, &port);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("--listen"), std::string::npos);
}

}  // namespace
}  // namespace signet::config
