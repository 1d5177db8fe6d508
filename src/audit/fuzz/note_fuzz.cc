// Fuzzes the parsers of untrusted text in audit/note.h: signed notes, checkpoint bodies and
// verifier keys, and OpenNote against fixed trusted keys of each supported type (the seed corpus
// holds real notes signed by them, so mutations reach the signature checks). Properties: nothing
// crashes or leaks; whatever parses formats back to exactly the input (the parsers accept only
// canonical forms); an opened note has at least one verified signature and a text that the note
// starts with.
#include <cstdlib>
#include <string_view>
#include <vector>

#include "audit/note.h"

namespace {

const std::vector<signet::audit::VerifierKey>& TrustedKeys() {
  // Parsed once per process; the fuzzer is single-threaded.
  static const std::vector<signet::audit::VerifierKey> keys = [] {
    std::vector<signet::audit::VerifierKey> out;
    for (std::string_view vkey : {
             "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
             "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
             "rekor.sigstore.dev+c0d23d6a+"
             "AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdG"
             "vXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=",
             "rome.ct.filippo.io/"
             "2024h1+78f4abae+BTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAFzPC3fap+uINc"
             "1RQ4eRbYMUt84+bKkA8GDLN8KwVdzAgYhYSv4kS8XSheGLAHCWhIJTJbuC3sL88bNMTtrsBM=",
         }) {
      auto key = signet::audit::ParseVerifierKey(vkey);
      if (!key.ok()) std::abort();
      out.push_back(*key);
    }
    return out;
  }();
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet::audit;  // NOLINT(google-build-using-namespace): fuzz driver only.
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto note = ParseNote(text); note.ok()) {
    auto formatted = FormatNote(*note);
    if (!formatted.ok() || *formatted != text) std::abort();
  }
  if (auto checkpoint = ParseCheckpoint(text); checkpoint.ok()) {
    auto formatted = FormatCheckpoint(*checkpoint);
    if (!formatted.ok() || *formatted != text) std::abort();
  }
  if (auto key = ParseVerifierKey(text); key.ok()) {
    if (FormatVerifierKey(*key) != text || ComputeKeyId(*key) != key->key_id) std::abort();
  }
  if (auto opened = OpenNote(text, TrustedKeys()); opened.ok()) {
    if (opened->verified.empty() || !text.starts_with(opened->text)) std::abort();
  }
  (void)CheckKeyName(text);
  return 0;
}
