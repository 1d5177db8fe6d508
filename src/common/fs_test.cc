#include "common/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/testing/fifo.h"

namespace signet::fs {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-fs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FsTest, WriteAtomicCreatesOwnerOnlyFile) {
  std::string p = dir_ + "/a.txt";
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("hello")).ok());
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ToString(*ReadFile(p)), "hello");
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("again")).ok());
  EXPECT_EQ(ToString(*ReadFile(p)), "again");
}

TEST_F(FsTest, ReadFileEnforcesLimit) {
  std::string p = dir_ + "/b";
  ASSERT_TRUE(WriteFileAtomic(p, Bytes(100, 'x')).ok());
  auto r = ReadFile(p, 50);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(FsTest, ReadSecretFileStripsNewlineAndChecksMode) {
  std::string p = dir_ + "/pin";
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("1234\n")).ok());
  auto s = ReadSecretFile(p);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->text_view(), "1234");
  ::chmod(p.c_str(), 0644);
  auto loose = ReadSecretFile(p);
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(loose.error().message().find("chmod 600"), std::string::npos);
  // One LF or CRLF goes; a CR without its LF is part of the secret.
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("ab\r\n")).ok());
  EXPECT_EQ(ReadSecretFile(p)->text_view(), "ab");
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("ab\r")).ok());
  EXPECT_EQ(ReadSecretFile(p)->text_view(), "ab\r");
}

// A rename is durable once its folder is synced; a folder that cannot be synced (here one this
// process may write to but not open) is an error that says the file is written, not success.
TEST_F(FsTest, WriteAtomicReportsAFolderThatCannotBeSynced) {
  if (::geteuid() == 0) GTEST_SKIP() << "root opens any folder";
  const std::string folder = dir_ + "/write-only";
  ASSERT_TRUE(EnsureDirectory(folder).ok());
  ASSERT_EQ(::chmod(folder.c_str(), 0300), 0);
  Status written = WriteFileAtomic(folder + "/a", AsBytes("x"));
  ::chmod(folder.c_str(), 0700);
  ASSERT_FALSE(written.ok());
  EXPECT_EQ(written.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(written.error().message().find("was written, but it may not survive a crash"),
            std::string::npos)
      << written.error().message();
  EXPECT_EQ(ToString(*ReadFile(folder + "/a")), "x");  // in place: nothing half-done
  EXPECT_TRUE(SyncFolder(folder).ok());
  EXPECT_EQ(SyncFolder(dir_ + "/none").error().code(), ErrorCode::kNotFound);
}

TEST_F(FsTest, EnsureDirectoryMakesParentsAndRefusesWhatIsNoFolder) {
  ASSERT_TRUE(EnsureDirectory(dir_ + "/x/y/z").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/x/y/z").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/file", AsBytes("x")).ok());
  EXPECT_EQ(EnsureDirectory(dir_ + "/file").error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_EQ(::symlink((dir_ + "/file").c_str(), (dir_ + "/link").c_str()), 0);
  EXPECT_EQ(EnsureDirectory(dir_ + "/link").error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(FsTest, ReadProtectedFileRefusesWhatOthersCouldChange) {
  std::string p = dir_ + "/signet.toml";
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("[hsm]\n"), 0644).ok());
  auto readable = ReadProtectedFile(p, 1024);  // others may read it: nothing secret inside
  ASSERT_TRUE(readable.ok()) << readable.error().message();
  EXPECT_EQ(ToString(*readable), "[hsm]\n");
  for (mode_t writable : {0664, 0646, 0620, 0602}) {
    ASSERT_EQ(::chmod(p.c_str(), writable), 0);
    auto r = ReadProtectedFile(p, 1024);
    ASSERT_FALSE(r.ok()) << std::oct << writable;
    EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
    EXPECT_NE(r.error().message().find("chmod go-w " + p), std::string::npos)
        << r.error().message();
  }
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
  EXPECT_EQ(ReadProtectedFile(p, 3).error().code(), ErrorCode::kInvalidArgument);  // the limit
  EXPECT_EQ(ReadProtectedFile(dir_, 1024).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ReadProtectedFile(dir_ + "/none", 1024).error().code(), ErrorCode::kNotFound);
}

// A FIFO where a secret or a trusted file should be is refused at once, not waited on forever.
TEST_F(FsTest, FilesThatMustBeRegularAreNotWaitedOnWhenTheyAreFifos) {
  const std::string fifo = dir_ + "/fifo";
  bool made = false;
  Result<SecretBytes> secret = InvalidArgument("not run");
  EXPECT_FALSE(signet::testing::ReadOfFifoHangs(
      fifo, [&] { secret = ReadSecretFile(fifo); }, &made));
  ASSERT_TRUE(made);
  ASSERT_FALSE(secret.ok());
  EXPECT_NE(secret.error().message().find("not a regular file"), std::string::npos);
  ::unlink(fifo.c_str());
  Result<Bytes> trusted = InvalidArgument("not run");
  EXPECT_FALSE(signet::testing::ReadOfFifoHangs(
      fifo, [&] { trusted = ReadProtectedFile(fifo, 1024); }, &made));
  ASSERT_TRUE(made);
  ASSERT_FALSE(trusted.ok());
  EXPECT_NE(trusted.error().message().find("not a regular file"), std::string::npos);
}

TEST_F(FsTest, AnExclusiveLockIsHeldUntilReleased) {
  const std::string path = dir_ + "/serve.lock";
  std::optional<Result<ExclusiveLock>> first(ExclusiveLock::Acquire(path, "the folder"));
  ASSERT_TRUE(first->ok()) << first->error().message();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = ExclusiveLock::Acquire(path, "the folder");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(
      second.error().message().find("(pid " + std::to_string(::getpid()) + ") is using the folder"),
      std::string::npos)
      << second.error().message();
  first.reset();
  EXPECT_TRUE(ExclusiveLock::Acquire(path, "the folder").ok());
}

TEST_F(FsTest, ReadSecretFileRefusesEmpty) {
  std::string p = dir_ + "/empty";
  ASSERT_TRUE(WriteFileAtomic(p, AsBytes("\n")).ok());
  EXPECT_FALSE(ReadSecretFile(p).ok());
}

TEST_F(FsTest, MissingFileIsNotFound) {
  auto r = ReadFile(dir_ + "/nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST_F(FsTest, EnsureDirectoryCreatesNestedAndRejectsFile) {
  std::string d = dir_ + "/x/y";
  ASSERT_TRUE(EnsureDirectory(d).ok());
  EXPECT_TRUE(std::filesystem::is_directory(d));
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/f", AsBytes("1")).ok());
  EXPECT_FALSE(EnsureDirectory(dir_ + "/f").ok());
}

}  // namespace
}  // namespace signet::fs
