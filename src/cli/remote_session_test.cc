#include "cli/remote_session.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.h"
#include "common/testing/fifo.h"

namespace signet::cli {
namespace {

class RemoteSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-session-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/config/signet/session.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Session Sample(TimePoint expires) {
    Session s;
    s.server_url = "https://127.0.0.1:8443";
    s.ca_file = "/etc/signet/ca.pem";
    s.ca_certificates = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    s.account = "alice";
    s.access_token = SecretBytes(std::string_view("tok-0123456789abcdef"));
    s.expires_at = expires;
    return s;
  }

  static mode_t Mode(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
  }

  std::string dir_;
  std::string path_;
  TimePoint now_ = FromUnixSeconds(1'800'000'000);
};

TEST(SessionFilePathTest, PrefersAbsoluteXdgConfigHome) {
  EXPECT_EQ(*SessionFilePath("/x/cfg", "/home/u"), "/x/cfg/signet/session.json");
}

TEST(SessionFilePathTest, FallsBackToHomeForMissingOrRelativeXdg) {
  EXPECT_EQ(*SessionFilePath(nullptr, "/home/u"), "/home/u/.config/signet/session.json");
  EXPECT_EQ(*SessionFilePath("", "/home/u"), "/home/u/.config/signet/session.json");
  EXPECT_EQ(*SessionFilePath("rel/cfg", "/home/u"), "/home/u/.config/signet/session.json");
}

TEST(SessionFilePathTest, FailsWithoutAnAbsoluteFolder) {
  auto p = SessionFilePath(nullptr, nullptr);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(SessionFilePath("rel", "also-rel").ok());
}

TEST_F(RemoteSessionTest, SaveCreatesOwnerOnlyFolderAndFile) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  EXPECT_EQ(Mode(dir_ + "/config/signet"), 0700u);
  EXPECT_EQ(Mode(path_), 0600u);
}

TEST_F(RemoteSessionTest, SaveAndLoadRoundTrip) {
  Session s = Sample(now_ + std::chrono::minutes(15));
  s.client_certificate_file = "/certs/svc.pem";
  s.client_private_key_file = "/certs/svc.key";
  ASSERT_TRUE(SaveSession(path_, s).ok());
  auto loaded = LoadSession(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(loaded->server_url, s.server_url);
  EXPECT_EQ(loaded->ca_file, s.ca_file);
  EXPECT_EQ(loaded->ca_certificates, s.ca_certificates);
  EXPECT_EQ(loaded->client_certificate_file, s.client_certificate_file);
  EXPECT_EQ(loaded->client_private_key_file, s.client_private_key_file);
  EXPECT_EQ(loaded->account, "alice");
  EXPECT_TRUE(loaded->access_token.Equals(s.access_token));
  EXPECT_EQ(loaded->expires_at, s.expires_at);
}

// A file name from a Latin-1 folder cannot go into the JSON session file: a clear error, no file.
TEST_F(RemoteSessionTest, SaveRefusesAFileNameThatIsNotUtf8) {
  Session s = Sample(now_);
  s.client_certificate_file = "/home/jos\xe9/svc.pem";
  Status saved = SaveSession(path_, s);
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(saved.error().message().find("not valid UTF-8"), std::string::npos)
      << saved.error().message();
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(RemoteSessionTest, SaveReplacesAndLeavesNoTemporaryFiles) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  Session second = Sample(now_);
  second.account = "bob";
  ASSERT_TRUE(SaveSession(path_, second).ok());
  EXPECT_EQ(LoadSession(path_)->account, "bob");
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/config/signet")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
}

TEST_F(RemoteSessionTest, SaveTightensALooseExistingFolder) {
  ASSERT_TRUE(fs::EnsureDirectory(dir_ + "/config/signet", 0755).ok());
  ASSERT_EQ(::chmod((dir_ + "/config/signet").c_str(), 0755), 0);
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  EXPECT_EQ(Mode(dir_ + "/config/signet"), 0700u);
}

TEST_F(RemoteSessionTest, SaveRefusesAnEmptyToken) {
  Session s = Sample(now_);
  s.access_token = SecretBytes();
  auto r = SaveSession(path_, s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::Exists(path_));
}

TEST_F(RemoteSessionTest, LoadRefusesAFileOthersCanRead) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  for (mode_t loose : {0640, 0604, 0620, 0602}) {
    ASSERT_EQ(::chmod(path_.c_str(), loose), 0);
    auto r = LoadSession(path_);
    ASSERT_FALSE(r.ok()) << std::oct << loose;
    EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
    // Readable only: logout revokes it, or chmod keeps it. Writable: it cannot be trusted.
    const bool writable = (loose & 022) != 0;
    EXPECT_NE(r.error().message().find(writable ? "cannot be trusted" : "chmod 600"),
              std::string::npos)
        << r.error().message();
  }
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  EXPECT_TRUE(LoadSession(path_).ok());
}

TEST_F(RemoteSessionTest, LogoutMayReadAFileOthersCanOnlyRead) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  for (mode_t readable : {0640, 0604, 0644}) {
    ASSERT_EQ(::chmod(path_.c_str(), readable), 0);
    auto r = LoadSession(path_, SessionFileAccess::kReadableByOthers);
    ASSERT_TRUE(r.ok()) << std::oct << readable;
    EXPECT_EQ(r->account, "alice");
  }
  // Others who could write it could have changed the server the token goes to.
  for (mode_t writable : {0620, 0602, 0660, 0610, 0601}) {
    ASSERT_EQ(::chmod(path_.c_str(), writable), 0);
    auto r = LoadSession(path_, SessionFileAccess::kReadableByOthers);
    ASSERT_FALSE(r.ok()) << std::oct << writable;
    EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  }
}

