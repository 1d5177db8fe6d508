// How fast `signet audit verify` checks a log, against raw SHA-256 over the same bytes in the same
// run (issue 4 "Must show": at least 0.3 of the raw hashing rate).
//
// The log is synthetic and in memory (audit/testing/test_log.h): ~400-byte canonical JSON "sign"
// events as the service records them, with a signed checkpoint entry after every 1024 events,
// 1,000,000 entries in all. Three rates over exactly those entry bytes, each the best of --rounds:
//   raw stream     one SHA-256 over all entry bytes (OpenSSL EVP, one context): the floor for
//                  reading every byte once;
//   raw per entry  one SHA-256 per entry (the same context reset per entry), for reference;
//   verify         audit::Verify on a MemoryLogReader: canonical-JSON and index check of every
//                  entry, leaf hash, tree, every checkpoint's Ed25519 signature and root, the
//                  latest checkpoint and the stored checkpoint list.
// The ratio printed is verify / raw stream. Single-threaded throughout.
//
//   build/hd-rel/bench/log_verify_bench [--entries N] [--every K] [--entry-size B] [--rounds R]
//   build/hd-rel/bench/log_verify_bench --smoke      (a few seconds; numbers mean nothing)
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "audit/testing/test_log.h"
#include "audit/verifier.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  uint64_t entries = 1'000'000;  // in all, checkpoint entries included
  uint64_t every = 1024;         // events per checkpoint
  size_t entry_size = 400;       // approximate bytes per event
  int rounds = 3;
};

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct MdDeleter {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};

// Sinks a digest so the compiler cannot drop the work.
volatile unsigned char g_sink;

double RawStreamSeconds(const std::vector<std::string>& entries, const EVP_MD* md,
                        EVP_MD_CTX* ctx) {
  const auto start = Clock::now();
  unsigned char out[32];
  unsigned int length = 0;
  if (EVP_DigestInit_ex(ctx, md, nullptr) != 1) std::abort();
  for (const std::string& e : entries) {
    if (EVP_DigestUpdate(ctx, e.data(), e.size()) != 1) std::abort();
  }
  if (EVP_DigestFinal_ex(ctx, out, &length) != 1) std::abort();
  g_sink = out[0];
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double RawPerEntrySeconds(const std::vector<std::string>& entries, const EVP_MD* md,
                          EVP_MD_CTX* ctx) {
  const auto start = Clock::now();
  unsigned char out[32];
  unsigned int length = 0;
  unsigned char x = 0;
  for (const std::string& e : entries) {
    if (EVP_DigestInit_ex(ctx, md, nullptr) != 1 ||
        EVP_DigestUpdate(ctx, e.data(), e.size()) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &length) != 1) {
      std::abort();
    }
    x ^= out[0];
  }
  g_sink = x;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool ParseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&](uint64_t& value) {
      if (i + 1 >= argc) return false;
      value = std::strtoull(argv[++i], nullptr, 10);
      return value > 0;
    };
    uint64_t v = 0;
    if (arg == "--smoke") {
      options.entries = 20'000;
      options.rounds = 1;
    } else if (arg == "--entries" && next(v)) {
      options.entries = v;
    } else if (arg == "--every" && next(v)) {
      options.every = v;
    } else if (arg == "--entry-size" && next(v)) {
      options.entry_size = v;
    } else if (arg == "--rounds" && next(v)) {
      options.rounds = static_cast<int>(v);
    } else {
      std::fprintf(stderr,
                   "usage: log_verify_bench [--entries N] [--every K] [--entry-size B] "
                   "[--rounds R] [--smoke]\n");
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, options)) return 2;

  // Build the log: `events` events and one checkpoint entry after every `every` of them, so that
  // the total is `entries`.
  signet::audit::testing::TestEd25519Key key;
  signet::audit::testing::TestLog log("signet.bench/log", key);
  const uint64_t events = options.entries * options.every / (options.every + 1);
  const auto build_start = Clock::now();
  log.Grow(events, options.every, options.entry_size);
  while (log.entries().size() < options.entries) log.AppendEvent(options.entry_size);
  const double build_seconds = std::chrono::duration<double>(Clock::now() - build_start).count();
  const auto& entries = log.entries();
  uint64_t bytes = 0;
  for (const std::string& e : entries) bytes += e.size();
  const double mb = static_cast<double>(bytes) / 1e6;
  const double n = static_cast<double>(entries.size());
  std::printf(
      "log: %zu entries (%zu checkpoints, one per %llu events), %.1f MB, mean entry %.0f "
      "bytes; built in %.1f s\n",
      entries.size(), log.checkpoints().size(), static_cast<unsigned long long>(options.every), mb,
      static_cast<double>(bytes) / n, build_seconds);

  std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (md == nullptr || ctx == nullptr) return 1;

  signet::audit::VerifyOptions verify_options = log.FullOptions();
  double best_stream = 1e300;
  double best_per_entry = 1e300;
  double best_verify = 1e300;
  for (int round = 0; round < options.rounds; ++round) {
    best_stream = std::min(best_stream, RawStreamSeconds(entries, md.get(), ctx.get()));
    best_per_entry = std::min(best_per_entry, RawPerEntrySeconds(entries, md.get(), ctx.get()));
    signet::audit::MemoryLogReader reader(entries);
    const auto start = Clock::now();
    auto report = signet::audit::Verify(reader, verify_options);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (!report.ok()) {
      std::fprintf(stderr, "verify failed to run: %s\n", report.error().message().c_str());
      return 1;
    }
    if (!report->ok() || report->entries_checked != entries.size() ||
        report->checkpoints_checked != log.checkpoints().size() || !report->latest_checked) {
      std::fprintf(stderr, "the synthetic log did not verify: %s\n",
                   report->failure ? report->failure->message.c_str() : "incomplete report");
      return 1;
    }
    best_verify = std::min(best_verify, seconds);
  }

  auto line = [&](const char* name, double seconds) {
    std::printf("%-44s %10.0f entries/s %8.1f MB/s  (%.3f s)\n", name, n / seconds, mb / seconds,
                seconds);
  };
  std::printf("best of %d rounds, single thread:\n", options.rounds);
  line("raw SHA-256, one stream over all entry bytes", best_stream);
  line("raw SHA-256, one digest per entry", best_per_entry);
  line("audit::Verify (signet audit verify core)", best_verify);
  const double ratio = best_stream / best_verify;
  std::printf("ratio verify / raw stream:    %.2f (target >= 0.3)\n", ratio);
  std::printf("ratio verify / raw per entry: %.2f\n", best_per_entry / best_verify);
  return 0;
}
