// audit/export: the file format of `signet audit export`, which `signet audit verify --export`
// checks offline (docs/audit.md "Export format"). JSON lines, UTF-8, each ending in "\n":
//
//   {"format":"signet-audit-export/1","origin":"<log origin>","size":N}   the header
//   {"index":0,"entry_b64":"<base64 of entry 0's exact bytes>"}           N entry lines, in order
//   ...
//   {"checkpoint":"<the latest signed checkpoint note>"}                  or null before the first
//
// The base64 keeps every entry byte-exact whatever it holds. The header's size and origin and the
// lines' "index" are the exporter's claims, not evidence: the verifier takes entries in file order
// and checks each entry's own "index", and trusts only checkpoints signed by a key it is given.
//
// Threads: the line functions are pure; an ExportReader is one reader's state (not thread-safe).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/verifier.h"
#include "common/result.h"

namespace signet::audit {

inline constexpr std::string_view kExportFormat = "signet-audit-export/1";

// The longest line a reader accepts (a 1 MB checkpoint note with JSON escapes fits).
inline constexpr size_t kMaxExportLine = 8 * 1024 * 1024;
// The longest entry line: an entry is at most kMaxEntrySize bytes (88 KB in base64); this leaves
// room for JSON escapes an exporter other than signet might write. A reader never holds more of a
// line than its limit, whatever the file (one with no newline at all: /dev/zero, a FIFO).
inline constexpr size_t kMaxExportEntryLine = 1024 * 1024;

struct ExportHeader {
  std::string origin;
  uint64_t size = 0;
};

// The lines, each with its final "\n".
std::string ExportHeaderLine(const ExportHeader& header);
std::string ExportEntryLine(uint64_t index, std::string_view entry);
// `note` nullopt: {"checkpoint":null} (the log has no checkpoint yet).
std::string ExportCheckpointLine(const std::optional<std::string>& note);

// Reads an export file as a LogReader. Sequential reads are a single pass over the file; a read
// elsewhere (the verifier re-reading a range to locate a change) seeks to the nearest of the
// offsets remembered every 256 entries.
class ExportReader final : public LogReader {
 public:
  // Opens `path` and reads its header and final checkpoint line. NotFound / PermissionDenied for
  // the file; InvalidArgument if the first line is not a signet-audit-export/1 header or the last
  // line is not a checkpoint line; DataLoss if the header announces no entries but entry lines
  // follow.
  static Result<std::unique_ptr<ExportReader>> Open(const std::string& path);

  const ExportHeader& header() const { return header_; }
  // The final line's note; nullopt for {"checkpoint":null}.
  const std::optional<std::string>& checkpoint() const { return checkpoint_; }

  // The header's size.
  Result<uint64_t> Size() override;
  // Entries by position among the entry lines. DataLoss naming the line for a line that is not an
  // entry line or whose base64 does not decode, and DataLoss when a read reaches the header's size
  // and more entry lines follow (Open says so already for size 0); Unavailable for a read
  // error.
  Status Read(uint64_t begin, uint64_t count, EntryBatch& out) override;

 private:
  ExportReader() = default;
  Status SeekTo(uint64_t position);
  // DataLoss if entry lines remain at the read position, which must be the header's size.
  Status CheckNoEntryAfterSize() const;
  Status ParseEntryLine(const std::string& line, std::string& entry) const;
  // Reads the next entry line into line_: DataLoss if it is longer than kMaxExportEntryLine.
  Status NextEntryLine();

  std::string path_;
  std::ifstream in_;
  ExportHeader header_;
  std::optional<std::string> checkpoint_;
  uint64_t entries_begin_ = 0;  // file offset of the first entry line
  uint64_t entries_end_ = 0;    // file offset of the checkpoint line
  uint64_t next_position_ = 0;  // entry position at next_offset_
  uint64_t next_offset_ = 0;
  std::vector<uint64_t> offsets_;  // offsets_[k]: file offset of entry 256 * k
  std::vector<char> line_buffer_;  // ReadBoundedLine's
  std::string line_;
  std::string entry_;
};

}  // namespace signet::audit
