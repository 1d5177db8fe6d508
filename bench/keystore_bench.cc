// keystore_bench: signatures per second through Pkcs11KeyStore::Sign, against the floor the module
// allows: raw C_SignInit + C_Sign on a session of the thread's own with the key handle found once
// (hsm/pkcs11/testing/raw_signer.h). Same SoftHSM2 token, same key, same mechanism, same run; 1 and
// 2 threads; RSA-3072 PKCS#1 v1.5 SHA-256 and P-256 ECDSA SHA-256. The two are measured in
// alternating blocks inside one benchmark (see BM_PairedSign), reported as counters keystore/s,
// raw/s and ratio, and summarised in a table at the end (target ratio >= 0.95: the pool, key cache
// and recovery checks must cost under 5%).
//
// Self-contained: it creates a throwaway token in a temporary folder. Defaults to 1 s per
// benchmark and 3 repetitions (medians in the table); any --benchmark_* flag overrides them.
#include <benchmark/benchmark.h>

#include <array>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/testing/raw_signer.h"
#include "hsm/pkcs11/testing/signature_check.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"

namespace signet::hsm {
namespace {

namespace hsmt = signet::hsm::testing;

constexpr const char* kTokenLabel = "signet-bench";

struct Case {
  std::string name;
  KeyAlgorithm algorithm;
  SignatureScheme scheme;
  int block;  // Signatures per timed block: about 2 ms on SoftHSM.
  GeneratedKey key;
};

Pkcs11KeyStore* g_store = nullptr;

using Clock = std::chrono::steady_clock;

// One iteration = a keystore block of `block` signatures, then a raw block of as many, every
// thread switching phase together at `phase`. Load on the machine drifts over seconds; a pair of
// ~2 ms blocks sees the same load, so the ratio holds even on a busy machine, and in a keystore
// block all threads contend for the pool at once, as they would in service.
void BM_PairedSign(benchmark::State& state, const Case* c, std::barrier<>* phase) {
  Bytes digest = hsmt::Digest(HashAlgorithm::kSha256,
                              AsBytes("keystore_bench " + std::to_string(state.thread_index())));
  Result<std::unique_ptr<hsmt::RawSigner>> raw =
      hsmt::RawSigner::Open(hsmt::kSoftHsmModulePath, kTokenLabel, SecretBytes(hsmt::kTestUserPin),
                            c->key.id, c->scheme, HashAlgorithm::kSha256);
  if (!raw.ok()) {
    state.SkipWithError(raw.error().message().c_str());
    phase->arrive_and_drop();
    for (auto _ : state) {
    }
    return;
  }
  std::array<uint8_t, 512> raw_signature;
  Clock::duration keystore_time{};
  Clock::duration raw_time{};
  int64_t signatures = 0;
  for (auto _ : state) {
    phase->arrive_and_wait();
    Clock::time_point start = Clock::now();
    for (int i = 0; i < c->block; ++i) {
      Result<Bytes> signature = g_store->Sign(c->key.id, c->scheme, HashAlgorithm::kSha256, digest);
      if (!signature.ok()) {
        state.SkipWithError(signature.error().message().c_str());
        phase->arrive_and_drop();
        return;
      }
      benchmark::DoNotOptimize(signature->data());
    }
    keystore_time += Clock::now() - start;

    phase->arrive_and_wait();
    start = Clock::now();
    for (int i = 0; i < c->block; ++i) {
      Result<size_t> size = (*raw)->Sign(digest, raw_signature);
      if (!size.ok()) {
        state.SkipWithError(size.error().message().c_str());
        phase->arrive_and_drop();
        return;
      }
      benchmark::DoNotOptimize(raw_signature.data());
    }
    raw_time += Clock::now() - start;
    signatures += c->block;
  }
  // Per-thread rates times the thread count, averaged over threads: the total rate.
  double threads = static_cast<double>(state.threads());
  double keystore_seconds = std::chrono::duration<double>(keystore_time).count();
  double raw_seconds = std::chrono::duration<double>(raw_time).count();
  if (signatures == 0 || keystore_seconds <= 0 || raw_seconds <= 0) return;
  using benchmark::Counter;
  state.counters["keystore/s"] =
      Counter(static_cast<double>(signatures) / keystore_seconds * threads, Counter::kAvgThreads);
  state.counters["raw/s"] =
      Counter(static_cast<double>(signatures) / raw_seconds * threads, Counter::kAvgThreads);
  state.counters["ratio"] = Counter(raw_seconds / keystore_seconds, Counter::kAvgThreads);
}

struct Rates {
  double keystore = 0;
  double raw = 0;
  double ratio = 0;
};

// Prints as usual and keeps the counters per (case, threads): the median when the benchmark is
// repeated, the single run otherwise.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      bool aggregate = run.run_type == Run::RT_Aggregate;
      if (aggregate ? run.aggregate_name != "median" : run.repetitions > 1) continue;
      auto keystore = run.counters.find("keystore/s");
      auto raw = run.counters.find("raw/s");
      auto ratio = run.counters.find("ratio");
      if (keystore == run.counters.end() || raw == run.counters.end() ||
          ratio == run.counters.end()) {
        continue;
      }
      rates_[{run.run_name.function_name, run.threads}] =
          Rates{keystore->second.value, raw->second.value, ratio->second.value};
    }
  }

  std::optional<Rates> Get(const std::string& name, int64_t threads) const {
    auto it = rates_.find({name, threads});
    if (it == rates_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::pair<std::string, int64_t>, Rates> rates_;
};

int Run(int argc, char** argv) {
  // Defaults first, so the caller's flags (parsed later) win.
  std::vector<char*> args = {argv[0]};
  std::string min_time = "--benchmark_min_time=1";
  std::string repetitions = "--benchmark_repetitions=3";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  args.push_back(min_time.data());
  args.push_back(repetitions.data());
  args.push_back(aggregates.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int args_count = static_cast<int>(args.size());
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  Result<std::unique_ptr<hsmt::SoftHsmSandbox>> sandbox = hsmt::SoftHsmSandbox::Create();
  if (!sandbox.ok()) {
    std::fprintf(stderr, "keystore_bench: %s\n", sandbox.error().message().c_str());
    return 1;
  }
  Result<Pkcs11Options> options = (*sandbox)->CreateToken(kTokenLabel);
  if (!options.ok()) {
    std::fprintf(stderr, "keystore_bench: %s\n", options.error().message().c_str());
    return 1;
  }
  Result<std::unique_ptr<Pkcs11KeyStore>> store = Pkcs11KeyStore::Open(std::move(*options));
  if (!store.ok()) {
    std::fprintf(stderr, "keystore_bench: %s\n", store.error().message().c_str());
    return 1;
  }
  g_store = store->get();

  std::vector<std::unique_ptr<Case>> cases;
  cases.push_back(std::make_unique<Case>(
      Case{"rsa3072-pkcs1-sha256", KeyAlgorithm::kRsa3072, SignatureScheme::kRsaPkcs1v15, 1, {}}));
  cases.push_back(std::make_unique<Case>(
      Case{"p256-ecdsa-sha256", KeyAlgorithm::kEcP256, SignatureScheme::kEcdsa, 32, {}}));
  for (const std::unique_ptr<Case>& c : cases) {
    Result<GeneratedKey> key = g_store->GenerateKey(c->algorithm, "bench-" + c->name);
    if (!key.ok()) {
      std::fprintf(stderr, "keystore_bench: %s\n", key.error().message().c_str());
      return 1;
    }
    c->key = std::move(*key);
    // Benchmark only signatures that are real.
    Bytes digest = hsmt::Digest(HashAlgorithm::kSha256, AsBytes("check"));
    Result<Bytes> signature = g_store->Sign(c->key.id, c->scheme, HashAlgorithm::kSha256, digest);
    Result<bool> valid = signature.ok()
                             ? hsmt::VerifySignature(c->key.public_key_spki, c->scheme,
                                                     HashAlgorithm::kSha256, digest, *signature)
                             : Result<bool>(false);
    if (!valid.ok() || !*valid) {
      std::fprintf(stderr, "keystore_bench: %s signature does not verify\n", c->name.c_str());
      return 1;
    }
  }

  const std::array<int, 2> kThreadCounts = {1, 2};
  std::map<int, std::unique_ptr<std::barrier<>>> phases;
  for (int threads : kThreadCounts) {
    phases[threads] = std::make_unique<std::barrier<>>(threads);
    for (const std::unique_ptr<Case>& c : cases) {
      const Case* bench_case = c.get();
      std::barrier<>* phase = phases[threads].get();
      benchmark::RegisterBenchmark(
          c->name.c_str(),
          [bench_case, phase](benchmark::State& state) { BM_PairedSign(state, bench_case, phase); })
          ->Threads(threads)
          ->UseRealTime();
    }
  }
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf(
      "\nsignatures per second: Pkcs11KeyStore::Sign vs raw C_SignInit+C_Sign on the same "
      "token, key and mechanism (paired blocks; medians of the repetitions)\n");
  std::printf("%-22s %7s %14s %14s %8s\n", "case", "threads", "keystore/s", "raw/s",
              "keystore/raw");
  bool all_met = true;
  for (const std::unique_ptr<Case>& c : cases) {
    for (int threads : kThreadCounts) {
      std::optional<Rates> rates = reporter.Get(c->name, threads);
      if (!rates) continue;  // Filtered out or failed.
      all_met = all_met && rates->ratio >= 0.95;
      std::printf("%-22s %7d %14.0f %14.0f %8.3f\n", c->name.c_str(), threads, rates->keystore,
                  rates->raw, rates->ratio);
    }
  }
  std::printf("target keystore/raw >= 0.95: %s\n", all_met ? "met" : "NOT met");
  g_store = nullptr;
  return 0;
}

}  // namespace
}  // namespace signet::hsm

int main(int argc, char** argv) { return signet::hsm::Run(argc, argv); }
