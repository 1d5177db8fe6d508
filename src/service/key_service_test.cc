#include "service/key_service.h"

#include <gtest/gtest.h>

#include "service/testing/fakes.h"

namespace signet::service {
namespace {

class KeyServiceTest : public ::testing::Test {
 protected:
  KeyServiceTest()
      : clock_(FromUnixSeconds(1'800'000'000)),
        service_(keys_, store_, clock_, TokenIdentity{"fake-token", "0001"}) {}

  testing::FakeKeyStore keys_;
  testing::MemoryStore store_;
  FakeClock clock_;
  KeyService service_;
};

TEST_F(KeyServiceTest, CreateRecordsKeyWithItsPublicKey) {
  auto k = service_.CreateKey("release", KeyAlgorithm::kEcP256, "alice");
  ASSERT_TRUE(k.ok()) << k.error().message();
  EXPECT_EQ(k->name, "release");
  EXPECT_EQ(k->algorithm, "ec-p256");
  EXPECT_EQ(k->state, store::KeyState::kActive);
  EXPECT_EQ(k->owner, "alice");
  EXPECT_EQ(k->token_serial, "0001");
  EXPECT_EQ(k->created_at, clock_.Now());
  auto shown = service_.ShowKey("release");
  ASSERT_TRUE(shown.ok());
  EXPECT_TRUE(shown->present_in_hsm);
  EXPECT_TRUE(shown->public_key_matches_hsm);
}

TEST_F(KeyServiceTest, DuplicateNameGeneratesNothing) {
  ASSERT_TRUE(service_.CreateKey("a", KeyAlgorithm::kEcP256, "x").ok());
  auto dup = service_.CreateKey("a", KeyAlgorithm::kEcP384, "x");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(keys_.KeyCount(), 1u);
}

TEST_F(KeyServiceTest, FailedInsertDestroysGeneratedKey) {
  store_.FailNextInsert(Unavailable("disk gone"));
  auto k = service_.CreateKey("a", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(keys_.KeyCount(), 0u);
  EXPECT_TRUE(store_.ListKeys()->empty());
}

TEST_F(KeyServiceTest, FailedInsertAndFailedUndoSaysBoth) {
  store_.FailNextInsert(Unavailable("disk gone"));
  keys_.FailNextDestroy(Unavailable("hsm gone"));
  auto k = service_.CreateKey("a", KeyAlgorithm::kEcP256, "x");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message().find("disk gone"), std::string::npos);
  EXPECT_NE(k.error().message().find("hsm gone"), std::string::npos);
}

TEST_F(KeyServiceTest, RejectsBadNamesAndAlgorithms) {
  EXPECT_EQ(service_.CreateKey("", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey("-lead", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey("a b", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey(std::string(65, 'a'), KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateKey("log", KeyAlgorithm::kEd25519, "x").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(keys_.KeyCount(), 0u);
}

TEST_F(KeyServiceTest, DisableEnableTransitions) {
  ASSERT_TRUE(service_.CreateKey("a", KeyAlgorithm::kEcP256, "x").ok());
  clock_.Advance(std::chrono::seconds(5));
  auto d = service_.DisableKey("a");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->state, store::KeyState::kDisabled);
  EXPECT_EQ(d->updated_at, clock_.Now());
  EXPECT_EQ(service_.DisableKey("a").error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(service_.CreateCsr("a", "/CN=x").error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(service_.EnableKey("a").ok());
  EXPECT_EQ(service_.EnableKey("a").error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(KeyServiceTest, DestroyMarksThenRemovesAndIsRepeatable) {
  ASSERT_TRUE(service_.CreateKey("a", KeyAlgorithm::kEcP256, "x").ok());
  keys_.FailNextDestroy(Unavailable("hsm busy"));
  auto first = service_.DestroyKey("a");
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message().find("run the command again"), std::string::npos);
  EXPECT_EQ(store_.GetKeyByName("a")->state, store::KeyState::kDestroyed);
  EXPECT_EQ(keys_.KeyCount(), 1u);
  ASSERT_TRUE(service_.DestroyKey("a").ok());
  EXPECT_EQ(keys_.KeyCount(), 0u);
  EXPECT_EQ(service_.EnableKey("a").error().code(), ErrorCode::kFailedPrecondition);
  auto shown = service_.ShowKey("a");
  ASSERT_TRUE(shown.ok());
  EXPECT_FALSE(shown->present_in_hsm);
  EXPECT_EQ(service_.CreateKey("a", KeyAlgorithm::kEcP256, "x").error().code(),
            ErrorCode::kAlreadyExists);
}

TEST_F(KeyServiceTest, CsrIsSignedByTheKey) {
  ASSERT_TRUE(service_.CreateKey("a", KeyAlgorithm::kEcP384, "x").ok());
  auto csr = service_.CreateCsr("a", "/CN=Example/O=Example Ltd/C=GB");
  ASSERT_TRUE(csr.ok()) << csr.error().message();
  EXPECT_NE(csr->find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  EXPECT_EQ(service_.CreateCsr("a", "no-slash").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_.CreateCsr("missing", "/CN=x").error().code(), ErrorCode::kNotFound);
}

TEST_F(KeyServiceTest, ImportRefusesGarbageAndKeepsOldChain) {
  ASSERT_TRUE(service_.CreateKey("a", KeyAlgorithm::kEcP256, "x").ok());
  auto r = service_.ImportCertificateChain("a", "not a certificate");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_.GetKeyByName("a")->certificate_chain_pem.empty());
}

}  // namespace
}  // namespace signet::service
