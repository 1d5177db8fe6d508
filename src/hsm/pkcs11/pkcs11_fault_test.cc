// Pkcs11KeyStore over the fault-injection shim (testing/fault_shim.cc), which forwards to SoftHSM2
// and fails chosen calls on request: device loss is recovered by re-initialising, persistent
// failures end in Unavailable, and the hot path stays free of session opening and object search.
// Runs in its own process so that the shim's store is the one that initialises SoftHSM.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/pkcs11_secret_sealer.h"
#include "hsm/pkcs11/testing/signature_check.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"

namespace signet::hsm {
namespace {

namespace hsmt = signet::hsm::testing;

using InjectFn = void (*)(CK_RV, int);
using InjectIntoFn = void (*)(const char*, CK_RV, int);
using ClearFn = void (*)();
using CallsFn = unsigned long (*)(const char*);

class FaultTest : public ::testing::Test {
 protected:
  static constexpr const char* kLabel = "signet-fault";

  static void SetUpTestSuite() {
    hsmt::SharedSoftHsmSandbox();
    setenv("SIGNET_SHIM_TARGET", hsmt::kSoftHsmModulePath, 1);
    Result<Pkcs11Options> options = hsmt::SharedSoftHsmSandbox().CreateToken(kLabel);
    if (!options.ok()) return Abandon(options.error().message());
    options->module_path = SIGNET_FAULT_SHIM_PATH;
    Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(*options));
    if (!store.ok()) return Abandon(store.error().message());
    store_ = std::move(*store);
    // The store loaded the shim; this only takes another reference to it.
    shim_ = dlopen(SIGNET_FAULT_SHIM_PATH, RTLD_NOW | RTLD_NOLOAD);
    if (shim_ == nullptr) return Abandon("shim not loaded");
    inject_ = reinterpret_cast<InjectFn>(dlsym(shim_, "signet_shim_inject"));
    inject_into_ = reinterpret_cast<InjectIntoFn>(dlsym(shim_, "signet_shim_inject_into"));
    clear_ = reinterpret_cast<ClearFn>(dlsym(shim_, "signet_shim_clear"));
    calls_ = reinterpret_cast<CallsFn>(dlsym(shim_, "signet_shim_calls"));
    if (!inject_ || !inject_into_ || !clear_ || !calls_) return Abandon("shim symbols missing");
    Result<GeneratedKey> key = store_->GenerateKey(KeyAlgorithm::kEcP256, "fault-ec");
    if (!key.ok()) return Abandon(key.error().message());
    key_ = std::make_unique<GeneratedKey>(std::move(*key));
  }

  static void TearDownTestSuite() {
    store_.reset();
    if (shim_ != nullptr) dlclose(shim_);
  }

  static void Abandon(std::string why) {
    setup_error_ = std::move(why);
    store_.reset();
  }

  void SetUp() override {
    if (!store_ || !key_) FAIL() << "setup: " << setup_error_;
    clear_();
  }
  void TearDown() override {
    if (clear_ != nullptr) clear_();
  }

  static Bytes DigestOf(int n) {
    return hsmt::Digest(HashAlgorithm::kSha256, AsBytes("fault " + std::to_string(n)));
  }

  static Result<Bytes> SignEc(int n) {
    return store_->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(n));
  }

  static void ExpectSignsAndVerifies(int n) {
    Result<Bytes> signature = SignEc(n);
    ASSERT_TRUE(signature.ok()) << signature.error().message();
    Result<bool> valid = hsmt::VerifySignature(key_->public_key_spki, SignatureScheme::kEcdsa,
                                               HashAlgorithm::kSha256, DigestOf(n), *signature);
    ASSERT_TRUE(valid.ok());
    EXPECT_TRUE(*valid);
  }