TEST_F(RemoteSessionTest, TheCaFileAndItsPinnedCertificatesGoTogether) {
  Session no_pin = Sample(now_);
  no_pin.ca_certificates.clear();
  auto r = SaveSession(path_, no_pin);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  Session system_store = Sample(now_);
  system_store.ca_file.clear();
  system_store.ca_certificates.clear();
  ASSERT_TRUE(SaveSession(path_, system_store).ok());
  EXPECT_TRUE(LoadSession(path_)->ca_certificates.empty());
  Session too_big = Sample(now_);
  too_big.ca_certificates.assign(kMaxPinnedCaBytes + 1, 'A');
  EXPECT_FALSE(SaveSession(path_, too_big).ok());
  // The largest pin still loads (JSON escapes its newlines, so the file is bigger than the pin).
  Session largest = Sample(now_);
  largest.ca_certificates.assign(kMaxPinnedCaBytes, '\n');
  ASSERT_TRUE(SaveSession(path_, largest).ok());
  auto loaded = LoadSession(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(loaded->ca_certificates.size(), kMaxPinnedCaBytes);
}

// A session saved by format 1 (no pinned certificates) still loads, so that logout can revoke
// its token; its CA file is read on loading, as format 1 did at every command.
TEST_F(RemoteSessionTest, AFormatOneSessionLoadsWithItsCaFileReadNow) {
  const std::string ca = dir_ + "/ca.pem";
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
  ASSERT_TRUE(fs::WriteFileAtomic(ca, AsBytes(pem), 0644).ok());
  ASSERT_TRUE(fs::EnsureDirectory(dir_ + "/config/signet").ok());
  const auto write_v1 = [&](const std::string& extra) {
    const std::string text =
        R"({"version": 1, "server": "https://127.0.0.1:8443", "ca_file": ")" + ca +
        R"(", "client_certificate_file": "", "client_private_key_file": "",)" + extra +
        R"( "account": "alice", "access_token": "tok-1", "expires_at": 1800000000})";
    ASSERT_TRUE(fs::WriteFileAtomic(path_, AsBytes(text), 0600).ok());
  };
  write_v1("");
  auto loaded = LoadSession(path_);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(loaded->ca_certificates, pem);
  EXPECT_EQ(loaded->access_token.text_view(), "tok-1");
  write_v1(R"( "ca_certificates": "x",)");
  EXPECT_FALSE(LoadSession(path_).ok());  // format 1 never pinned
  write_v1("");
  ASSERT_TRUE(std::filesystem::remove(ca));
  auto gone = LoadSession(path_);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.error().message().find("CA file of the version 1 session"), std::string::npos)
      << gone.error().message();
}

