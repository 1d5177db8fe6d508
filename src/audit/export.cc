#include "audit/export.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "audit/entry.h"
#include "common/encoding.h"

namespace signet::audit {
namespace {

using nlohmann::json;

std::string Str(uint64_t v) { return std::to_string(v); }

Error OpenError(const std::string& path, int err) {
  std::string message = "cannot open the export file " + path + ": " + std::strerror(err);
  if (err == ENOENT) return NotFound(message);
  if (err == EACCES || err == EPERM) return PermissionDenied(message);
  return Unavailable(message);
}

// The fast form of an entry line, exactly as ExportEntryLine writes it; nullopt for any other
// form (which is then parsed as JSON).
std::optional<std::string_view> FastEntryBase64(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"index\":";
  constexpr std::string_view kMiddle = ",\"entry_b64\":\"";
  constexpr std::string_view kSuffix = "\"}";
  if (!line.starts_with(kPrefix) || !line.ends_with(kSuffix)) return std::nullopt;
  size_t pos = kPrefix.size();
  const size_t digits = pos;
  while (pos < line.size() && line[pos] >= '0' && line[pos] <= '9') ++pos;
  if (pos == digits || line.substr(pos, kMiddle.size()) != kMiddle) return std::nullopt;
  pos += kMiddle.size();
  std::string_view b64 = line.substr(pos, line.size() - pos - kSuffix.size());
  if (b64.find('"') != std::string_view::npos || b64.find('\\') != std::string_view::npos) {
    return std::nullopt;
  }
  return b64;
}

enum class LineRead { kRead, kEnd, kTooLong };

// Reads the next line, without its "\n", into `line`, through `buffer`, which it sizes to
// `max` + 2 bytes once (so a line costs its own length, not the limit), and never holding more
// than `max` + 1 bytes of a line. kEnd at the end of the file; a last line without "\n" is read
// as a line.
LineRead ReadBoundedLine(std::istream& in, std::vector<char>& buffer, std::string& line,
                         size_t max) {
  if (buffer.size() != max + 2) buffer.assign(max + 2, '\0');
  in.getline(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  const auto extracted = static_cast<size_t>(in.gcount());
  line.clear();
  if (extracted == 0 && in.eof()) return LineRead::kEnd;
  if (in.fail() && !in.eof()) return LineRead::kTooLong;       // max + 1 bytes and no "\n" yet
  const size_t stored = in.eof() ? extracted : extracted - 1;  // the "\n" is not stored
  if (stored > max) return LineRead::kTooLong;
  line.assign(buffer.data(), stored);
  return LineRead::kRead;
}

// The longest base64 text of an entry of kMaxEntrySize bytes.
constexpr size_t kMaxEntryBase64 = (kMaxEntrySize + 2) / 3 * 4;

}  // namespace

std::string ExportHeaderLine(const ExportHeader& header) {
  json j = {
      {"format", std::string(kExportFormat)}, {"origin", header.origin}, {"size", header.size}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string ExportEntryLine(uint64_t index, std::string_view entry) {
  return "{\"index\":" + Str(index) + ",\"entry_b64\":\"" + Base64Encode(AsBytes(entry)) + "\"}\n";
}

std::string ExportCheckpointLine(const std::optional<std::string>& note) {
  json j = {{"checkpoint", note ? json(*note) : json(nullptr)}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<std::unique_ptr<ExportReader>> ExportReader::Open(const std::string& path) {
  std::unique_ptr<ExportReader> reader(new ExportReader());
  reader->path_ = path;
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_.is_open()) return OpenError(path, errno);

  // The header.
  std::string& line = reader->line_;
  std::vector<char> header_buffer;
  if (ReadBoundedLine(reader->in_, header_buffer, line, kMaxExportLine) != LineRead::kRead) {
    return InvalidArgument(path + " is not a signet audit export: no header line");
  }
  json header = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object() || !header.contains("format") || !header["format"].is_string() ||
      header["format"].get<std::string>() != kExportFormat || !header.contains("origin") ||
      !header["origin"].is_string() || !header.contains("size") ||
      !header["size"].is_number_unsigned()) {
    return InvalidArgument(path +
                           " is not a signet audit export: the first line must be {\"format\":\"" +
                           std::string(kExportFormat) + "\",\"origin\":...,\"size\":N}");
  }
  reader->header_.origin = header["origin"].get<std::string>();
  reader->header_.size = header["size"].get<uint64_t>();
  reader->entries_begin_ = line.size() + 1;
  if (reader->in_.eof()) {
    return InvalidArgument(path + " is incomplete: it ends after the header (was it cut short?)");
  }

  // The final line: read the file's tail and split off its last line.
  reader->in_.clear();
  reader->in_.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(reader->in_.tellg());
  if (file_size < reader->entries_begin_) return Unavailable("cannot read " + path);
  const uint64_t tail_size =
      std::min<uint64_t>(file_size - reader->entries_begin_, kMaxExportLine + 1);
  std::string tail(tail_size, '\0');
  reader->in_.seekg(static_cast<std::streamoff>(file_size - tail_size));
  if (!reader->in_.read(tail.data(), static_cast<std::streamsize>(tail_size))) {
    return Unavailable("cannot read " + path);
  }
  if (tail.empty() || tail.back() != '\n') {
    return InvalidArgument(path +
                           " is incomplete: it does not end with a newline (was it cut "
                           "short?)");
  }
  const size_t last_start = tail.rfind('\n', tail.size() - 2);
  if (last_start == std::string::npos && tail_size < file_size - reader->entries_begin_) {
    return InvalidArgument(path + ": the last line is longer than the limit");
  }
  const size_t begin = last_start == std::string::npos ? 0 : last_start + 1;
  const std::string last = tail.substr(begin, tail.size() - 1 - begin);
  json final_line = json::parse(last, nullptr, /*allow_exceptions=*/false);
  if (!final_line.is_object() || !final_line.contains("checkpoint") ||
      !(final_line["checkpoint"].is_string() || final_line["checkpoint"].is_null())) {
    return InvalidArgument(path +
                           " is incomplete: the last line must be {\"checkpoint\":...} "
                           "(was it cut short?)");
  }
  if (final_line["checkpoint"].is_string()) {
    reader->checkpoint_ = final_line["checkpoint"].get<std::string>();
  }
  reader->entries_end_ = file_size - tail_size + begin;
  SIGNET_TRY(reader->SeekTo(0));
  if (reader->header_.size == 0) SIGNET_TRY(reader->CheckNoEntryAfterSize());
  return reader;
}

Result<uint64_t> ExportReader::Size() { return header_.size; }

Status ExportReader::SeekTo(uint64_t position) {
  uint64_t k = position / kTileWidth;
  if (k >= offsets_.size()) k = offsets_.empty() ? 0 : offsets_.size() - 1;
  const uint64_t offset = offsets_.empty() ? entries_begin_ : offsets_[k];
  next_position_ = offsets_.empty() ? 0 : k * kTileWidth;
  next_offset_ = offset;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  if (!in_) return Unavailable("cannot seek in " + path_);
  // Skip to `position`, remembering offsets on the way.
  while (next_position_ < position && next_offset_ < entries_end_) {
    if (next_position_ % kTileWidth == 0 && next_position_ / kTileWidth == offsets_.size()) {
      offsets_.push_back(next_offset_);
    }
    SIGNET_TRY(NextEntryLine());
    next_offset_ += line_.size() + 1;
    ++next_position_;
  }
  return OkStatus();
}

Status ExportReader::NextEntryLine() {
  switch (ReadBoundedLine(in_, line_buffer_, line_, kMaxExportEntryLine)) {
    case LineRead::kRead:
      return OkStatus();
    case LineRead::kEnd:
      return Unavailable("cannot read " + path_);
    case LineRead::kTooLong:
      break;
  }
  return DataLoss(path_ + ": the line of entry " + Str(next_position_) + " is longer than " +
                  Str(kMaxExportEntryLine) + " bytes, more than any entry needs");
}

Status ExportReader::ParseEntryLine(const std::string& line, std::string& entry) const {
  const std::string where = path_ + ": the line of entry " + Str(next_position_);
  std::string_view b64;
  std::string slow;
  if (auto fast = FastEntryBase64(line)) {
    b64 = *fast;
  } else {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("entry_b64") || !j["entry_b64"].is_string() ||
        !j.contains("index") || !j["index"].is_number_unsigned()) {
      return DataLoss(where + " is not {\"index\":i,\"entry_b64\":\"...\"}");
    }
    slow = j["entry_b64"].get<std::string>();
    b64 = slow;
  }
  if (b64.size() > kMaxEntryBase64) {
    return DataLoss(where + " holds " + Str(b64.size()) +
                    " base64 characters, more than an entry of at most " + Str(kMaxEntrySize) +
                    " bytes can take");
  }
  auto bytes = Base64Decode(b64);
  if (!bytes.ok()) return DataLoss(where + ": " + bytes.error().message());
  entry.assign(bytes->begin(), bytes->end());
  return OkStatus();
}

Status ExportReader::CheckNoEntryAfterSize() const {
  if (next_offset_ < entries_end_) {
    return DataLoss(path_ + " holds entry lines after the " + Str(header_.size) +
                    " entries its header announces: lines were added to the export (or its "
                    "header's size was changed), so it is not the log it claims to be");
  }
  return OkStatus();
}

Status ExportReader::Read(uint64_t begin, uint64_t count, EntryBatch& out) {
  out.Clear();
  if (begin != next_position_) SIGNET_TRY(SeekTo(begin));
  if (next_position_ != begin) return OkStatus();  // the file holds fewer entries
  while (out.size() < count && next_offset_ < entries_end_ && !out.full()) {
    if (next_position_ % kTileWidth == 0 && next_position_ / kTileWidth == offsets_.size()) {
      offsets_.push_back(next_offset_);
    }
    SIGNET_TRY(NextEntryLine());
    SIGNET_TRY(ParseEntryLine(line_, entry_));
    out.Add(entry_);
    next_offset_ += line_.size() + 1;
    ++next_position_;
  }
  // The verifier reads exactly the header's size; what follows must be the checkpoint line.
  if (next_position_ >= header_.size) SIGNET_TRY(CheckNoEntryAfterSize());
  return OkStatus();
}

}  // namespace signet::audit