  static inline std::unique_ptr<Pkcs11KeyStore> store_;
  static inline std::unique_ptr<GeneratedKey> key_;
  static inline void* shim_ = nullptr;
  static inline InjectFn inject_ = nullptr;
  static inline InjectIntoFn inject_into_ = nullptr;
  static inline ClearFn clear_ = nullptr;
  static inline CallsFn calls_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(FaultTest, RecoversFromDeviceErrorsByReinitialising) {
  unsigned long initializes = calls_("C_Initialize");
  unsigned long finalizes = calls_("C_Finalize");
  inject_(CKR_DEVICE_ERROR, 2);
  inject_(CKR_DEVICE_REMOVED, 1);
  ExpectSignsAndVerifies(1);
  // The store initialised the module, so each of the three recoveries finalised and
  // re-initialised it.
  EXPECT_EQ(calls_("C_Initialize") - initializes, 3u);
  EXPECT_EQ(calls_("C_Finalize") - finalizes, 3u);
  ExpectSignsAndVerifies(2);
}

TEST_F(FaultTest, RecoversFromTokenNotPresentAndDeviceMemory) {
  inject_(CKR_TOKEN_NOT_PRESENT, 1);
  ExpectSignsAndVerifies(1);
  inject_(CKR_DEVICE_MEMORY, 1);
  ExpectSignsAndVerifies(2);
}

TEST_F(FaultTest, RecoversFromDeviceErrorInSign) {
  inject_into_("C_Sign", CKR_DEVICE_ERROR, 1);
  ExpectSignsAndVerifies(1);
}

TEST_F(FaultTest, RecoversWhenSessionsCannotBeOpenedForAWhile) {
  inject_(CKR_DEVICE_ERROR, 1);
  inject_into_("C_OpenSession", CKR_DEVICE_REMOVED, 2);
  ExpectSignsAndVerifies(1);
}

TEST_F(FaultTest, PersistentDeviceErrorIsUnavailableAndClears) {
  inject_(CKR_DEVICE_ERROR, 1000);
  Result<Bytes> signature = SignEc(1);
  ASSERT_FALSE(signature.ok());
  EXPECT_EQ(signature.error().code(), ErrorCode::kUnavailable);
  const std::string& message = signature.error().message();
  EXPECT_NE(message.find("token 'signet-fault'"), std::string::npos) << message;
  EXPECT_NE(message.find("CKR_DEVICE_ERROR"), std::string::npos) << message;
  EXPECT_NE(message.find("retry"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);

  clear_();
  ExpectSignsAndVerifies(2);
}

TEST_F(FaultTest, LostSessionIsReplaced) {
  inject_(CKR_SESSION_HANDLE_INVALID, 1);
  ExpectSignsAndVerifies(1);
  inject_(CKR_SESSION_CLOSED, 1);
  ExpectSignsAndVerifies(2);
}

TEST_F(FaultTest, LostLoginIsRepairedByLoggingIn) {
  unsigned long logins = calls_("C_Login");
  inject_(CKR_USER_NOT_LOGGED_IN, 1);
  ExpectSignsAndVerifies(1);
  EXPECT_GE(calls_("C_Login") - logins, 1u);
  inject_(CKR_KEY_HANDLE_INVALID, 1);
  ExpectSignsAndVerifies(2);
}

TEST_F(FaultTest, GeneralErrorIsReportedAndNotRetried) {
  ExpectSignsAndVerifies(0);
  unsigned long sign_inits = calls_("C_SignInit");
  inject_(CKR_GENERAL_ERROR, 1);
  Result<Bytes> signature = SignEc(1);
  ASSERT_FALSE(signature.ok());
  EXPECT_EQ(signature.error().code(), ErrorCode::kInternal);
  EXPECT_NE(signature.error().message().find("C_SignInit returned CKR_GENERAL_ERROR (0x5)"),
            std::string::npos)
      << signature.error().message();
  EXPECT_EQ(calls_("C_SignInit") - sign_inits, 1u);
  ExpectSignsAndVerifies(2);
}

// Keep in step with testing/fault_shim.cc: an injected kShimLie makes a call succeed with an
// answer no correct module gives.
constexpr CK_RV kShimLie = CKR_VENDOR_DEFINED + 0x11e;

// A module that answers what no correct one would is refused, not believed: more object handles
// than it was given room for (read past the array, they would be stack bytes), an attribute of
// 2^40 bytes, an RSA signature shorter than the modulus.
TEST_F(FaultTest, ImpossibleAnswersAreRefused) {
  ExpectSignsAndVerifies(0);
  inject_into_("C_FindObjects", kShimLie, 1);
  Result<std::vector<TokenKey>> listed = store_->ListKeys();
  ASSERT_FALSE(listed.ok());
  EXPECT_NE(listed.error().message().find("CKR_GENERAL_ERROR"), std::string::npos)
      << listed.error().message();
  ASSERT_TRUE(store_->ListKeys().ok());

  inject_into_("C_GetAttributeValue", kShimLie, 100);  // size queries only; others answer true
  Result<Bytes> spki = store_->PublicKey(key_->id);
  clear_();
  ASSERT_FALSE(spki.ok());
  EXPECT_NE(spki.error().message().find("CKR_GENERAL_ERROR"), std::string::npos)
      << spki.error().message();
  ASSERT_TRUE(store_->PublicKey(key_->id).ok());

  Result<GeneratedKey> rsa = store_->GenerateKey(KeyAlgorithm::kRsa3072, "fault-rsa");
  ASSERT_TRUE(rsa.ok()) << rsa.error().message();
  const Bytes digest = DigestOf(7);
  inject_into_("C_Sign", kShimLie, 1);
  Result<Bytes> short_signature =
      store_->Sign(rsa->id, SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, digest);
  ASSERT_FALSE(short_signature.ok());
  EXPECT_NE(short_signature.error().message().find("383-byte signature"), std::string::npos)
      << short_signature.error().message();
  EXPECT_TRUE(
      store_->Sign(rsa->id, SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, digest).ok());
  EXPECT_TRUE(store_->DestroyKey(rsa->id).ok());
}

TEST_F(FaultTest, HotPathOpensNoSessionAndSearchesNothing) {
  ExpectSignsAndVerifies(0);  // Warm: key handle cached, a session in the pool.
  unsigned long opens = calls_("C_OpenSession");
  unsigned long finds = calls_("C_FindObjectsInit");
  unsigned long sign_inits = calls_("C_SignInit");
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(SignEc(i).ok());
  EXPECT_EQ(calls_("C_OpenSession"), opens);
  EXPECT_EQ(calls_("C_FindObjectsInit"), finds);
  EXPECT_EQ(calls_("C_SignInit") - sign_inits, 200u);
}

TEST_F(FaultTest, InvalidInputNeverReachesTheModule) {
  ExpectSignsAndVerifies(0);
  unsigned long sign_inits = calls_("C_SignInit");
  EXPECT_EQ(store_->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, Bytes(20, 1))
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->Sign(key_->id, SignatureScheme::kRsaPss, HashAlgorithm::kSha256, Bytes(32, 1))
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(calls_("C_SignInit"), sign_inits);
}

TEST_F(FaultTest, LockedPinIsPermissionDenied) {
  inject_into_("C_Login", CKR_PIN_LOCKED, 1);
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = SIGNET_FAULT_SHIM_PATH;
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(store.error().message().find("CKR_PIN_LOCKED"), std::string::npos)
      << store.error().message();
}

// A session that does not answer C_GetSessionInfo during a recovery (a device error, not a handle
// the module no longer knows) is closed as it is dropped, not leaked in the module.
TEST_F(FaultTest, ASessionDroppedForAnErrorIsClosed) {
  const unsigned long opens = calls_("C_OpenSession");
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = SIGNET_FAULT_SHIM_PATH;
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_TRUE(store.ok()) << store.error().message();
  // Two threads at once until the pool holds a second session: the one recovery examines (the
  // failing one is dropped before it looks).
  std::atomic<bool> failed{false};
  for (int round = 0; round < 20 && calls_("C_OpenSession") - opens < 2; ++round) {
    std::vector<std::thread> signers;
    for (int t = 0; t < 2; ++t) {
      signers.emplace_back([&] {
        for (int i = 0; i < 50; ++i) {
          if (!(*store)
                   ->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(i))
                   .ok()) {
            failed = true;
          }
        }
      });
    }
    for (std::thread& t : signers) t.join();
  }
  ASSERT_FALSE(failed.load());
  ASSERT_GE(calls_("C_OpenSession") - opens, 2u) << "the pool never held two sessions";
  const unsigned long closes = calls_("C_CloseSession");
  inject_into_("C_SignInit", CKR_SESSION_HANDLE_INVALID, 1);
  inject_into_("C_GetSessionInfo", CKR_DEVICE_ERROR, 1);
  Result<Bytes> signature =
      (*store)->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(2));
  ASSERT_TRUE(signature.ok()) << signature.error().message();
  EXPECT_EQ(calls_("C_CloseSession") - closes, 1u);
}

