#include "audit/entry.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace signet::audit {
namespace {

using nlohmann::json;

// The definition of canonical (entry.h): dump() of the parse equals the text; plus the depth limit.
bool CanonicalByDefinition(std::string_view text) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  if (max_depth > kMaxEntryDepth) return false;
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return false;
  try {
    return doc.dump(-1, ' ', false, json::error_handler_t::strict) == text;
  } catch (const std::exception&) {
    return false;
  }
}

const std::string kEntry =
    R"({"action":"sign","actor":{"account_id":"a1","auth_method":"mtls","roles":["signer"]},)"
    R"("details":{},"index":42,"object":"release-key","outcome":"success",)"
    R"("signature":{"hashes":["9f86d081"]},"time_unix":1795440201})";

TEST(EntryTest, ReadsIndexAndAction) {
  auto fields = ParseEntryFields(kEntry);
  ASSERT_TRUE(fields.ok()) << fields.error().message();
  EXPECT_EQ(fields->index.value(), 42u);
  EXPECT_EQ(fields->action, "sign");
  EXPECT_FALSE(fields->checkpoint_note.has_value());
}

TEST(EntryTest, ReadsCheckpointNoteDecoded) {
  const std::string note = "signet.test/log\n7\nabc=\n\n\xE2\x80\x94 signet.test/log AAAA\n";
  json entry = {{"action", "log_checkpoint"},
                {"details", {{"checkpoint", note}, {"size", "7"}}},
                {"index", 9}};
  auto fields = ParseEntryFields(entry.dump());
  ASSERT_TRUE(fields.ok()) << fields.error().message();
  EXPECT_EQ(fields->index.value(), 9u);
  ASSERT_TRUE(fields->checkpoint_note.has_value());
  EXPECT_EQ(*fields->checkpoint_note, note);
  EXPECT_EQ(fields->checkpoint_size, std::optional<std::string>("7"));
  EXPECT_FALSE(fields->checkpoint_root.has_value());
}

// "size" and "root" beside the note, when present, are strings; only a checkpoint entry's count.
TEST(EntryTest, CheckpointSizeAndRootMustBeStringsOnBothPaths) {
  const std::string head = R"({"action":"log_checkpoint","details":{"checkpoint":"n\n")";
  for (const char* extra : {"", R"(,"ratio":0.5)"}) {  // fast path, then parse + dump
    const std::string good = head + extra + R"(,"root":"AAA=","size":"3"},"index":4})";
    auto fields = ParseEntryFields(good);
    ASSERT_TRUE(fields.ok()) << good << ": " << fields.error().message();
    EXPECT_EQ(fields->checkpoint_root, std::optional<std::string>("AAA=")) << good;
    EXPECT_EQ(fields->checkpoint_size, std::optional<std::string>("3")) << good;
    for (const char* bad : {R"("size":3)", R"("size":{})", R"("root":null,"size":"3")"}) {
      const std::string text = head + extra + "," + bad + R"(},"index":4})";
      auto refused = ParseEntryFields(text);
      ASSERT_FALSE(refused.ok()) << text;
      EXPECT_NE(refused.error().message().find("must be a string"), std::string::npos)
          << text << ": " << refused.error().message();
    }
  }
  // Another action's details may hold anything under those names.
  auto sign = ParseEntryFields(R"({"action":"sign","details":{"size":3},"index":1})");
  ASSERT_TRUE(sign.ok()) << sign.error().message();
  EXPECT_FALSE(sign->checkpoint_size.has_value());
  // Only details' own members count: deeper ones, and top-level ones, are not the stated size.
  for (const char* text : {
           R"({"action":"log_checkpoint","details":{"checkpoint":"n\n","x":{"root":1,"size":2}},"index":4,"size":5})",
           R"({"action":"log_checkpoint","details":{"a":[{"size":1}],"checkpoint":"n\n"},"index":4})"}) {
    auto nested = ParseEntryFields(text);
    ASSERT_TRUE(nested.ok()) << text << ": " << nested.error().message();
    EXPECT_FALSE(nested->checkpoint_size.has_value()) << text;
    EXPECT_FALSE(nested->checkpoint_root.has_value()) << text;
  }
  // An escaped string is decoded.
  auto escaped = ParseEntryFields(
      R"({"action":"log_checkpoint","details":{"checkpoint":"n\n","root":"a\"b","size":"7"},"index":4})");
  ASSERT_TRUE(escaped.ok()) << escaped.error().message();
  EXPECT_EQ(escaped->checkpoint_root, std::optional<std::string>("a\"b"));
}

