#include "audit/export.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "audit/entry.h"
#include "audit/testing/test_log.h"

namespace signet::audit {
namespace {

using testing::TestEd25519Key;
using testing::TestLog;

class ExportTest : public ::testing::Test {
 protected:
  ExportTest() : log_("signet.test/export", key_) {
    for (int c = 0; c < 6; ++c) {
      log_.Grow(300, 0);
      log_.AppendCheckpoint(c % 2);
    }
    log_.Grow(11, 0);
    std::string dir_template = (std::filesystem::temp_directory_path() / "export-XXXXXX").string();
    if (::mkdtemp(dir_template.data()) == nullptr) std::abort();
    dir_ = dir_template;
  }
  ~ExportTest() override { std::filesystem::remove_all(dir_); }

  // Writes the export of entries `entries` with the latest checkpoint.
  std::string Write(const std::vector<std::string>& lines, const std::string& name = "log.jsonl") {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    for (const std::string& line : lines) out << line;
    return path;
  }

  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    lines.push_back(ExportHeaderLine({log_.origin(), log_.entries().size()}));
    for (size_t i = 0; i < log_.entries().size(); ++i) {
      lines.push_back(ExportEntryLine(i, log_.entries()[i]));
    }
    lines.push_back(ExportCheckpointLine(log_.Latest().note));
    return lines;
  }

  VerifyReport VerifyFile(const std::string& path) {
    auto reader = ExportReader::Open(path);
    EXPECT_TRUE(reader.ok()) << reader.error().message();
    if (!reader.ok()) return VerifyReport{};
    VerifyOptions options;
    options.trusted_keys = {log_.verifier_key()};
    if ((*reader)->checkpoint())
      options.latest_checkpoint = LatestCheckpoint{*(*reader)->checkpoint(), {}};
    auto report = Verify(**reader, options);
    EXPECT_TRUE(report.ok()) << report.error().message();
    return report.ok() ? std::move(*report) : VerifyReport{};
  }

  TestEd25519Key key_;
  TestLog log_;
  std::string dir_;
};

TEST_F(ExportTest, LinesHaveTheDocumentedForm) {
  EXPECT_EQ(ExportHeaderLine({"o", 3}),
            "{\"format\":\"signet-audit-export/1\",\"origin\":\"o\",\"size\":3}\n");
  EXPECT_EQ(ExportEntryLine(7, "{}"), "{\"index\":7,\"entry_b64\":\"e30=\"}\n");
  EXPECT_EQ(ExportCheckpointLine(std::string("a\n")), "{\"checkpoint\":\"a\\n\"}\n");
  EXPECT_EQ(ExportCheckpointLine(std::nullopt), "{\"checkpoint\":null}\n");
}

TEST_F(ExportTest, ExportedLogVerifies) {
  VerifyReport report = VerifyFile(Write(Lines()));
  EXPECT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.entries_checked, log_.entries().size());
  EXPECT_EQ(report.checkpoints_checked, 6u);
  EXPECT_TRUE(report.latest_checked);
}

TEST_F(ExportTest, ReaderReadsAnywhere) {
  auto reader = ExportReader::Open(Write(Lines()));
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  EXPECT_EQ((*reader)->header().origin, log_.origin());
  EntryBatch batch;
  for (uint64_t begin : {uint64_t{0}, uint64_t{1500}, uint64_t{3}, uint64_t{700}, uint64_t{1809}}) {
    ASSERT_TRUE((*reader)->Read(begin, 10, batch).ok());
    const uint64_t expected = std::min<uint64_t>(10, log_.entries().size() - begin);
    ASSERT_EQ(batch.size(), expected) << begin;
    for (size_t k = 0; k < batch.size(); ++k) EXPECT_EQ(batch[k], log_.entries()[begin + k]);
  }
}

TEST_F(ExportTest, DeletedLineIsNamed) {
  std::vector<std::string> lines = Lines();
  lines.erase(lines.begin() + 1 + 1000);  // entry 1000
  VerifyReport report = VerifyFile(Write(lines));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.failure->kind, FailureKind::kIndexMismatch);
  EXPECT_EQ(report.failure->index, std::optional<uint64_t>(1000));
}

TEST_F(ExportTest, MissingTailIsNamed) {
  std::vector<std::string> lines = Lines();
  lines.erase(lines.end() - 301, lines.end() - 1);  // the last 300 entries, keep the checkpoint
  VerifyReport report = VerifyFile(Write(lines));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.failure->kind, FailureKind::kTruncated);
  EXPECT_EQ(report.failure->index, std::optional<uint64_t>(log_.entries().size() - 300));
}

TEST_F(ExportTest, CutFileIsRefused) {
  std::vector<std::string> lines = Lines();
  lines.pop_back();
  lines.back().pop_back();  // no final newline either
  auto reader = ExportReader::Open(Write(lines));
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ExportTest, DamagedBase64IsDataLoss) {
  std::vector<std::string> lines = Lines();
  lines[5] = "{\"index\":4,\"entry_b64\":\"!!!\"}\n";
  auto reader = ExportReader::Open(Write(lines));
  ASSERT_TRUE(reader.ok());
  VerifyOptions options;
  options.trusted_keys = {log_.verifier_key()};
  auto report = Verify(**reader, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ErrorCode::kDataLoss);
  // The error names the entry, not the batch it was read in.
  EXPECT_NE(report.error().message().find("reading entry 4"), std::string::npos)
      << report.error().message();
}