// The session dies right after C_GenerateKeyPair, so the pair cannot be read nor destroyed on it:
// the retry removes it before generating again, and the token holds one new key, not two.
TEST_F(FaultTest, ARetriedGenerationLeavesOneKey) {
  Result<std::vector<TokenKey>> before = store_->ListKeys();
  ASSERT_TRUE(before.ok()) << before.error().message();
  inject_into_("C_GetAttributeValue", CKR_SESSION_HANDLE_INVALID, 1);
  inject_into_("C_DestroyObject", CKR_SESSION_HANDLE_INVALID, 2);
  Result<GeneratedKey> key = store_->GenerateKey(KeyAlgorithm::kEcP256, "retried");
  ASSERT_TRUE(key.ok()) << key.error().message();
  clear_();
  Result<std::vector<TokenKey>> after = store_->ListKeys();
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(after->size(), before->size() + 1);
  EXPECT_TRUE(store_->DestroyKey(key->id).ok());
}

// A PKCS#11 v2.20 module refuses CKA_COPYABLE (v2.40) with CKR_ATTRIBUTE_TYPE_INVALID: keys are
// generated without it, with every other protection, and sign.
TEST_F(FaultTest, AModuleWithoutCkaCopyableStillGeneratesProtectedKeys) {
  constexpr CK_RV kShimV220 = CKR_VENDOR_DEFINED + 0x220;  // fault_shim.cc
  const unsigned long before = calls_("C_GenerateKeyPair");
  inject_into_("C_GenerateKeyPair", kShimV220, 2);
  Result<GeneratedKey> key = store_->GenerateKey(KeyAlgorithm::kEcP256, "v2.20");
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(calls_("C_GenerateKeyPair") - before, 2u);
  Result<KeyProtection> protection = store_->Protection(key->id);
  ASSERT_TRUE(protection.ok()) << protection.error().message();
  EXPECT_TRUE(protection->local && protection->sensitive && !protection->extractable &&
              protection->never_extractable);
  Result<Bytes> signature =
      store_->Sign(key->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(1));
  EXPECT_TRUE(signature.ok()) << signature.error().message();
  EXPECT_TRUE(store_->DestroyKey(key->id).ok());

  // The TOTP sealing key likewise (the first Open on this token generates it).
  const unsigned long generations = calls_("C_GenerateKey");
  inject_into_("C_GenerateKey", kShimV220, 2);
  Result<std::unique_ptr<Pkcs11SecretSealer>> sealer =
      Pkcs11SecretSealer::Open(*store_, "v2.20 sealing key");
  ASSERT_TRUE(sealer.ok()) << sealer.error().message();
  EXPECT_EQ(calls_("C_GenerateKey") - generations, 2u);
  Result<Bytes> sealed = (*sealer)->Seal(AsBytes("seed"), AsBytes("aad"));
  ASSERT_TRUE(sealed.ok()) << sealed.error().message();
  Result<SecretBytes> opened = (*sealer)->Unseal(*sealed, AsBytes("aad"));
  ASSERT_TRUE(opened.ok()) << opened.error().message();
}

