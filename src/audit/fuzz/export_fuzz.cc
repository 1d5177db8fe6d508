// libFuzzer target for `signet audit verify --export`: ExportReader and Verify on an export file
// that whoever hands it over may have edited. The harness builds one real export in memory (a
// TestLog of 25 entries with checkpoints of sizes 8, 17 and 19, recorded at entries 8, 17 and 21,
// signed by an Ed25519 key with a fixed seed, so every run sees the same bytes), applies the
// edits the input describes, and verifies the result as the CLI does: the trusted key given, the
// file's last line as the latest checkpoint.
//
// Input: a sequence of edits, each an opcode byte and its operands (missing bytes read as 0):
//   0 off:2 n:1 bytes  overwrite n (< 16) bytes of the text at off    (offsets wrap around)
//   1 off:2 n:1 bytes  insert n bytes at off
//   2 off:2 n:1        erase n bytes at off
//   3 k:1 at:2 b:1     replace line k+1 by original entry k with its byte `at` set to b, as a
//                      valid entry line (k modulo the current line count, then the entry count)
//   4 a:1 b:1          swap lines a and b (any line: header, entries, checkpoint line)
//   5 a:1              delete line a
//   6 a:1              repeat line a after itself (while the text stays under 1 MiB)
//   7 k:1              replace the checkpoint line with the note of checkpoint k (a rollback)
// At most 64 edits are applied; lines a and b are taken modulo the current line count. The empty
// input is the untouched export.
//
// Properties: nothing crashes, trips a sanitizer or throws; the untouched export verifies with
// every checkpoint checked; and whenever Verify says an edited export is fine, the entries it calls
// signed are byte for byte the original ones: no edit hides a change to a signed entry.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/export.h"
#include "audit/testing/test_log.h"
#include "audit/verifier.h"
#include "common/encoding.h"

namespace {

using namespace signet::audit;  // NOLINT(google-build-using-namespace): fuzz driver only.

[[noreturn]] void Fail(const char* why) {
  std::fprintf(stderr, "export fuzz: %s\n", why);
  std::abort();
}

// The edited text never grows past this (the original is about 16 KB).
constexpr size_t kMaxTextSize = 1 << 20;

// The original log and its export text, built once.
struct Fixture {
  testing::TestEd25519Key key{[] {
    std::array<uint8_t, 32> seed{};
    for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(0xa0 + i);
    return seed;
  }()};
  testing::TestLog log{"signet.fuzz/export", key};
  std::vector<std::string> lines;  // each with its "\n"

  Fixture() {
    log.Grow(17, 8, 0);       // checkpoints of sizes 8 and 17, recorded at entries 8 and 17
    log.AppendCheckpoint(2);  // size 19, recorded at entry 21 after two more events
    log.Grow(3, 0, 0);        // three entries no checkpoint signs yet
    lines.push_back(ExportHeaderLine({log.origin(), log.entries().size()}));
    for (size_t i = 0; i < log.entries().size(); ++i) {
      lines.push_back(ExportEntryLine(i, log.entries()[i]));
    }
    lines.push_back(ExportCheckpointLine(log.Latest().note));
  }
};

const Fixture& TheFixture() {
  static const Fixture* fixture = new Fixture();
  return *fixture;
}

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return at_ >= size_; }
  uint8_t Byte() { return at_ < size_ ? data_[at_++] : 0; }
  size_t U16() {
    const size_t low = Byte();
    return low | static_cast<size_t>(Byte()) << 8;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    end = end == std::string::npos ? text.size() : end + 1;
    lines.push_back(text.substr(begin, end - begin));
    begin = end;
  }
  return lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line;
  return text;
}

