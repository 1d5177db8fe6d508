// audit/entry: what the verifier needs to read out of one log entry, and the strict check that the
// entry is in signet's canonical form.
//
// An entry is a canonical JSON object (DESIGN.md "audit format"): UTF-8, keys sorted byte-wise, no
// insignificant whitespace, escapes only where JSON requires them ("\"", "\\", "\b", "\f", "\n",
// "\r", "\t", and "\u00xx" with lower-case hex for the other control characters), integers
// without sign or leading zeros. Precisely: `data` is canonical iff it equals nlohmann-json's
// dump() of its own parse (ensure_ascii off), which is how the service renders entries. Every entry
// carries an integer "index", its leaf position, and a string "action"; an entry whose action is
// kCheckpointAction records a signed checkpoint of the log in "details": {"checkpoint": "<the
// signed note>", ...}, so the log carries its own checkpoint history.
//
// ParseEntryFields runs once per entry when a whole log is verified, so the common case (objects,
// arrays, strings, integers of up to 18 digits, true/false/null) is checked by a single pass over
// the bytes without building a document; anything else (fractions, exponents, longer integers,
// escaped object keys) is decided by parsing with nlohmann-json and comparing its dump(), which
// defines the rule. Both paths give the same answer (entry_test.cc, fuzz/entry_fuzz.cc).
//
// Threads: pure functions, safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "audit/merkle.h"
#include "common/result.h"

namespace signet::audit {

// The action of the entry that records a signed checkpoint.
inline constexpr std::string_view kCheckpointAction = "log_checkpoint";

// The largest entry, in bytes: C2SP tlog-tiles entry bundles prefix each entry with a big-endian
// uint16 length (the same limit as store::kMaxLogEntrySize).
inline constexpr size_t kMaxEntrySize = 65535;

// Objects and arrays nest at most this deep; deeper entries are refused.
inline constexpr int kMaxEntryDepth = 64;

struct EntryFields {
  LeafIndex index;     // "index"
  std::string action;  // "action", never empty
  // "details"."checkpoint" of a kCheckpointAction entry (the signed note, unverified); nullopt for
  // every other action. A checkpoint entry without it is refused.
  std::optional<std::string> checkpoint_note;
  // "details"."size" and "details"."root" of a checkpoint entry, when present (they must then be
  // strings): what the entry claims the note signs, the size in decimal and the root in base64.
  // The verifier holds them to the note.
  std::optional<std::string> checkpoint_size;
  std::optional<std::string> checkpoint_root;
  friend bool operator==(const EntryFields&, const EntryFields&) = default;
};

// Checks `data` and returns its fields. InvalidArgument naming what is wrong (and, for JSON
// errors, the byte offset) if the entry is empty or over kMaxEntrySize bytes, is not JSON, is not
// canonical, is not an object, nests deeper than kMaxEntryDepth, has no non-negative integer
// "index" or no non-empty string "action", or is a checkpoint entry without a string
// "details"."checkpoint" or with a "details"."size" or "details"."root" that is not a string.
Result<EntryFields> ParseEntryFields(std::string_view data);

// Whether `data` is canonical JSON by the rule above (any JSON value, any size): OK or
// InvalidArgument saying where it is not. For tests, fuzzing and tools; ParseEntryFields includes
// it.
Status CheckCanonicalJson(std::string_view data);

}  // namespace signet::audit