// A PIN the token refuses after a logout (changed by another tool) is offered once, not on every
// request: an HSM with a retry counter would otherwise lock it within seconds.
TEST_F(FaultTest, ARefusedPinIsNotTriedAgain) {
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = SIGNET_FAULT_SHIM_PATH;
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_TRUE(store.ok()) << store.error().message();
  ASSERT_TRUE(
      (*store)->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(1)).ok());
  const unsigned long logins = calls_("C_Login");
  inject_into_("C_SignInit", CKR_USER_NOT_LOGGED_IN, 100);
  inject_into_("C_Login", CKR_PIN_INCORRECT, 100);
  for (int i = 0; i < 5; ++i) {
    Result<Bytes> refused =
        (*store)->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(i));
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message().find("CKR_PIN_INCORRECT"), std::string::npos)
        << refused.error().message();
  }
  EXPECT_EQ(calls_("C_Login") - logins, 1u);
  // Logged out once more: the refusal is answered without offering the PIN again.
  clear_();
  inject_into_("C_SignInit", CKR_USER_NOT_LOGGED_IN, 100);
  Result<Bytes> later =
      (*store)->Sign(key_->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, DigestOf(9));
  ASSERT_FALSE(later.ok());
  EXPECT_NE(later.error().message().find("reopen the key store"), std::string::npos)
      << later.error().message();
  EXPECT_EQ(calls_("C_Login") - logins, 1u);
  // What the service's hsm health check asks: no longer fine.
  Result<TokenDescription> described = (*store)->DescribeToken();
  ASSERT_FALSE(described.ok());
  EXPECT_NE(described.error().message().find("refused the user PIN"), std::string::npos)
      << described.error().message();
}