// Applies the input's edits to the original export text.
std::string Edit(const Fixture& f, Input& in) {
  std::string text = Join(f.lines);
  for (int edits = 0; !in.done() && edits < 64; ++edits) {
    const uint8_t op = in.Byte() % 8;
    if (op <= 2) {
      const size_t at = text.empty() ? 0 : in.U16() % (text.size() + 1);
      const size_t n = in.Byte() % 16;
      if (op == 2) {
        text.erase(at, n);
        continue;
      }
      std::string bytes;
      for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(in.Byte()));
      if (op == 0) {
        text.replace(at, std::min(n, text.size() - at), bytes);
      } else {
        text.insert(at, bytes);
      }
      continue;
    }
    std::vector<std::string> lines = SplitLines(text);
    if (lines.empty()) continue;
    const size_t a = in.Byte() % lines.size();
    switch (op) {
      case 3: {
        const size_t k = a % f.log.entries().size();
        std::string entry = f.log.entries()[k];
        const size_t at = in.U16() % entry.size();
        entry[at] = static_cast<char>(in.Byte());
        if (k + 1 < lines.size()) lines[k + 1] = ExportEntryLine(k, entry);
        break;
      }
      case 4:
        std::swap(lines[a], lines[in.Byte() % lines.size()]);
        break;
      case 5:
        lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(a));
        break;
      case 6:
        // Bounded: with its newlines erased, a line can be the whole text, and doubling it 64
        // times would exhaust memory in the harness rather than test the verifier.
        if (text.size() + lines[a].size() <= kMaxTextSize) {
          lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(a), lines[a]);
        }
        break;
      default: {  // 7
        const auto& checkpoints = f.log.checkpoints();
        lines.back() = ExportCheckpointLine(checkpoints[a % checkpoints.size()].note);
        break;
      }
    }
    text = Join(lines);
  }
  return text;
}

// The export as a file ExportReader can open by path: one memory file, rewritten per input.
std::string WriteExport(const std::string& text) {
  static const int fd = ::memfd_create("export-fuzz", 0);
  if (fd < 0 || ::ftruncate(fd, 0) != 0) Fail("memfd_create/ftruncate");
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n =
        ::pwrite(fd, text.data() + written, text.size() - written, static_cast<off_t>(written));
    if (n <= 0) Fail("pwrite");
    written += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& f = TheFixture();
  Input in(data, size);
  const std::string text = Edit(f, in);
  const bool untouched = text == Join(f.lines);
  const std::string path = WriteExport(text);

  auto reader = ExportReader::Open(path);
  if (!reader.ok()) {
    if (std::getenv("SIGNET_FUZZ_VERBOSE") != nullptr) {
      std::fprintf(stderr, "  open: %s\n", reader.error().message().c_str());
    }
    if (untouched) Fail("the untouched export does not open");
    return 0;
  }
  VerifyOptions options;
  options.trusted_keys = {f.log.verifier_key()};
  if ((*reader)->checkpoint()) {
    options.latest_checkpoint = LatestCheckpoint{*(*reader)->checkpoint(), std::nullopt};
  }
  options.batch_size = 1 + size % 16;  // batch boundaries anywhere
  auto report = Verify(**reader, options);
  // SIGNET_FUZZ_VERBOSE=1: what each input got, to see which paths a seed reaches.
  if (std::getenv("SIGNET_FUZZ_VERBOSE") != nullptr) {
    std::string outcome =
        "ok, signed " + std::to_string(report.ok() ? report->signed_size.value() : 0);
    if (!report.ok()) {
      outcome = "error: " + report.error().message();
    } else if (!report->ok()) {
      outcome = "fails: " + report->failure->message;
    }
    std::fprintf(stderr, "  %s\n", outcome.c_str());
  }
  if (untouched) {
    if (!report.ok() || !report->ok() || !report->latest_checked ||
        report->signed_size.value() != f.log.checkpoints().back().size ||
        report->checkpoints_checked != f.log.checkpoints().size() ||
        report->entries_checked != f.log.entries().size()) {
      Fail("the untouched export does not verify completely");
    }
    return 0;
  }
  if (!report.ok() || !report->ok()) return 0;

  // Verify found nothing wrong: what it calls signed must be exactly what was signed.
  const uint64_t signed_size = report->signed_size.value();
  if (signed_size > f.log.entries().size()) Fail("more entries signed than the log ever had");
  auto again = ExportReader::Open(path);
  if (!again.ok()) Fail("an export that verified does not open again");
  EntryBatch batch;
  if (!(*again)->Read(0, signed_size, batch).ok() || batch.size() != signed_size) {
    Fail("the signed entries of an export that verified cannot be read again");
  }
  for (uint64_t i = 0; i < signed_size; ++i) {
    if (batch[i] != f.log.entries()[i]) Fail("an edited signed entry passed verification");
  }
  return 0;
}