// The header's size is what the verifier reads; entry lines after it would otherwise never be
// looked at, so a file with lines added past it is refused rather than verified as the shorter log.
TEST_F(ExportTest, EntryLinesAfterTheHeaderSizeAreRefused) {
  std::vector<std::string> lines = Lines();
  const size_t size = log_.entries().size();
  lines.insert(lines.end() - 1, "{\"index\":" + std::to_string(size) + ",\"entry_b64\":\"e30=\"}\n");
  lines.insert(lines.end() - 1, "this is not json\n");
  auto reader = ExportReader::Open(Write(lines));
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  VerifyOptions options;
  options.trusted_keys = {log_.verifier_key()};
  options.latest_checkpoint = LatestCheckpoint{*(*reader)->checkpoint(), {}};
  auto report = Verify(**reader, options);
  ASSERT_FALSE(report.ok()) << "an export with lines past its header's size verified";
  EXPECT_EQ(report.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(report.error().message().find("after the " + std::to_string(size) + " entries"),
            std::string::npos)
      << report.error().message();
}

// An unreadable line later in the same batch does not hide an earlier disagreement: the first
// bad index is still the one named (here two swapped entries before a damaged line, and before
// lines added past the header's size).
TEST_F(ExportTest, AnUnreadableLineDoesNotHideAnEarlierBadIndex) {
  for (bool damaged_line : {true, false}) {
    std::vector<std::string> lines = Lines();
    std::swap(lines[1 + 10], lines[1 + 11]);
    if (damaged_line) {
      lines[1 + 20] = "{\"index\":20,\"entry_b64\":\"!!!\"}\n";
    } else {
      lines.insert(lines.end() - 1, "{\"index\":" + std::to_string(log_.entries().size()) +
                                        ",\"entry_b64\":\"e30=\"}\n");
    }
    VerifyReport report = VerifyFile(Write(lines));
    ASSERT_FALSE(report.ok()) << damaged_line;
    EXPECT_EQ(report.failure->kind, FailureKind::kIndexMismatch) << damaged_line;
    EXPECT_EQ(report.failure->index, std::optional<uint64_t>(10)) << damaged_line;
  }
}

// A log with no entries yet exports as a header and {"checkpoint":null}, and verifies.
TEST_F(ExportTest, EmptyLogExportVerifies) {
  const std::string path = Write(
      {ExportHeaderLine({log_.origin(), 0}), ExportCheckpointLine(std::nullopt)}, "empty.jsonl");
  auto reader = ExportReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  VerifyReport report = VerifyFile(path);
  EXPECT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.entries_checked, 0u);
}

TEST_F(ExportTest, EntriesUnderAHeaderOfSizeZeroAreRefused) {
  std::vector<std::string> lines = Lines();
  lines.front() = ExportHeaderLine({log_.origin(), 0});
  lines.back() = ExportCheckpointLine(std::nullopt);
  auto reader = ExportReader::Open(Write(lines));
  ASSERT_FALSE(reader.ok()) << "an export of size 0 with entry lines opened";
  EXPECT_EQ(reader.error().code(), ErrorCode::kDataLoss);
}

// Lines are bounded as they are read, not after: an entry line or a header longer than any
// needs is refused without holding it, and an entry whose base64 is longer than an entry can be is
// refused before it is decoded.
TEST_F(ExportTest, OverlongLinesAndEntriesAreRefusedAsTheyAreRead) {
  std::vector<std::string> lines = Lines();
  lines[3] = "{\"index\":2,\"entry_b64\":\"" + std::string(kMaxExportEntryLine, 'A') + "\"}\n";
  auto reader = ExportReader::Open(Write(lines, "long-line.jsonl"));
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  EntryBatch batch;
  Status read = (*reader)->Read(0, 10, batch);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(read.error().message().find("the line of entry 2 is longer than"), std::string::npos)
      << read.error().message();

  lines = Lines();
  // Valid base64 of 65 536 bytes: one more than an entry may hold.
  lines[3] = "{\"index\":2,\"entry_b64\":\"" + std::string(87380, 'A') + "AAAA\"}\n";
  reader = ExportReader::Open(Write(lines, "big-entry.jsonl"));
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  read = (*reader)->Read(0, 10, batch);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), ErrorCode::kDataLoss);
  EXPECT_NE(read.error().message().find("more than an entry of at most 65535 bytes"),
            std::string::npos)
      << read.error().message();

  // A "header" with no newline in reach: refused after the limit, not read to the end.
  const std::string path = Write({std::string(kMaxExportLine + 10, '{'), "\n"}, "no-header.jsonl");
  reader = ExportReader::Open(path);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.error().code(), ErrorCode::kInvalidArgument);
}

// The largest entry there may be still reads.
TEST_F(ExportTest, AnEntryOfTheMaximumSizeReads) {
  const std::string entry(kMaxEntrySize, 'x');
  const std::string path = Write({ExportHeaderLine({log_.origin(), 1}), ExportEntryLine(0, entry),
                                  ExportCheckpointLine(std::nullopt)},
                                 "max.jsonl");
  auto reader = ExportReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.error().message();
  EntryBatch batch;
  Status read = (*reader)->Read(0, 1, batch);
  ASSERT_TRUE(read.ok()) << read.error().message();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0], entry);
}

TEST_F(ExportTest, MissingFileIsNotFound) {
  auto reader = ExportReader::Open(dir_ + "/nothing.jsonl");
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace signet::audit