TEST(EntryTest, ReadsFieldsThroughTheSlowPath) {
  // A fraction elsewhere in the entry sends it to parse + dump; the fields come out the same.
  json entry = {{"action", "log_checkpoint"},
                {"details", {{"checkpoint", "n\n"}, {"ratio", 0.5}}},
                {"index", 3}};
  const std::string text = entry.dump();
  ASSERT_NE(text.find("0.5"), std::string::npos);
  auto fields = ParseEntryFields(text);
  ASSERT_TRUE(fields.ok()) << fields.error().message();
  EXPECT_EQ(fields->index.value(), 3u);
  EXPECT_EQ(fields->checkpoint_note, std::optional<std::string>("n\n"));
}

TEST(EntryTest, RejectsCheckpointEntryWithoutNote) {
  auto fields = ParseEntryFields(R"({"action":"log_checkpoint","details":{},"index":1})");
  ASSERT_FALSE(fields.ok());
  EXPECT_NE(fields.error().message().find("checkpoint"), std::string::npos);
}

TEST(EntryTest, RejectsMissingOrWrongFields) {
  for (const char* text : {
           R"({"action":"sign"})",              // no index
           R"({"action":"sign","index":-1})",   // negative
           R"({"action":"sign","index":"1"})",  // a string
           R"({"action":"sign","index":1.0})",  // canonical, but not an integer
           R"({"index":1})",                    // no action
           R"({"action":"","index":1})",        // empty action
           R"({"action":7,"index":1})",         // not a string
           R"([{"action":"sign","index":1}])",  // not an object
       }) {
    auto fields = ParseEntryFields(text);
    EXPECT_FALSE(fields.ok()) << text;
    if (!fields.ok()) {
      EXPECT_EQ(fields.error().code(), ErrorCode::kInvalidArgument) << text;
    }
  }
}

TEST(EntryTest, RejectsEmptyAndOversizedEntries) {
  EXPECT_FALSE(ParseEntryFields("").ok());
  std::string big =
      R"({"action":"sign","details":{"x":")" + std::string(kMaxEntrySize, 'a') + R"("},"index":1})";
  auto fields = ParseEntryFields(big);
  ASSERT_FALSE(fields.ok());
  EXPECT_NE(fields.error().message().find("65535"), std::string::npos);
}

TEST(EntryTest, RejectsNonCanonicalJson) {
  for (const char* text : {
           R"({"index":1,"action":"sign"})",                 // keys out of order
           R"({"action":"sign","action":"x","index":1})",    // a key twice
           R"({"action":"sign", "index":1})",                // whitespace
           R"( {"action":"sign","index":1})",                // leading whitespace
           R"({"action":"sign","index":1} )",                // trailing whitespace
           R"({"action":"sign","index":01})",                // leading zero
           R"({"action":"sign","index":1,"x":-0})",          // "-0"
           R"({"action":"si\/gn","index":1})",               // needless escape
           R"({"action":"\u0073ign","index":1})",            // needless \u escape
           R"({"action":"a\u001Fb","index":1})",             // upper-case hex
           R"({"action":"a\u000ab","index":1})",             // \u000a for \n
           "{\"action\":\"a\x01\",\"index\":1}",             // raw control character
           "{\"action\":\"\xC3\",\"index\":1}",              // truncated UTF-8
           "{\"action\":\"\xC0\xAF\",\"index\":1}",          // overlong UTF-8
           "{\"action\":\"\xED\xA0\x80\",\"index\":1}",      // a surrogate in UTF-8
           "\xEF\xBB\xBF{\"action\":\"sign\",\"index\":1}",  // byte-order mark
           R"({"action":"sign","index":1}{})",               // trailing bytes
           R"({"action":"sign","index":1,"x":1e2})",         // dump writes 100.0
       }) {
    auto fields = ParseEntryFields(text);
    EXPECT_FALSE(fields.ok()) << text;
    EXPECT_FALSE(CanonicalByDefinition(text)) << text;
  }
}

TEST(EntryTest, AcceptsCanonicalEscapesAndUnicode) {
  json entry = {
      {"action", "sign"},
      {"index", 5},
      {"object", "tab\there \"quoted\" back\\slash \x01 \x7f caf\xC3\xA9 \xF0\x9F\x94\x91"}};
  const std::string text = entry.dump();
  auto fields = ParseEntryFields(text);
  EXPECT_TRUE(fields.ok()) << text << ": " << fields.error().message();
}

