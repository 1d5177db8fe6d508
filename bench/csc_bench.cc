// csc_bench: signatures per second through the whole signing service, end to end over HTTPS,
// against raw KeyStore signing on the same token and key, measured in the same run (issue 3,
// "Must show"; DESIGN.md §3 "benchmarks": every figure next to its comparison).
//
// One process builds what `signet serve` runs (cli::ServiceStack, production settings): a
// throwaway SoftHSM2 token (Pkcs11KeyStore + Pkcs11SecretSealer), an SqliteStore in a data folder
// ON DISK (WAL, synchronous=FULL, as in production), the Merkle audit log (group commit, integrator), the system
// clock and a fresh localhost TLS identity, serving on 127.0.0.1 port 0. Keys (RSA-3072, P-256) are
// generated in the token, certified by a test CA made here with OpenSSL, and granted to one signer
// service account per client thread (server-to-server: a person would need a fresh TOTP code for
// every credentials/authorize). Each client presents its own client certificate (from a second
// pki::testing CA) on its mTLS connection, logs in with auth/login over it, and
// keeps that connection: its bearer token is bound to the certificate.
// Rate limits are off (key policies with rate 0, SigningOptions::rate_per_minute_account = 0) so
// that only the service's work is measured.
//
// Per scenario (RSA-3072 PKCS#1 v1.5 x 1 hash/request, P-256 ECDSA x 64, P-256 ECDSA x 1; all
// SHA-256) it alternates timed blocks raw, e2e, raw, e2e, ..., raw with C threads each:
//   raw  Pkcs11KeyStore::Sign on the same key in a loop (the in-process floor, as keystore_bench);
//   e2e  each thread is one CSC client on its own keep-alive TLS connection: it authorizes a batch
//        of hashes (one SAD for e.g. 1000 hashes; the authorize time is in the wall clock), then
//        sends signatures/signHash requests of k hashes from that SAD until the block ends.
// Each e2e block is compared with the mean of the raw blocks just before and after it, so load
// that drifts over seconds hits both sides alike; the table shows the median of those per-block
// ratios (and the median rates), plus p50/p99 of the signHash round trip seen by the clients.
//
// It refuses to report numbers for broken signing: a sample of the returned signatures of every
// block (and one raw signature per scenario) is verified with OpenSSL against the public key of
// the certificate that credentials/info returns (which must be the test CA's), a tampered hash
// must fail, and at the end the audit log must hold exactly one `sign` event per successful
// signHash. Any such failure, or any failed request, exits 1. Missed targets exit 0: this is a
// measurement.
//
// It also probes the data folder's disk (fdatasync and an SQLite synchronous=FULL commit, alone,
// before and after the scenarios), because every signHash commits twice (the SAD's hashes are
// consumed in one transaction before the HSM signs; the `sign` audit event is committed before
// the answer) and the store serialises its calls; and it reports the CPU the process used in each
// block (raw blocks keep the cores busy; a block that waits on the disk or a lock does not).
// --breakdown adds timing decorators around the KeyStore and AuditSink ports to split a signHash
// into HSM time, audit-commit time and the rest, and prints the CLOCK_MONOTONIC span of each e2e
// block (for perf record -k CLOCK_MONOTONIC, then perf report --time). The bench's own threads
// are named bench-client and bench-raw-sign (perf report --sort comm); the service's keep the
// process name.
//
// Usage: csc_bench [--clients N] [--seconds S] [--rounds R] [--batch B] [--scenario NAME]...
//                  [--data-dir DIR] [--breakdown] [--smoke]
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cli/service_stack.h"
#include "client/client.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/pkcs11_secret_sealer.h"
#include "hsm/pkcs11/testing/signature_check.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"
#include "machine.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "service/audit_sink.h"
#include "service/signing.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::bench {
namespace {

using json = nlohmann::json;
using Steady = std::chrono::steady_clock;
namespace hsmt = signet::hsm::testing;

// ---- options ---------------------------------------------------------------------------------

struct Options {
  int clients = 4;
  double seconds = 5;         // per timed block
  int rounds = 3;             // e2e blocks per scenario (raw blocks: rounds + 1)
  double warmup_seconds = 1;  // per scenario, raw and e2e each, not counted
  int batch = 1000;           // hashes per SAD (rounded down to a multiple of k, at least k)
  std::vector<std::string> scenarios;  // empty: all
  std::string data_parent;             // empty: the folder of this executable
  bool breakdown = false;
  bool smoke = false;
  int commit_probes = 50;
};

// The scenarios, in the order they run (see Bench::Run).
constexpr std::string_view kScenarioNames[] = {"rsa3072-pkcs1-x1", "p256-ecdsa-x64",
                                               "p256-ecdsa-x1"};

void Usage() {
  std::fprintf(stderr,
               "usage: csc_bench [--clients N] [--seconds S] [--rounds R] [--batch B]\n"
               "                 [--scenario rsa3072-pkcs1-x1|p256-ecdsa-x64|p256-ecdsa-x1]...\n"
               "                 [--data-dir DIR] [--breakdown] [--smoke]\n"
               "  --smoke: 2 clients, 0.25 s blocks, 1 round: a few seconds in all (ctest)\n");
}

std::optional<Options> ParseOptions(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  // --smoke first, so explicit flags can still override its values.
  for (const std::string& a : args) {
    if (a == "--smoke") {
      o.smoke = true;
      o.clients = 2;
      o.seconds = 0.25;
      o.rounds = 1;
      o.warmup_seconds = 0.1;
      o.batch = 8;
      o.commit_probes = 5;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    try {
      if (a == "--smoke") {
        continue;
      } else if (a == "--breakdown") {
        o.breakdown = true;
      } else if (a == "--clients") {
        auto v = next();
        if (!v) return std::nullopt;
        o.clients = std::stoi(*v);
      } else if (a == "--seconds") {
        auto v = next();
        if (!v) return std::nullopt;
        o.seconds = std::stod(*v);
      } else if (a == "--rounds") {
        auto v = next();
        if (!v) return std::nullopt;
        o.rounds = std::stoi(*v);
      } else if (a == "--batch") {
        auto v = next();
        if (!v) return std::nullopt;
        o.batch = std::stoi(*v);
      } else if (a == "--scenario") {
        auto v = next();
        if (!v || std::find(std::begin(kScenarioNames), std::end(kScenarioNames), *v) ==
                      std::end(kScenarioNames)) {
          return std::nullopt;
        }
        o.scenarios.push_back(*v);
      } else if (a == "--data-dir") {
        auto v = next();
        if (!v) return std::nullopt;
        o.data_parent = *v;
      } else {
        return std::nullopt;
      }
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (o.clients < 1 || o.clients > 256 || o.seconds <= 0 || o.rounds < 1 || o.batch < 1 ||
      o.batch > service::kMaxSignaturesPerAuthorization) {
    return std::nullopt;
  }
  return o;
}

// ---- machine ---------------------------------------------------------------------------------

std::string LoadAverage() {
  double l[3] = {0, 0, 0};
  if (getloadavg(l, 3) != 3) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", l[0], l[1], l[2]);
  return buf;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

// ---- statistics ------------------------------------------------------------------------------

// Nearest-rank percentile of sorted `v`, `p` in (0, 100].
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(p / 100 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU time (user + system) this process has used so far, in seconds: all its threads, server and
// clients alike. Over a block, divided by the wall time, it says how many cores the block kept
// busy; a block that waits on the disk keeps them idle.
double ProcessCpuSeconds() {
  struct rusage u;
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// CPU time all processes on the machine have used so far (user, nice, system, irq, softirq from
// /proc/stat), in seconds; 0 if unreadable. Minus ProcessCpuSeconds() over a block, it shows how
// much of the machine other processes took meanwhile (other engineers' builds, say).
double MachineCpuSeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) || cpu != "cpu") {
    return 0;
  }
  return (user + nice + system + irq + softirq) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ---- timing decorators (--breakdown only) ----------------------------------------------------

// Total time and count of calls; thread-safe.
struct Meter {
  std::atomic<int64_t> nanos{0};
  std::atomic<int64_t> calls{0};
  void Add(Steady::duration d) {
    nanos += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    ++calls;
  }
  void Reset() {
    nanos = 0;
    calls = 0;
  }
  double MeanMs() const {
    const int64_t n = calls.load();
    return n == 0 ? 0 : static_cast<double>(nanos.load()) / 1e6 / static_cast<double>(n);
  }
  double TotalMs() const { return static_cast<double>(nanos.load()) / 1e6; }
};

// Passes every call through to the wrapped KeyStore, timing Sign.
class TimingKeyStore final : public hsm::KeyStore {
 public:
  explicit TimingKeyStore(hsm::KeyStore& inner) : inner_(inner) {}
  Result<hsm::GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) override {
    return inner_.GenerateKey(algorithm, label);
  }
  Result<Bytes> PublicKey(const hsm::HsmKeyId& id) override { return inner_.PublicKey(id); }
  Result<Bytes> Sign(const hsm::HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) override {
    Steady::time_point start = Steady::now();
    Result<Bytes> r = inner_.Sign(id, scheme, hash, input);
    sign.Add(Steady::now() - start);
    return r;
  }
  Result<hsm::KeyProtection> Protection(const hsm::HsmKeyId& id) override {
    return inner_.Protection(id);
  }
  Status DestroyKey(const hsm::HsmKeyId& id) override { return inner_.DestroyKey(id); }
  Result<hsm::TokenDescription> DescribeToken() override { return inner_.DescribeToken(); }
  Result<std::vector<hsm::TokenKey>> ListKeys() override { return inner_.ListKeys(); }

  Meter sign;

 private:
  hsm::KeyStore& inner_;
};

// Passes every event through to the wrapped sink, timing the `sign` events (one per signHash)
// apart from the others.
class TimingAuditSink final : public service::AuditSink {
 public:
  explicit TimingAuditSink(service::AuditSink& inner) : inner_(inner) {}
  Status Record(const service::AuditEvent& event) override {
    Steady::time_point start = Steady::now();
    Status s = inner_.Record(event);
    (event.action == service::AuditAction::kSign ? sign : other).Add(Steady::now() - start);
    return s;
  }
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override {
    Steady::time_point start = Steady::now();
    Status s = inner_.RecordChange(event, change);
    other.Add(Steady::now() - start);
    return s;
  }
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    Steady::time_point start = Steady::now();
    Status s = inner_.RecordIf(event, check);
    (event.action == service::AuditAction::kSign ? sign : other).Add(Steady::now() - start);
    return s;
  }
  Meter sign;
  Meter other;

 private:
  service::AuditSink& inner_;
};

// ---- the scenarios ---------------------------------------------------------------------------

constexpr std::string_view kSha256Oid = "2.16.840.1.101.3.4.2.1";
constexpr std::string_view kSha256WithRsaOid = "1.2.840.113549.1.1.11";
constexpr std::string_view kEcdsaSha256Oid = "1.2.840.10045.4.3.2";

struct BenchKey {
  std::string name;
  KeyAlgorithm algorithm;
  SignatureScheme scheme;
  store::KeyRecord record;
  hsm::HsmKeyId hsm_id;
  Bytes certificate_spki;  // from the leaf certificate credentials/info returned
};

struct Scenario {
  std::string name;
  BenchKey* key;
  int hashes_per_request;
  double target;  // e2e/raw at least this
  int batch = 0;  // hashes per SAD, a multiple of hashes_per_request

  std::string_view SignAlgo() const {
    return key->scheme == SignatureScheme::kEcdsa ? kEcdsaSha256Oid : kSha256WithRsaOid;
  }
};

// ---- the clients -----------------------------------------------------------------------------

struct Sample {
  Bytes hash;
  Bytes signature;
};

// One signer account and its connection. Used by one thread at a time (threads of successive
// blocks hand it over through join).
struct Client {
  int index = 0;
  std::string account_name;
  std::string token;
  std::unique_ptr<client::HttpsClient> http;

  // The current SAD, carried over from block to block within a scenario.
  std::string sad;
  std::vector<Bytes> sad_hashes;
  size_t next_hash = 0;
  uint64_t hash_counter = 0;

  // Results of the current block.
  int64_t signatures = 0;
  int64_t sign_requests = 0;
  int64_t authorizations = 0;
  std::vector<double> sign_ms;
  std::vector<double> authorize_ms;
  std::vector<Sample> samples;
  std::string error;

  void ResetBlock() {
    signatures = 0;
    sign_requests = 0;
    authorizations = 0;
    sign_ms.clear();
    authorize_ms.clear();
    samples.clear();
    error.clear();
  }
  void ResetScenario() {
    sad.clear();
    sad_hashes.clear();
    next_hash = 0;
  }
};

std::atomic<int64_t> g_successful_sign_requests{0};

Bytes NewHash(const Scenario& s, Client& c) {
  std::string doc = "csc_bench " + s.name + " client " + std::to_string(c.index) + " document " +
                    std::to_string(++c.hash_counter);
  return hsmt::Digest(HashAlgorithm::kSha256, AsBytes(doc));
}

json B64List(const std::vector<Bytes>& hashes, size_t from, size_t count) {
  json list = json::array();
  for (size_t i = from; i < from + count; ++i) list.push_back(Base64Encode(hashes[i]));
  return list;
}

// One client's e2e block: authorize a batch whenever the SAD is used up, then signHash k at a time
// until `deadline`. Records the first error and stops.
void RunClientBlock(const Scenario& s, Client& c, Steady::time_point deadline) {
  const auto k = static_cast<size_t>(s.hashes_per_request);
  while (Steady::now() < deadline) {
    if (c.next_hash + k > c.sad_hashes.size()) {
      c.sad_hashes.clear();
      for (int i = 0; i < s.batch; ++i) c.sad_hashes.push_back(NewHash(s, c));
      json body = {{"credentialID", s.key->record.id},
                   {"numSignatures", c.sad_hashes.size()},
                   {"hashes", B64List(c.sad_hashes, 0, c.sad_hashes.size())},
                   {"hashAlgorithmOID", kSha256Oid}};
      Steady::time_point start = Steady::now();
      Result<json> r = client::CallJson(*c.http, "/csc/v2/credentials/authorize", body, c.token);
      c.authorize_ms.push_back(Seconds(Steady::now() - start) * 1e3);
      if (!r.ok()) {
        c.error = "credentials/authorize: " + r.error().message();
        return;
      }
      if (!r->contains("SAD") || !(*r)["SAD"].is_string()) {
        c.error = "credentials/authorize: no SAD in " + r->dump();
        return;
      }
      c.sad = (*r)["SAD"].get<std::string>();
      c.next_hash = 0;
      ++c.authorizations;
    }
    json body = {{"credentialID", s.key->record.id},
                 {"SAD", c.sad},
                 {"hashes", B64List(c.sad_hashes, c.next_hash, k)},
                 {"hashAlgorithmOID", kSha256Oid},
                 {"signAlgo", s.SignAlgo()}};
    Steady::time_point start = Steady::now();
    Result<json> r = client::CallJson(*c.http, "/csc/v2/signatures/signHash", body, c.token);
    c.sign_ms.push_back(Seconds(Steady::now() - start) * 1e3);
    if (!r.ok()) {
      c.error = "signatures/signHash: " + r.error().message();
      return;
    }
    const json* sigs = r->contains("signatures") ? &(*r)["signatures"] : nullptr;
    if (sigs == nullptr || !sigs->is_array() || sigs->size() != k) {
      c.error = "signatures/signHash: expected " + std::to_string(k) + " signatures, got " +
                r->dump().substr(0, 200);
      return;
    }
    ++g_successful_sign_requests;
    // Keep the signatures of request 1, 2, 4, 8, ... of the block for verification afterwards
    // (outside the timed part).
    ++c.sign_requests;
    if ((c.sign_requests & (c.sign_requests - 1)) == 0) {
      for (size_t i = 0; i < k; ++i) {
        const json& item = (*sigs)[i];
        Result<Bytes> sig =
            item.is_string() ? Base64Decode(item.get<std::string>()) : Result<Bytes>(Bytes{});
        if (!sig.ok() || sig->empty()) {
          c.error = "signatures/signHash: a signature is not a base64 string";
          return;
        }
        c.samples.push_back({c.sad_hashes[c.next_hash + i], std::move(*sig)});
      }
    }
    c.next_hash += k;
    c.signatures += static_cast<int64_t>(k);
  }
}

struct BlockResult {
  double rate = 0;  // signatures per second
  double seconds = 0;
  int64_t signatures = 0;
  double cores = 0;   // process CPU time / wall time
  double others = 0;  // other processes' CPU time / wall time
};

// Runs `body(thread_index, deadline)` on `threads` threads that start together; the block lasts
// from the common start until the last thread has finished its last operation.
template <typename Body>
double RunThreads(const char* name, int threads, double seconds, BlockResult* cpu, Body body) {
  std::latch ready(threads + 1);
  std::latch go(1);
  Steady::time_point start;
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      // Named, so that a profile (perf report --sort comm) tells the clients' CPU from the
      // service's (whose threads keep the process name).
      pthread_setname_np(pthread_self(), name);
      ready.count_down();
      go.wait();
      body(t, start + std::chrono::duration_cast<Steady::duration>(
                          std::chrono::duration<double>(seconds)));
    });
  }
  ready.arrive_and_wait();
  const double cpu_start = ProcessCpuSeconds();
  const double machine_start = MachineCpuSeconds();
  start = Steady::now();
  go.count_down();
  for (std::thread& t : pool) t.join();
  const double elapsed = Seconds(Steady::now() - start);
  const double ours = ProcessCpuSeconds() - cpu_start;
  cpu->cores = ours / elapsed;
  cpu->others = std::max(0.0, (MachineCpuSeconds() - machine_start - ours) / elapsed);
  return elapsed;
}

