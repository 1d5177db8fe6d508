// The local/remote rule, and that a key read back from the management API's JSON prints exactly
// like the local record it came from.
#include "cli/key_backend.h"

#include <gtest/gtest.h>

#include "cli/output.h"
#include "cli/remote_context.h"

namespace signet::cli {
namespace {

TEST(KeyTargetTest, ServerAlwaysMeansRemote) {
  EXPECT_EQ(ChooseKeyTarget(true, false, false), KeyTarget::kRemote);
  EXPECT_EQ(ChooseKeyTarget(true, true, false), KeyTarget::kRemote);
  EXPECT_EQ(ChooseKeyTarget(true, true, true), KeyTarget::kRemote);
}

TEST(KeyTargetTest, SessionMeansRemoteOnlyWithoutADataDir) {
  EXPECT_EQ(ChooseKeyTarget(false, false, true), KeyTarget::kRemote);
  EXPECT_EQ(ChooseKeyTarget(false, true, true), KeyTarget::kLocal);
}

TEST(KeyTargetTest, NothingGivenMeansLocal) {
  EXPECT_EQ(ChooseKeyTarget(false, false, false), KeyTarget::kLocal);
  EXPECT_EQ(ChooseKeyTarget(false, true, false), KeyTarget::kLocal);
}

TEST(KeyTargetTest, ServerUrlsCompareWithoutTrailingSlash) {
  EXPECT_EQ(NormalizeServerUrl("https://h:1/"), "https://h:1");
  EXPECT_EQ(NormalizeServerUrl("https://h:1"), "https://h:1");
}

store::KeyRecord SampleKey() {
  store::KeyRecord r;
  r.id = "k_3f2a9c0d1e5b4a7c";
  r.name = "release-2026";
  r.algorithm = "ec-p256";
  r.state = store::KeyState::kDisabled;
  r.owner = "admin";
  r.token_label = "signet";
  r.token_serial = "0123456789abcdef";
  r.hsm_key_id = "a1b2c3";
  // 100 base64 characters, so the PEM wraps onto a second line.
  r.public_key_spki = std::string(64, 'A') + std::string(36, 'B');
  r.certificate_chain_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  r.created_at = FromUnixSeconds(1'795'872'201);
  r.updated_at = FromUnixSeconds(1'795'872'299);
  return r;
}

TEST(KeyJsonTest, RecordRoundTripsThroughTheApiJson) {
  store::KeyRecord r = SampleKey();
  auto back = KeyRecordFromJson(KeyToJson(r));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->id, r.id);
  EXPECT_EQ(back->name, r.name);
  EXPECT_EQ(back->algorithm, r.algorithm);
  EXPECT_EQ(back->state, r.state);
  EXPECT_EQ(back->owner, r.owner);
  EXPECT_EQ(back->token_label, r.token_label);
  EXPECT_EQ(back->token_serial, r.token_serial);
  EXPECT_EQ(back->hsm_key_id, r.hsm_key_id);
  EXPECT_EQ(back->public_key_spki, r.public_key_spki);
  EXPECT_EQ(back->certificate_chain_pem, r.certificate_chain_pem);
  EXPECT_EQ(back->created_at, r.created_at);
  EXPECT_EQ(back->updated_at, r.updated_at);
  // So remote `key list` prints exactly what local `key list` prints.
  EXPECT_EQ(KeyToJson(*back), KeyToJson(r));
  EXPECT_EQ(KeyTable({*back}), KeyTable({r}));
}

TEST(KeyJsonTest, DetailsRoundTripThroughTheApiJson) {
  service::KeyDetails d;
  d.record = SampleKey();
  d.present_in_hsm = true;
  d.public_key_matches_hsm = true;
  d.protection.local = true;
  d.protection.sensitive = true;
  d.protection.always_sensitive = true;
  d.protection.extractable = false;
  d.protection.never_extractable = true;
  d.protection.is_token_object = true;
  d.protection.is_private_object = true;
  auto back = KeyDetailsFromJson(KeyDetailsToJson(d));
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(KeyDetailsToJson(*back), KeyDetailsToJson(d));
  EXPECT_EQ(KeyDetailsText(*back), KeyDetailsText(d));

  service::KeyDetails gone;
  gone.record = SampleKey();
  gone.record.state = store::KeyState::kDestroyed;
  auto back_gone = KeyDetailsFromJson(KeyDetailsToJson(gone));
  ASSERT_TRUE(back_gone.ok()) << back_gone.error().message();
  EXPECT_FALSE(back_gone->present_in_hsm);
  EXPECT_EQ(KeyDetailsText(*back_gone), KeyDetailsText(gone));

  service::KeyDetails elsewhere;
  elsewhere.record = SampleKey();
  elsewhere.on_open_token = false;
  auto back_elsewhere = KeyDetailsFromJson(KeyDetailsToJson(elsewhere));
  ASSERT_TRUE(back_elsewhere.ok()) << back_elsewhere.error().message();
  EXPECT_FALSE(back_elsewhere->on_open_token);
  EXPECT_EQ(KeyDetailsToJson(*back_elsewhere), KeyDetailsToJson(elsewhere));
  EXPECT_NE(KeyDetailsText(elsewhere).find("on another token"), std::string::npos);
}

TEST(KeyJsonTest, AnswerWithoutADocumentedFieldIsAnInternalErrorNamingIt) {
  for (const char* field : {"name", "state", "public_key_pem", "created_at"}) {
    nlohmann::json j = KeyToJson(SampleKey());
    j.erase(field);
    auto r = KeyRecordFromJson(j);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
    EXPECT_NE(r.error().message().find(field), std::string::npos) << r.error().message();
  }
  nlohmann::json j = KeyToJson(SampleKey());
  j["state"] = "melted";
  EXPECT_FALSE(KeyRecordFromJson(j).ok());
  j = KeyToJson(SampleKey());
  j["public_key_pem"] = "not pem";
  EXPECT_FALSE(KeyRecordFromJson(j).ok());
  EXPECT_FALSE(KeyRecordFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace signet::cli