TEST(EntryTest, RefusesDeepNesting) {
  std::string deep = R"({"action":"sign","index":1,"x":)";
  for (int i = 0; i < kMaxEntryDepth; ++i) deep += "[";
  for (int i = 0; i < kMaxEntryDepth; ++i) deep += "]";
  deep += "}";
  auto fields = ParseEntryFields(deep);
  ASSERT_FALSE(fields.ok());
  EXPECT_NE(fields.error().message().find("nested"), std::string::npos);
}

TEST(EntryTest, AcceptsNestingUpToTheLimit) {
  // The entry object is level 1, so kMaxEntryDepth - 1 containers inside it (arrays and objects
  // by turns) reach the limit exactly; one more is refused.
  for (int extra = 0; extra <= 1; ++extra) {
    std::string open = R"({"action":"sign","index":1,"x":)";
    std::string close = "}";
    for (int level = 2; level <= kMaxEntryDepth + extra; ++level) {
      open += level % 2 == 0 ? "[" : R"({"a":)";
      close.insert(0, level % 2 == 0 ? "]" : "}");
    }
    const std::string deep = open + "0" + close;
    ASSERT_EQ(CheckCanonicalJson(deep).ok(), CanonicalByDefinition(deep));
    auto fields = ParseEntryFields(deep);
    if (extra == 0) {
      ASSERT_TRUE(fields.ok()) << fields.error().message();
      EXPECT_EQ(fields->index.value(), 1u);
    } else {
      ASSERT_FALSE(fields.ok());
      EXPECT_NE(fields.error().message().find("nested"), std::string::npos);
    }
  }
}

TEST(EntryTest, ReadsFieldsAfterNestedValues) {
  // Captures of the top-level members must not be confused by members of the same name deeper
  // down, nor by containers closing just before them.
  json entry = {{"a", {{"action", "inner"}, {"index", 7}, {"x", {{"y", json::array({1, 2})}}}}},
                {"action", "log_checkpoint"},
                {"b", json::array({json::object(), json::array()})},
                {"details", {{"a", {{"checkpoint", "inner"}}}, {"checkpoint", "outer\n"}}},
                {"index", 12},
                {"z", {{"details", {{"checkpoint", "other"}}}}}};
  auto fields = ParseEntryFields(entry.dump());
  ASSERT_TRUE(fields.ok()) << fields.error().message();
  EXPECT_EQ(fields->index.value(), 12u);
  EXPECT_EQ(fields->action, "log_checkpoint");
  EXPECT_EQ(fields->checkpoint_note, std::optional<std::string>("outer\n"));
}

TEST(EntryTest, CheckCanonicalJsonAgreesWithDefinitionOnSamples) {
  for (const char* text : {
           "0",
           "-1",
           "123456789012345678",
           "1234567890123456789",
           "18446744073709551615",
           "18446744073709551616",
           "-9223372036854775808",
           "1.5",
           "1.0",
           "-0.0",
           "1e5",
           "true",
           "null",
           "[]",
           "{}",
           "[1,2]",
           "[1, 2]",
           R"({"a":1,"b":2})",
           R"({"b":1,"a":2})",
           R"({"\u0061":1})",
           R"({"a\nb":1,"a\tb":2})",
           R"("\u00e9")",
           "\"\xC3\xA9\"",
           R"(["\ud83d\ude00"])",
           R"(["\b\f\n\r\t"])",
           "\"\x7f\"",
           R"({"a":{}})",
           "",
           "[",
           "]",
           "nul",
           R"({"a":1,})",
           R"([1,])",
       }) {
    EXPECT_EQ(CheckCanonicalJson(text).ok(), CanonicalByDefinition(text)) << text;
  }
}

// Random edits of a real entry: the single pass and the definition must always agree.
TEST(EntryTest, CheckCanonicalJsonAgreesWithDefinitionOnMutations) {
  json entry = {{"action", "sign"},
                {"actor", {{"account_name", "build \"bot\""}, {"roles", {"signer", "auditor"}}}},
                {"details", {{"note", "caf\xC3\xA9\n"}, {"ratio", 0.25}}},
                {"index", 12345},
                {"time_unix", 1795440201}};
  const std::string base = entry.dump();
  const std::string alphabet = "{}[]\":,\\/ 0123456789-+.eEtrufalsn\n\x01\x7f\xC3\xA9\xED\xF0ux";
  std::mt19937 rng(20261122);
  int disagreements = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          text.erase(at, 1);
          break;
      }
    }
    if (CheckCanonicalJson(text).ok() != CanonicalByDefinition(text)) {
      ++disagreements;
      ADD_FAILURE() << "disagree on: " << text;
      if (disagreements > 5) break;
    }
  }
}

}  // namespace
}  // namespace signet::audit