TEST_F(RemoteSessionTest, MissingFileMeansNotLoggedIn) {
  auto r = LoadSession(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  auto active = LoadActiveSession(path_, now_);
  ASSERT_FALSE(active.ok());
  EXPECT_EQ(active.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(active.error().message(), "not logged in; run 'signet login --server URL'");
}

TEST_F(RemoteSessionTest, ExpiredSessionIsRefusedWithAClearMessage) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  EXPECT_TRUE(LoadActiveSession(path_, now_ - std::chrono::seconds(1)).ok());
  auto r = LoadActiveSession(path_, now_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(r.error().message(), "session expired; run 'signet login'");
  EXPECT_TRUE(LoadSession(path_).ok());  // still readable, e.g. for logout
}

TEST_F(RemoteSessionTest, CorruptFilesAreRefused) {
  ASSERT_TRUE(fs::EnsureDirectory(dir_ + "/config/signet").ok());
  for (std::string text :
       {"not json", "[]", R"({"version":3,"server":"https://h","account":"a",
          "access_token":"t","expires_at":1})",
        // Version 1 never pinned certificates (AFormatOneSessionLoadsWithItsCaFileReadNow).
        R"({"version":1,"server":"https://h","account":"a","access_token":"t","expires_at":1,
          "ca_certificates":"-----BEGIN CERTIFICATE-----"})",
        R"({"version":2,"server":"https://h","account":"a","expires_at":1})",
        R"({"version":2,"server":"https://h","account":"a","access_token":"t"})",
        R"({"version":2,"server":"https://h","account":"a","access_token":"t","expires_at":1,
          "client_certificate_file":"/c.pem"})",
        R"({"version":2,"server":"https://h","account":"a","access_token":"t","expires_at":1,
          "ca_file":"/ca.pem"})",
        R"({"version":2,"server":"https://h","account":"a","access_token":"t","expires_at":1,
          "ca_certificates":"-----BEGIN CERTIFICATE-----"})"}) {
    ASSERT_TRUE(fs::WriteFileAtomic(path_, AsBytes(text)).ok());
    auto r = LoadSession(path_);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition) << text;
    EXPECT_NE(r.error().message().find("signet login"), std::string::npos);
  }
}

// A FIFO at the session's path is refused at once, not waited on forever.
TEST_F(RemoteSessionTest, AFifoIsRefusedWithoutWaiting) {
  ASSERT_TRUE(fs::EnsureDirectory(dir_ + "/config/signet").ok());
  bool made = false;
  Result<Session> loaded = InvalidArgument("not run");
  EXPECT_FALSE(signet::testing::ReadOfFifoHangs(
      path_, [&] { loaded = LoadSession(path_); }, &made));
  ASSERT_TRUE(made);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.error().message().find("not a regular file"), std::string::npos)
      << loaded.error().message();
}

TEST_F(RemoteSessionTest, DeleteReportsWhetherThereWasASession) {
  ASSERT_TRUE(SaveSession(path_, Sample(now_)).ok());
  EXPECT_TRUE(*DeleteSession(path_));
  EXPECT_FALSE(fs::Exists(path_));
  EXPECT_FALSE(*DeleteSession(path_));
}

}  // namespace
}  // namespace signet::cli