BlockResult RawBlock(hsm::KeyStore& keys, const Scenario& s, int threads, double seconds,
                     std::string* error) {
  std::vector<int64_t> counts(static_cast<size_t>(threads), 0);
  std::mutex error_mu;
  BlockResult r;
  double elapsed =
      RunThreads("bench-raw-sign", threads, seconds, &r, [&](int t, Steady::time_point deadline) {
        Bytes digest = hsmt::Digest(HashAlgorithm::kSha256,
                                    AsBytes("csc_bench raw " + s.name + std::to_string(t)));
        int64_t n = 0;
        while (Steady::now() < deadline) {
          Result<Bytes> sig =
              keys.Sign(s.key->hsm_id, s.key->scheme, HashAlgorithm::kSha256, digest);
          if (!sig.ok()) {
            std::lock_guard lock(error_mu);
            *error = "KeyStore::Sign: " + sig.error().message();
            break;
          }
          ++n;
        }
        counts[static_cast<size_t>(t)] = n;
      });
  for (int64_t n : counts) r.signatures += n;
  r.seconds = elapsed;
  r.rate = static_cast<double>(r.signatures) / elapsed;
  return r;
}

BlockResult E2eBlock(std::vector<Client>& clients, const Scenario& s, double seconds) {
  for (Client& c : clients) c.ResetBlock();
  BlockResult r;
  double elapsed = RunThreads("bench-client", static_cast<int>(clients.size()), seconds, &r,
                              [&](int t, Steady::time_point deadline) {
                                RunClientBlock(s, clients[static_cast<size_t>(t)], deadline);
                              });
  for (const Client& c : clients) r.signatures += c.signatures;
  r.seconds = elapsed;
  r.rate = static_cast<double>(r.signatures) / elapsed;
  return r;
}

