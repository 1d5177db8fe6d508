// The Argon2id and liboath adapters, and the TOTP enrolment helpers, against known answers.
#include <gtest/gtest.h>

#include <string>

#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/totp.h"

namespace signet::service {
namespace {

// Small enough to keep the tests fast; the production default is 64 MiB.
constexpr Argon2Parameters kFastArgon2{.iterations = 1, .memory_kib = 256, .parallelism = 1};

TEST(Argon2PasswordHasherTest, HashIsAnArgon2idEncodedString) {
  Argon2PasswordHasher hasher(kFastArgon2);
  Result<std::string> hash = hasher.Hash(SecretBytes("correct horse battery staple"));
  ASSERT_TRUE(hash.ok()) << hash.error().message();
  EXPECT_EQ(hash->rfind("$argon2id$v=19$m=256,t=1,p=1$", 0), 0u) << *hash;
  EXPECT_EQ(hash->find("correct horse"), std::string::npos);
}

TEST(Argon2PasswordHasherTest, DefaultParametersAreProductionStrength) {
  Argon2PasswordHasher hasher;
  Result<std::string> hash = hasher.Hash(SecretBytes("correct horse battery staple"));
  ASSERT_TRUE(hash.ok()) << hash.error().message();
  EXPECT_EQ(hash->rfind("$argon2id$v=19$m=65536,t=3,p=1$", 0), 0u) << *hash;
}

TEST(Argon2PasswordHasherTest, VerifyAcceptsTheRightPasswordOnly) {
  Argon2PasswordHasher hasher(kFastArgon2);
  Result<std::string> hash = hasher.Hash(SecretBytes("correct horse battery staple"));
  ASSERT_TRUE(hash.ok());
  Result<bool> right = hasher.Verify(*hash, SecretBytes("correct horse battery staple"));
  ASSERT_TRUE(right.ok()) << right.error().message();
  EXPECT_TRUE(*right);
  Result<bool> wrong = hasher.Verify(*hash, SecretBytes("correct horse battery stapler"));
  ASSERT_TRUE(wrong.ok());
  EXPECT_FALSE(*wrong);
  Result<bool> empty = hasher.Verify(*hash, SecretBytes());
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(*empty);
}

TEST(Argon2PasswordHasherTest, SamePasswordHashesDifferently) {
  Argon2PasswordHasher hasher(kFastArgon2);
  Result<std::string> a = hasher.Hash(SecretBytes("same password here"));
  Result<std::string> b = hasher.Hash(SecretBytes("same password here"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(Argon2PasswordHasherTest, HashMadeWithOtherParametersStillVerifies) {
  Argon2PasswordHasher old_hasher(kFastArgon2);
  Result<std::string> hash = old_hasher.Hash(SecretBytes("a password of old"));
  ASSERT_TRUE(hash.ok());
  Argon2PasswordHasher new_hasher({.iterations = 2, .memory_kib = 512, .parallelism = 1});
  Result<bool> ok = new_hasher.Verify(*hash, SecretBytes("a password of old"));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(*ok);
}

TEST(Argon2PasswordHasherTest, EmptyPasswordIsInvalidArgument) {
  Argon2PasswordHasher hasher(kFastArgon2);
  Result<std::string> hash = hasher.Hash(SecretBytes());
  ASSERT_FALSE(hash.ok());
  EXPECT_EQ(hash.error().code(), ErrorCode::kInvalidArgument);
}

TEST(Argon2PasswordHasherTest, GarbageHashIsDataLoss) {
  Argon2PasswordHasher hasher(kFastArgon2);
  for (const char* garbage : {"", "plaintext", "$argon2i$v=19$m=256,t=1,p=1$AAAA$AAAA",
                              "$argon2id$v=19$m=256,t=1,p=1$!!!$???"}) {
    SCOPED_TRACE(garbage);
    Result<bool> ok = hasher.Verify(garbage, SecretBytes("whatever it is"));
    ASSERT_FALSE(ok.ok());
    EXPECT_EQ(ok.error().code(), ErrorCode::kDataLoss);
  }
}

// ---- TOTP (RFC 6238 Appendix B, SHA-1 rows; seed "12345678901234567890") ----

const SecretBytes& Rfc6238Seed() {
  static const SecretBytes* seed = new SecretBytes(std::string_view("12345678901234567890"));
  return *seed;
}

struct Vector {
  int64_t time;
  const char* code8;
};
constexpr Vector kRfc6238Sha1[] = {
    {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
    {1234567890, "89005924"}, {2000000000, "69279037"},
    // The last row (20000000000, year 2603) is left out: TimePoint counts nanoseconds in 64 bits
    // and ends in 2262.
};

TEST(OathTotpTest, GeneratesRfc6238EightDigitCodes) {
  OathTotp totp({.digits = 8});
  for (const Vector& v : kRfc6238Sha1) {
    SCOPED_TRACE(v.time);
    Result<SecretBytes> code = totp.Generate(Rfc6238Seed(), FromUnixSeconds(v.time));
    ASSERT_TRUE(code.ok()) << code.error().message();
    EXPECT_EQ(code->text_view(), v.code8);
  }
}

TEST(OathTotpTest, GeneratesRfc6238SixDigitCodes) {
  OathTotp totp;
  for (const Vector& v : kRfc6238Sha1) {
    SCOPED_TRACE(v.time);
    Result<SecretBytes> code = totp.Generate(Rfc6238Seed(), FromUnixSeconds(v.time));
    ASSERT_TRUE(code.ok()) << code.error().message();
    EXPECT_EQ(code->text_view(), std::string_view(v.code8).substr(2));
  }
}

TEST(OathTotpTest, VerifyReturnsTheMatchedStep) {
  OathTotp totp({.digits = 8});
  for (const Vector& v : kRfc6238Sha1) {
    SCOPED_TRACE(v.time);
    Result<std::optional<int64_t>> step =
        totp.Verify(Rfc6238Seed(), v.code8, FromUnixSeconds(v.time));
    ASSERT_TRUE(step.ok()) << step.error().message();
    ASSERT_TRUE(step->has_value());
    EXPECT_EQ(**step, v.time / 30);
  }
}

TEST(OathTotpTest, OneStepOfSkewEitherWayIsAccepted) {
  OathTotp totp;
  const TimePoint at = FromUnixSeconds(1111111111);
  Result<SecretBytes> code = totp.Generate(Rfc6238Seed(), at);
  ASSERT_TRUE(code.ok());
  for (int offset : {-30, 30}) {
    SCOPED_TRACE(offset);
    Result<std::optional<int64_t>> step =
        totp.Verify(Rfc6238Seed(), code->text_view(), at + std::chrono::seconds(offset));
    ASSERT_TRUE(step.ok());
    ASSERT_TRUE(step->has_value());
    EXPECT_EQ(**step, 1111111111 / 30);
  }
}

TEST(OathTotpTest, TwoStepsOfSkewAreRefused) {
  OathTotp totp;
  const TimePoint at = FromUnixSeconds(1111111111);
  Result<SecretBytes> code = totp.Generate(Rfc6238Seed(), at);
  ASSERT_TRUE(code.ok());
  for (int offset : {-60, 60, -90, 90}) {
    SCOPED_TRACE(offset);
    Result<std::optional<int64_t>> step =
        totp.Verify(Rfc6238Seed(), code->text_view(), at + std::chrono::seconds(offset));
    ASSERT_TRUE(step.ok());
    EXPECT_FALSE(step->has_value());
  }
}

TEST(OathTotpTest, MalformedCodesMatchNothing) {
  OathTotp totp;
  const TimePoint at = FromUnixSeconds(1111111111);
  for (const char* code : {"", "05047", "0504711", "05047a", " 050471", "14050471"}) {
    SCOPED_TRACE(code);
    Result<std::optional<int64_t>> step = totp.Verify(Rfc6238Seed(), code, at);
    ASSERT_TRUE(step.ok());
    EXPECT_FALSE(step->has_value());
  }
  Result<std::optional<int64_t>> right = totp.Verify(Rfc6238Seed(), "050471", at);
  ASSERT_TRUE(right.ok());
  EXPECT_TRUE(right->has_value());
}

TEST(OathTotpTest, EmptySeedIsInvalidArgument) {
  OathTotp totp;
  Result<SecretBytes> code = totp.Generate(SecretBytes(), FromUnixSeconds(59));
  ASSERT_FALSE(code.ok());
  EXPECT_EQ(code.error().code(), ErrorCode::kInvalidArgument);
}

// RFC 4648 §10 test vectors, without padding.
TEST(TotpEnrolmentTest, Base32EncodesRfc4648Vectors) {
  EXPECT_EQ(Base32Encode(AsBytes("")), "");
  EXPECT_EQ(Base32Encode(AsBytes("f")), "MY");
  EXPECT_EQ(Base32Encode(AsBytes("fo")), "MZXQ");
  EXPECT_EQ(Base32Encode(AsBytes("foo")), "MZXW6");
  EXPECT_EQ(Base32Encode(AsBytes("foob")), "MZXW6YQ");
  EXPECT_EQ(Base32Encode(AsBytes("fooba")), "MZXW6YTB");
  EXPECT_EQ(Base32Encode(AsBytes("foobar")), "MZXW6YTBOI");
  EXPECT_EQ(Base32Encode(AsBytes("12345678901234567890")), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

TEST(TotpEnrolmentTest, UriHasTheKeyUriFormat) {
  SecretBytes uri = TotpUri("signet", "alice", Rfc6238Seed(), TotpParameters{});
  EXPECT_EQ(uri.text_view(),
            "otpauth://totp/signet:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=signet"
            "&algorithm=SHA1&digits=6&period=30");
}

TEST(TotpEnrolmentTest, UriPercentEncodesNames) {
  SecretBytes uri = TotpUri("signet dev", "bob@example.com", Rfc6238Seed(), TotpParameters{});
  EXPECT_EQ(uri.text_view().rfind("otpauth://totp/signet%20dev:bob%40example.com?secret=", 0), 0u)
      << uri.text_view();
  EXPECT_NE(uri.text_view().find("&issuer=signet%20dev&"), std::string_view::npos);
}

}  // namespace
}  // namespace signet::service
