// AccountService with the real PKCS#11 secret sealer (a throwaway SoftHSM2 token), Argon2id,
// liboath and SQLite: the production object graph, with a FakeClock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/pkcs11_secret_sealer.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"
#include "service/accounts.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::service {
namespace {

using namespace std::chrono_literals;

class AccountServiceHsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hsm::testing::SoftHsmSandbox& sandbox = hsm::testing::SharedSoftHsmSandbox();
    static int token_number = 0;
    Result<hsm::Pkcs11Options> options =
        sandbox.CreateToken("accounts-" + std::to_string(token_number++));
    ASSERT_TRUE(options.ok()) << options.error().message();
    auto key_store = hsm::Pkcs11KeyStore::Open(std::move(*options));
    ASSERT_TRUE(key_store.ok()) << key_store.error().message();
    key_store_ = std::move(*key_store);
    auto sealer = hsm::Pkcs11SecretSealer::Open(*key_store_);
    ASSERT_TRUE(sealer.ok()) << sealer.error().message();
    sealer_ = std::move(*sealer);
    char tmpl[] = "/tmp/signet-accounts-hsm-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto store = store::SqliteStore::Open(dir_ + "/signet.db");
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(*store);
    service_ = std::make_unique<AccountService>(*store_, *sealer_, hasher_, totp_, clock_);
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    sealer_.reset();
    key_store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  FakeClock clock_{FromUnixSeconds(1'700'000'010)};
  Argon2PasswordHasher hasher_{{.iterations = 1, .memory_kib = 256, .parallelism = 1}};
  OathTotp totp_;
  std::string dir_;
  std::unique_ptr<hsm::Pkcs11KeyStore> key_store_;
  std::unique_ptr<hsm::Pkcs11SecretSealer> sealer_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<AccountService> service_;
};

TEST_F(AccountServiceHsmTest, SeedSealedInTheHsmOpensForLogin) {
  Result<NewPerson> alice =
      service_->CreatePerson(SystemPrincipal(), "alice", RoleSet{Role::kSigner});
  ASSERT_TRUE(alice.ok()) << alice.error().message();
  Result<store::AccountRecord> record = store_->GetAccountByName("alice");
  ASSERT_TRUE(record.ok());
  ASSERT_TRUE(record->totp_seed_sealed.has_value());
  EXPECT_EQ(record->totp_seed_sealed->size(), 1u + 12 + 20 + 16);

  // The app's view of the seed: unseal it the way the service does, compare with the enrolment.
  Result<SecretBytes> seed = sealer_->Unseal(*record->totp_seed_sealed,
                                             AsBytes("signet totp-seed v1 account=" + record->id));
  ASSERT_TRUE(seed.ok()) << seed.error().message();
  EXPECT_EQ(Base32Encode(seed->view()), alice->totp.secret_base32.text_view());

  Result<SecretBytes> code = totp_.Generate(*seed, clock_.Now());
  ASSERT_TRUE(code.ok());
  Result<BearerToken> token = service_->LoginWithPassword("alice", alice->one_time_password,
                                                          code->text_view(), {"127.0.0.1:1"});
  ASSERT_TRUE(token.ok()) << token.error().message();
  Result<Principal> who = service_->Authenticate(token->token.text_view());
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->name, "alice");
}

TEST_F(AccountServiceHsmTest, TamperedSealedSeedIsDataLoss) {
  Result<NewPerson> alice = service_->CreatePerson(SystemPrincipal(), "alice", {});
  ASSERT_TRUE(alice.ok());
  Result<store::AccountRecord> record = store_->GetAccountByName("alice");
  Bytes tampered = *record->totp_seed_sealed;
  tampered[20] ^= 0x40;
  ASSERT_TRUE(store_->SetTotpSeed(record->id, tampered, clock_.Now()).ok());
  Result<BearerToken> token =
      service_->LoginWithPassword("alice", alice->one_time_password, "123456", {"127.0.0.1:1"});
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(token.error().message(), "sealed secret failed its integrity check");
}

}  // namespace
}  // namespace signet::service