// Verifies the block's sampled signatures against the certificate's key; returns how many were
// checked, or an error message.
Result<int64_t> VerifySamples(const Scenario& s, const std::vector<Client>& clients) {
  int64_t checked = 0;
  for (const Client& c : clients) {
    for (const Sample& sample : c.samples) {
      Result<bool> valid =
          hsmt::VerifySignature(s.key->certificate_spki, s.key->scheme, HashAlgorithm::kSha256,
                                sample.hash, sample.signature);
      if (!valid.ok() || !*valid) {
        return InternalError("a " + s.name + " signature returned by signHash does not verify " +
                             "against the credential's certificate");
      }
      ++checked;
    }
  }
  return checked;
}

// ---- the disk probe --------------------------------------------------------------------------

struct DiskProbe {
  double fdatasync_p50_ms = 0;
  double fdatasync_p99_ms = 0;
  double sqlite_commit_p50_ms = 0;
  double sqlite_commit_p99_ms = 0;
};

// `probes` appends of 4 KiB + fdatasync to a file, and `probes` one-entry AppendLogEntries calls
// (one synchronous=FULL WAL commit each, the store's audit-log append) on a scratch SqliteStore,
// both alone on one thread.
Result<DiskProbe> ProbeDisk(const std::string& dir, int probes) {
  DiskProbe f;
  std::vector<double> ms;
  {
    const std::string path = dir + "/fdatasync-probe";
    // Owns the descriptor: closed on every path out of this block.
    struct File {
      int fd;
      ~File() {
        if (fd >= 0) ::close(fd);
      }
    } file{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
    if (file.fd < 0) return Unavailable("cannot create " + path);
    std::vector<char> block(4096, 'x');
    for (int i = 0; i < probes; ++i) {
      Steady::time_point start = Steady::now();
      if (::write(file.fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
          ::fdatasync(file.fd) != 0) {
        return Unavailable("write/fdatasync failed on " + path);
      }
      ms.push_back(Seconds(Steady::now() - start) * 1e3);
    }
    ::unlink(path.c_str());
    std::sort(ms.begin(), ms.end());
    f.fdatasync_p50_ms = Percentile(ms, 50);
    f.fdatasync_p99_ms = Percentile(ms, 99);
  }
  {
    const std::string path = dir + "/commit-probe.db";
    Result<std::unique_ptr<store::SqliteStore>> db = store::SqliteStore::Open(path);
    if (!db.ok()) return db.error();
    ms.clear();
    const std::string event(600, 'e');  // about the size of a one-hash `sign` event
    for (int i = 0; i < probes; ++i) {
      store::LogEntryAppend entry;
      entry.time = std::chrono::system_clock::now();
      entry.action = "probe";
      entry.render = [&event](int64_t index) -> Result<std::string> {
        return "{\"index\":" + std::to_string(index) + ",\"probe\":\"" + event + "\"}";
      };
      Steady::time_point start = Steady::now();
      Result<int64_t> index = (*db)->AppendLogEntries({&entry, 1});
      if (!index.ok()) return index.error();
      ms.push_back(Seconds(Steady::now() - start) * 1e3);
    }
    db->reset();
    for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((path + suffix).c_str());
    std::sort(ms.begin(), ms.end());
    f.sqlite_commit_p50_ms = Percentile(ms, 50);
    f.sqlite_commit_p99_ms = Percentile(ms, 99);
  }
  return f;
}

// ---- the environment -------------------------------------------------------------------------

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {}
  ~Bench() {
    clients_.clear();
    stack_.reset();  // stop serving before the ports go away
    timing_audit_.reset();
    timing_keys_.reset();
    db_.reset();
    sealer_.reset();
    keys_.reset();
    sandbox_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Returns the process exit code.
  int Run();

 private:
  Status SetUp();
  Status SetUpAccounts();
  Status MakeClientCertificates();
  std::string ClientCertificateBase(int index) const;
  Status SetUpKeys();
  Status RunScenario(Scenario& s);

  struct Row {
    std::string scenario;
    int k = 0;
    double raw = 0;
    double e2e = 0;
    double ratio = 0;
    double target = 0;
    double p50 = 0;
    double p99 = 0;
    double raw_cores = 0;
    double e2e_cores = 0;
    double raw_others = 0;
    double e2e_others = 0;
  };

  const Options options_;
  std::string dir_;
  std::unique_ptr<hsmt::SoftHsmSandbox> sandbox_;
  std::unique_ptr<hsm::Pkcs11KeyStore> keys_;
  std::unique_ptr<hsm::Pkcs11SecretSealer> sealer_;
  std::unique_ptr<store::SqliteStore> db_;
  std::unique_ptr<TimingKeyStore> timing_keys_;
  std::unique_ptr<TimingAuditSink> timing_audit_;
  SystemClock clock_;
  std::unique_ptr<pki::testing::TestCodeSigningCa> ca_;
  std::unique_ptr<cli::ServiceStack> stack_;
  uint16_t port_ = 0;
  std::string tls_certificate_file_;
  service::Actor operator_;
  std::vector<Client> clients_;
  std::map<std::string, BenchKey> bench_keys_;
  std::vector<Row> rows_;
  DiskProbe probe_;
};

Status Bench::SetUp() {
  std::string parent = options_.data_parent.empty() ? ExecutableFolder() : options_.data_parent;
  std::string pattern = parent + "/csc-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    return Unavailable("cannot create a folder in " + parent);
  dir_ = pattern;
  const std::string fs_type = FileSystemType(dir_);
  std::printf(
      "data folder: %s (%s)%s\n", dir_.c_str(), fs_type.c_str(),
      fs_type == "tmpfs" ? "  WARNING: tmpfs, commits are not durable; use --data-dir" : "");

  // The HSM: a fresh SoftHSM2 token with the key store and the sealer of signet serve.
  SIGNET_ASSIGN_OR_RETURN(sandbox_, hsmt::SoftHsmSandbox::Create());
  std::printf("SoftHSM2 token folder: %s (%s)\n", sandbox_->directory().c_str(),
              FileSystemType(sandbox_->directory()).c_str());
  SIGNET_ASSIGN_OR_RETURN(hsm::Pkcs11Options token, sandbox_->CreateToken("csc-bench"));
  SIGNET_ASSIGN_OR_RETURN(keys_, hsm::Pkcs11KeyStore::Open(std::move(token)));
  SIGNET_ASSIGN_OR_RETURN(sealer_, hsm::Pkcs11SecretSealer::Open(*keys_));
  SIGNET_ASSIGN_OR_RETURN(hsm::TokenDescription described, keys_->DescribeToken());

  SIGNET_ASSIGN_OR_RETURN(probe_, ProbeDisk(dir_, options_.commit_probes));
  std::printf(
      "disk probe of the data folder (alone, back to back, %d each): 4 KiB append + fdatasync "
      "p50 %.2f ms p99 %.2f ms; one-entry log append (SQLite WAL synchronous=FULL commit) on a new "
      "database p50 %.2f ms "
      "p99 %.2f ms (the service's own commits: --breakdown)\n",
      options_.commit_probes, probe_.fdatasync_p50_ms, probe_.fdatasync_p99_ms,
      probe_.sqlite_commit_p50_ms, probe_.sqlite_commit_p99_ms);

  SIGNET_ASSIGN_OR_RETURN(db_, store::SqliteStore::Open(dir_ + "/signet.db"));
  hsm::KeyStore* key_port = keys_.get();
  if (options_.breakdown) {
    timing_keys_ = std::make_unique<TimingKeyStore>(*keys_);
    key_port = timing_keys_.get();
  }

  // The localhost TLS identity; the clients trust the self-signed certificate itself.
  SIGNET_ASSIGN_OR_RETURN(pki::TlsIdentity tls, pki::CreateLocalhostTlsIdentity(clock_.Now()));
  tls_certificate_file_ = dir_ + "/tls.crt";
  const std::string key_file = dir_ + "/tls.key";
  SIGNET_TRY(fs::WriteFileAtomic(tls_certificate_file_, AsBytes(tls.certificate_pem), 0644));
  SIGNET_TRY(fs::WriteFileAtomic(key_file, tls.private_key_pem.view(), 0600));

  // Production settings (the defaults `signet serve` uses) except rate limits, which are off.
  cli::ServiceStackOptions o;
  o.server.bind_address = "127.0.0.1";
  o.server.port = 0;
  o.server.tls.certificate_chain_file = tls_certificate_file_;
  o.server.tls.private_key_file = key_file;
  // mTLS for the service-account clients, as `signet serve` with [tls] client_ca_file: each
  // client's token works only on a connection that presents its certificate.
  SIGNET_TRY(MakeClientCertificates());
  o.server.tls.client_ca_file = dir_ + "/client-ca.crt";
  o.server.tls.client_auth = server::ClientAuth::kOptional;
  o.signing.rate_per_minute_account = 0;
  o.log.origin = "signet.bench/csc";
  o.log.witness_file = dir_ + "/log-witness.note";  // as `signet serve` keeps it
  if (options_.breakdown) {
    o.decorate_audit = [this](service::AuditSink& log) -> service::AuditSink& {
      timing_audit_ = std::make_unique<TimingAuditSink>(log);
      return *timing_audit_;
    };
  }
  std::printf(
      "service: cli::ServiceStack with production settings (io_threads %zu, worker_threads %zu, "
      "SAD lifetime %llds, SQLite WAL synchronous=FULL, audit before answer); rate limits OFF "
      "(policy rates 0, per-account rate 0); clients are service accounts (server-to-server) "
      "on mTLS connections (P-256 client certificates from a bench CA), logged in with "
      "auth/login over them%s\n",
      o.server.io_threads, o.server.worker_threads,
      static_cast<long long>(o.signing.sad_lifetime.count()),
      options_.breakdown ? "; --breakdown: timing decorators around KeyStore and AuditSink" : "");
  SIGNET_ASSIGN_OR_RETURN(
      stack_, cli::ServiceStack::Create(
                  cli::ServicePorts{*key_port, *sealer_, *db_, clock_,
                                    service::TokenIdentity{described.label, described.serial}},
                  std::move(o)));
  SIGNET_ASSIGN_OR_RETURN(port_, stack_->Start());

  operator_.account_id = "system";
  operator_.account_name = "csc_bench";
  operator_.roles = store::RoleSet{store::Role::kAdmin};
  operator_.auth_method = service::AuthMethod::kSystem;
  SIGNET_TRY(SetUpAccounts());
  return SetUpKeys();
}

std::string Bench::ClientCertificateBase(int index) const {
  return dir_ + "/client-" + std::to_string(index);
}

// A client CA and one P-256 client certificate per client thread (pki::testing's CA, separate
// from the code-signing one): files client-ca.crt, client-N.{crt,key,der} in the data folder.
Status Bench::MakeClientCertificates() {
  SIGNET_ASSIGN_OR_RETURN(auto ca,
                          pki::testing::TestCodeSigningCa::Create("signet-csc-bench-client-ca"));
  SIGNET_TRY(fs::WriteFileAtomic(dir_ + "/client-ca.crt", AsBytes(ca->certificate_pem()), 0644));
  for (int i = 0; i < options_.clients; ++i) {
    const std::string c = ClientCertificateBase(i);
    SIGNET_ASSIGN_OR_RETURN(auto client,
                            ca->IssueTlsClient("bench-signer-" + std::to_string(i)));
    SIGNET_TRY(client.WriteFiles(c));
    SIGNET_TRY(fs::WriteFileAtomic(c + ".der", client.certificate_der, 0644));
  }
  return OkStatus();
}

Status Bench::SetUpAccounts() {
  service::AccountService& accounts = stack_->accounts();
  for (int i = 0; i < options_.clients; ++i) {
    Client c;
    c.index = i;
    c.account_name = "bench-signer-" + std::to_string(i);
    // A service account (CSBR "server-to-server"): high-volume signing is a machine's job, and a
    // person must give a fresh TOTP code with every credentials/authorize (one code per 30 s
    // step), which no client re-authorizing every second could do. It is bound to its client
    // certificate's fingerprint, logs in over its mTLS connection (not timed), and keeps that
    // connection, on which alone its token works.
    const std::string cert = ClientCertificateBase(i);
    SIGNET_ASSIGN_OR_RETURN(Bytes der, fs::ReadFile(cert + ".der"));
    SIGNET_ASSIGN_OR_RETURN(Bytes digest, pki::ComputeDigest(HashAlgorithm::kSha256, der));
    SIGNET_ASSIGN_OR_RETURN(service::AccountInfo account,
                            accounts.CreateService(service::SystemPrincipal(), c.account_name,
                                                   store::RoleSet{store::Role::kSigner},
                                                   HexEncode(digest)));
    (void)account;
    client::ClientOptions co;
    co.server_url = "https://127.0.0.1:" + std::to_string(port_);
    co.ca_file = tls_certificate_file_;
    co.client_certificate_file = cert + ".crt";
    co.client_private_key_file = cert + ".key";
    co.max_retries = 0;  // a 503 or 429 is an error here, not something to hide
    SIGNET_ASSIGN_OR_RETURN(c.http, client::HttpsClient::Create(std::move(co)));
    Result<json> login = client::CallJson(*c.http, "/csc/v2/auth/login", json::object());
    if (!login.ok()) return login.error().WithContext(c.account_name + ": mTLS login");
    c.token = login->value("access_token", "");
    if (c.token.empty()) return InternalError(c.account_name + ": login gave no access_token");
    clients_.push_back(std::move(c));
  }
  return OkStatus();
}

Status Bench::SetUpKeys() {
  SIGNET_ASSIGN_OR_RETURN(ca_, pki::testing::TestCodeSigningCa::Create("signet csc_bench CA"));
  struct Spec {
    std::string name;
    KeyAlgorithm algorithm;
    SignatureScheme scheme;
  };
  const std::vector<Spec> specs = {
      {"bench-rsa3072", KeyAlgorithm::kRsa3072, SignatureScheme::kRsaPkcs1v15},
      {"bench-p256", KeyAlgorithm::kEcP256, SignatureScheme::kEcdsa}};
  service::Caller admin;
  admin.actor = operator_;
  admin.request_id = "csc-bench-setup";
  for (const Spec& spec : specs) {
    BenchKey key{spec.name, spec.algorithm, spec.scheme, {}, {}, {}};
    SIGNET_TRY(stack_->keys().CreateKey(operator_, spec.name, spec.algorithm, "system"));
    SIGNET_ASSIGN_OR_RETURN(
        std::string csr, stack_->keys().CreateCsr(operator_, spec.name,
                                                  "/CN=signet csc_bench " + spec.name + "/C=XX"));
    SIGNET_ASSIGN_OR_RETURN(std::string chain, ca_->Issue(csr));
    SIGNET_ASSIGN_OR_RETURN(key.record,
                            stack_->keys().ImportCertificateChain(operator_, spec.name, chain));
    SIGNET_ASSIGN_OR_RETURN(Bytes hsm_id, HexDecode(key.record.hsm_key_id));
    key.hsm_id = hsm::HsmKeyId{std::move(hsm_id)};

    service::KeyPolicy policy;
    policy.allowed_sign_schemes = {spec.scheme};
    policy.allowed_hash_algorithms = {HashAlgorithm::kSha256};
    policy.max_signatures_per_authorization = std::max<int64_t>(options_.batch, 64);
    policy.rate_per_minute_key = 0;      // none
    policy.rate_per_minute_account = 0;  // none
    SIGNET_TRY(stack_->signing().SetPolicy(admin, spec.name, policy));
    for (const Client& c : clients_) {
      SIGNET_ASSIGN_OR_RETURN(service::AccountInfo info,
                              stack_->accounts().Get(service::SystemPrincipal(), c.account_name));
      SIGNET_TRY(stack_->signing().Grant(admin, spec.name, info.id));
    }

    // The certificate as a CSC client sees it: credentials/info over HTTPS. Its leaf must be the
    // one the test CA issued; its public key is what every signature is verified with.
    SIGNET_ASSIGN_OR_RETURN(
        json info,
        client::CallJson(*clients_.front().http, "/csc/v2/credentials/info",
                         json{{"credentialID", key.record.id}, {"certificates", "chain"}},
                         clients_.front().token));
    if (!info.contains("cert") || !info["cert"].contains("certificates") ||
        !info["cert"]["certificates"].is_array() || info["cert"]["certificates"].empty()) {
      return InternalError("credentials/info returned no certificate for " + spec.name);
    }
    SIGNET_ASSIGN_OR_RETURN(Bytes leaf,
                            Base64Decode(info["cert"]["certificates"][0].get<std::string>()));
    if (!ca_->Issued(leaf)) {
      return InternalError("the certificate of " + spec.name + " is not the test CA's");
    }
    SIGNET_ASSIGN_OR_RETURN(key.certificate_spki, pki::testing::SubjectPublicKeyInfoOf(leaf));
    bench_keys_.emplace(spec.name, std::move(key));
  }
  return OkStatus();
}

Status Bench::RunScenario(Scenario& s) {
  const int k = s.hashes_per_request;
  s.batch = std::max(k, options_.batch / k * k);
  std::printf(
      "\n== %s: %d hash%s per signHash request, %d hashes per SAD, %d client%s, "
      "%.2f s blocks; load average %s\n",
      s.name.c_str(), k, k == 1 ? "" : "es", s.batch, options_.clients,
      options_.clients == 1 ? "" : "s", options_.seconds, LoadAverage().c_str());
  for (Client& c : clients_) c.ResetScenario();

  // Only real signatures count: one raw signature checked against the certificate first.
  Bytes digest = hsmt::Digest(HashAlgorithm::kSha256, AsBytes("csc_bench check " + s.name));
  SIGNET_ASSIGN_OR_RETURN(
      Bytes raw_sig, keys_->Sign(s.key->hsm_id, s.key->scheme, HashAlgorithm::kSha256, digest));
  SIGNET_ASSIGN_OR_RETURN(bool raw_valid,
                          hsmt::VerifySignature(s.key->certificate_spki, s.key->scheme,
                                                HashAlgorithm::kSha256, digest, raw_sig));
  if (!raw_valid) return InternalError("a raw " + s.name + " signature does not verify");

  std::string error;
  // Warm-up: sessions, key handles, connections, SQLite pages; not counted.
  RawBlock(*keys_, s, options_.clients, options_.warmup_seconds, &error);
  if (!error.empty()) return InternalError(error);
  E2eBlock(clients_, s, options_.warmup_seconds);
  for (const Client& c : clients_) {
    if (!c.error.empty())
      return InternalError("client " + std::to_string(c.index) + ": " + c.error);
  }
  {
    // The tamper check: a signature must not verify for another hash.
    const Client* with_sample = nullptr;
    for (const Client& c : clients_) {
      if (!c.samples.empty()) with_sample = &c;
    }
    if (with_sample == nullptr) return InternalError("no signHash completed during warm-up");
    Sample tampered = with_sample->samples.front();
    tampered.hash[0] ^= 1;
    Result<bool> valid =
        hsmt::VerifySignature(s.key->certificate_spki, s.key->scheme, HashAlgorithm::kSha256,
                              tampered.hash, tampered.signature);
    if (!valid.ok() || *valid) return InternalError("a signature verified for a tampered hash");
  }

  if (timing_keys_) timing_keys_->sign.Reset();
  if (timing_audit_) {
    timing_audit_->sign.Reset();
    timing_audit_->other.Reset();
  }
  std::vector<double> raw_rates;
  std::vector<double> e2e_rates;
  std::vector<double> ratios;
  std::vector<double> raw_cores_all;
  std::vector<double> e2e_cores_all;
  std::vector<double> sign_ms;
  std::vector<double> authorize_ms;
  int64_t verified = 0;
  int64_t requests = 0;
  int64_t authorizations = 0;
  double e2e_seconds = 0;
  BlockResult raw = RawBlock(*keys_, s, options_.clients, options_.seconds, &error);
  if (!error.empty()) return InternalError(error);
  raw_rates.push_back(raw.rate);
  raw_cores_all.push_back(raw.cores);
  double raw_cores = raw.cores;
  double raw_others = raw.others;
  std::vector<double> raw_others_all = {raw.others};
  std::vector<double> e2e_others_all;
  for (int round = 1; round <= options_.rounds; ++round) {
    const std::string load = LoadAverage();
    const Steady::time_point block_start = Steady::now();
    BlockResult e2e = E2eBlock(clients_, s, options_.seconds);
    if (options_.breakdown) {
      // For `perf record -k CLOCK_MONOTONIC` + `perf report --time`: steady_clock is that clock.
      std::printf("  e2e block %d: CLOCK_MONOTONIC %.6f,%.6f\n", round,
                  Seconds(block_start.time_since_epoch()),
                  Seconds(Steady::now().time_since_epoch()));
    }
    for (const Client& c : clients_) {
      if (!c.error.empty()) {
        return InternalError("client " + std::to_string(c.index) + ": " + c.error);
      }
      sign_ms.insert(sign_ms.end(), c.sign_ms.begin(), c.sign_ms.end());
      authorize_ms.insert(authorize_ms.end(), c.authorize_ms.begin(), c.authorize_ms.end());
      requests += c.sign_requests;
      authorizations += c.authorizations;
    }
    e2e_seconds += e2e.seconds;
    SIGNET_ASSIGN_OR_RETURN(int64_t checked, VerifySamples(s, clients_));
    verified += checked;
    BlockResult raw_after = RawBlock(*keys_, s, options_.clients, options_.seconds, &error);
    if (!error.empty()) return InternalError(error);
    const double raw_mean = (raw_rates.back() + raw_after.rate) / 2;
    raw_rates.push_back(raw_after.rate);
    e2e_rates.push_back(e2e.rate);
    ratios.push_back(e2e.rate / raw_mean);
    std::printf(
        "  round %d: raw %.0f/s (CPU %.2f cores), e2e %.0f/s (%lld signatures in %.2f s, "
        "CPU %.2f cores), e2e/raw %.3f; other processes took %.2f cores in raw, %.2f in e2e; "
        "load average %s\n",
        round, raw_mean, (raw_cores + raw_after.cores) / 2, e2e.rate,
        static_cast<long long>(e2e.signatures), e2e.seconds, e2e.cores, ratios.back(),
        (raw_others + raw_after.others) / 2, e2e.others, load.c_str());
    raw_others = raw_after.others;
    raw_others_all.push_back(raw_after.others);
    e2e_others_all.push_back(e2e.others);
    raw_cores = raw_after.cores;
    raw_cores_all.push_back(raw_after.cores);
    e2e_cores_all.push_back(e2e.cores);
  }
  std::sort(sign_ms.begin(), sign_ms.end());
  std::sort(authorize_ms.begin(), authorize_ms.end());
  Row row;
  row.scenario = s.name;
  row.k = k;
  row.raw = Median(raw_rates);
  row.e2e = Median(e2e_rates);
  row.ratio = Median(ratios);
  row.target = s.target;
  row.p50 = Percentile(sign_ms, 50);
  row.p99 = Percentile(sign_ms, 99);
  row.raw_cores = Median(raw_cores_all);
  row.e2e_cores = Median(e2e_cores_all);
  row.raw_others = Median(raw_others_all);
  row.e2e_others = Median(e2e_others_all);
  std::printf(
      "  signHash: %lld requests, round trip p50 %.2f ms p99 %.2f ms; authorize (SADs carry over "
      "between blocks): %lld of %d hashes each, p50 %.2f ms; %lld signatures verified with OpenSSL "
      "against the certificate\n",
      static_cast<long long>(requests), row.p50, row.p99, static_cast<long long>(authorizations),
      s.batch, Percentile(authorize_ms, 50), static_cast<long long>(verified));
  if (timing_keys_ && timing_audit_ && requests > 0) {
    // Per signHash request, averaged over the timed e2e blocks (the raw blocks call keys_
    // directly, not the decorator, so the meters see only the service's calls).
    const double per_request_hsm = timing_keys_->sign.TotalMs() / static_cast<double>(requests);
    const double audit_ms = timing_audit_->sign.MeanMs();
    double mean_ms = 0;
    for (double v : sign_ms) mean_ms += v;
    mean_ms /= static_cast<double>(sign_ms.size());
    std::printf(
        "  breakdown per signHash (means): round trip %.2f ms = HSM signing %.2f ms + "
        "`sign` audit commit %.2f ms + the rest %.2f ms (TLS, HTTP, JSON, bearer and key "
        "look-ups, consuming the SAD's hashes (committed unflushed), queueing); "
        "authorize-side audit commits: %lld, mean %.2f ms; wall %.2f s\n",
        mean_ms, per_request_hsm, audit_ms, mean_ms - per_request_hsm - audit_ms,
        static_cast<long long>(timing_audit_->other.calls.load()), timing_audit_->other.MeanMs(),
        e2e_seconds);
  }
  rows_.push_back(row);
  return OkStatus();
}

int Bench::Run() {
  struct utsname u;
  const std::string kernel = uname(&u) == 0 ? std::string(u.sysname) + " " + u.release : "?";
  std::printf(
      "csc_bench: signHash over HTTPS vs raw KeyStore::Sign, same token and key, same "
      "run\nmachine: %s, %u hardware threads, %s; load average %s\n",
      CpuModel().c_str(), std::thread::hardware_concurrency(), kernel.c_str(),
      LoadAverage().c_str());
  Status setup = SetUp();
  if (!setup.ok()) {
    std::fprintf(stderr, "csc_bench: setup failed: %s\n", setup.error().message().c_str());
    return 1;
  }
  std::printf("listening on https://127.0.0.1:%u; %d signer service accounts with tokens\n",
              static_cast<unsigned>(port_), options_.clients);

  std::vector<Scenario> scenarios = {
      {"rsa3072-pkcs1-x1", &bench_keys_.at("bench-rsa3072"), 1, 0.9},
      {"p256-ecdsa-x64", &bench_keys_.at("bench-p256"), 64, 0.8},
      {"p256-ecdsa-x1", &bench_keys_.at("bench-p256"), 1, 0.4},
  };
  for (Scenario& s : scenarios) {
    if (!options_.scenarios.empty() &&
        std::find(options_.scenarios.begin(), options_.scenarios.end(), s.name) ==
            options_.scenarios.end()) {
      continue;
    }
    Status run = RunScenario(s);
    if (!run.ok()) {
      std::fprintf(stderr, "csc_bench: %s failed: %s\n", s.name.c_str(),
                   run.error().message().c_str());
      return 1;
    }
  }

  // Every successful signHash must have left exactly one durable `sign` event.
  int64_t sign_events = 0;
  int64_t refused_events = 0;
  for (int64_t from = 0;;) {
    Result<std::vector<store::LogEntryRow>> page = db_->ReadLogEntries(from, 5000);
    if (!page.ok()) {
      std::fprintf(stderr, "csc_bench: %s\n", page.error().message().c_str());
      return 1;
    }
    if (page->empty()) break;
    for (const store::LogEntryRow& row : *page) {
      if (row.action == "sign") ++sign_events;
      if (row.action == "sign_refused") ++refused_events;
    }
    from = page->back().index + 1;
  }
  const int64_t successes = g_successful_sign_requests.load();
  std::printf(
      "\naudit log: %lld `sign` events for %lld successful signHash requests (warm-up "
      "included), %lld `sign_refused`\n",
      static_cast<long long>(sign_events), static_cast<long long>(successes),
      static_cast<long long>(refused_events));
  if (sign_events != successes || refused_events != 0) {
    std::fprintf(stderr, "csc_bench: the audit log does not match the signatures returned\n");
    return 1;
  }

  // The probe again: other processes' writes to the same file system change it over minutes.
  Result<DiskProbe> probe_after = ProbeDisk(dir_, options_.commit_probes);
  if (probe_after.ok()) {
    std::printf(
        "disk probe at the end: fdatasync p50 %.2f ms p99 %.2f ms; one-entry log append p50 %.2f "
        "ms "
        "p99 %.2f ms\n",
        probe_after->fdatasync_p50_ms, probe_after->fdatasync_p99_ms,
        probe_after->sqlite_commit_p50_ms, probe_after->sqlite_commit_p99_ms);
  }
  std::printf(
      "\nsignatures per second, %d client threads, rate limits OFF; raw = Pkcs11KeyStore::Sign on "
      "the same token and key with as many threads; e2e = CSC authorize + signHash over HTTPS "
      "(authorize time included); ratio = median over rounds of e2e / mean(raw before, raw "
      "after); p50/p99 = signHash round trip\n",
      options_.clients);
  std::printf("%-18s %3s %10s %10s %7s %7s %8s %8s %5s %5s %5s %5s  %s\n", "scenario", "k",
              "raw sig/s", "e2e sig/s", "ratio", "target", "p50 ms", "p99 ms", "cpu r", "cpu e",
              "oth r", "oth e", "result");
  std::vector<std::string> missed;
  for (const Row& r : rows_) {
    const bool met = r.ratio >= r.target;
    if (!met) missed.push_back(r.scenario);
    std::printf("%-18s %3d %10.0f %10.0f %7.3f %7.2f %8.2f %8.2f %5.2f %5.2f %5.2f %5.2f  %s\n",
                r.scenario.c_str(), r.k, r.raw, r.e2e, r.ratio, r.target, r.p50, r.p99, r.raw_cores,
                r.e2e_cores, r.raw_others, r.e2e_others, met ? "met" : "MISSED");
  }
  std::printf(
      "cpu r / cpu e: cores this process kept busy in the raw / e2e blocks (medians; %u "
      "hardware threads); oth r / oth e: cores other processes took meanwhile (medians; near 0 "
      "on a quiet machine; in e2e blocks they may just use what the service leaves idle). Each "
      "signHash makes 2 commits through the store's one SQLite connection: the SAD's hashes "
      "consumed before signing (written, not flushed), then the `sign` log entry before the "
      "answer, whose disk flush covers both (group commit: concurrent requests share one).\n",
      std::thread::hardware_concurrency());
  std::printf("load average at the end: %s\n", LoadAverage().c_str());
  if (missed.empty()) {
    std::printf("all targets met\n");
  } else {
    std::printf("targets MISSED:");
    for (const std::string& m : missed) std::printf(" %s", m.c_str());
    std::printf(" (a measurement, not a failure: exit status 0)\n");
  }
  if (options_.smoke) std::printf("(--smoke: tiny blocks; the numbers mean nothing)\n");
  return 0;
}

}  // namespace
}  // namespace signet::bench

int main(int argc, char** argv) {
  std::optional<signet::bench::Options> options = signet::bench::ParseOptions(argc, argv);
  if (!options) {
    signet::bench::Usage();
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  signet::bench::Bench bench(std::move(*options));
  return bench.Run();
}