TEST_F(FaultTest, SixThreadsShareAPoolOfTwoSessions) {
  Pkcs11Options options = hsmt::SoftHsmSandbox::OptionsFor(kLabel);
  options.module_path = SIGNET_FAULT_SHIM_PATH;
  options.max_sessions = 2;
  unsigned long opens = calls_("C_OpenSession");
  Result<std::unique_ptr<Pkcs11KeyStore>> small = Pkcs11KeyStore::Open(std::move(options));
  ASSERT_TRUE(small.ok()) << small.error().message();
  std::vector<std::string> failures(6);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        Result<Bytes> signature = (*small)->Sign(key_->id, SignatureScheme::kEcdsa,
                                                 HashAlgorithm::kSha256, DigestOf(t * 100 + i));
        if (!signature.ok()) {
          failures[static_cast<size_t>(t)] = signature.error().message();
          return;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 6; ++t) EXPECT_EQ(failures[static_cast<size_t>(t)], "") << t;
  EXPECT_LE(calls_("C_OpenSession") - opens, 2u);
}

TEST_F(FaultTest, DeviceErrorsWhileFourThreadsSign) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;
  std::vector<std::string> failures(kThreads);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<Bytes> signature = SignEc(t * 1000 + i);
        if (!signature.ok()) {
          failures[static_cast<size_t>(t)] = signature.error().message();
          break;
        }
      }
      done.fetch_add(1);
    });
  }
  for (int i = 0; i < 5 && done.load() < kThreads; ++i) {
    inject_(i % 2 == 0 ? CKR_DEVICE_ERROR : CKR_SESSION_HANDLE_INVALID, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[static_cast<size_t>(t)], "") << t;
}

}  // namespace
}  // namespace signet::hsm
