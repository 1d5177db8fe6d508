// log_append_bench: durable audit-log appends per second with group commit (audit::Sequencer over
// SqliteStore) against plain one-row SQLite inserts, one durable transaction each, measured in the
// same run, at 1 and 64 concurrent appenders (issue 4 "Must show"; DESIGN.md §3 "benchmarks").
// Target: group commit at least 20x the one-transaction-per-row rate at 64 appenders.
//
// Both sides write the same table on a real file on disk, in WAL mode with synchronous=FULL (every
// commit waits for the disk to flush the WAL), with the same ~400-byte entries (shaped like a
// signature's audit JSON, the index inside them) and the same columns: action `sign`, one key, and
// each appender's own account, as the service's `sign` entries carry them (so the group side
// pays for the account terms of the block summaries, as it does in service):
//   baseline  raw sqlite3: each append is BEGIN IMMEDIATE; SELECT the next index; INSERT one row;
//             COMMIT: one durable transaction per entry, which is what the store does for a single
//             append when nothing groups them. The table is the one signet's migrations create
//             (log_entries with its append-only triggers; the block summaries of migration 5 are
//             the store's work, which the baseline's raw inserts do not do), on a fresh file. The
//             appender threads share ONE connection, taking turns under a mutex. That is the
//             baseline's best case: with a connection per thread, SQLite's busy handler makes
//             waiting writers sleep (1, 2, 5, 10 ... ms) instead of queueing, which would make the
//             baseline slower and the ratio flatter.
//   group     audit::Sequencer on SqliteStore (production code), every appender calling
//             Append with one entry in a loop; concurrent appends share one transaction.
// Each (concurrency, side) block runs --seconds on a fresh database file; the blocks alternate
// baseline, group, baseline, group so that a disk whose speed drifts hits both sides alike, and
// with --rounds R the medians are reported (rates, and the ratio as the median of the per-round
// ratios). After each block the log must hold exactly as many entries as appends were
// acknowledged, with dense indices, or the benchmark exits 1.
//
// The physical floor is printed too: the median latency of fdatasync on a file in the data
// folder, since the baseline can do at most about one append per flush. Commits per block are
// printed for both sides (a commit is one WAL flush); `strace -f -c -e trace=fsync,fdatasync`
// counts the flushes independently.
//
// Usage: log_append_bench [--seconds S] [--rounds R] [--data-dir DIR] [--smoke]
// The data folder defaults to $TMPDIR, else the folder of this executable (the build tree, on
// disk; /tmp may be tmpfs, where a flush costs nothing and the comparison means nothing).
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/sequencer.h"
#include "common/clock.h"
#include "store/sqlite/sqlite_store.h"
#include "machine.h"

namespace signet::bench {
namespace {

using Steady = std::chrono::steady_clock;

constexpr double kTargetRatio = 20;
constexpr int kConcurrencies[] = {1, 64};

struct Options {
  double seconds = 5;
  int rounds = 1;
  std::string data_parent;
  bool smoke = false;
};

void Usage() {
  std::fprintf(stderr,
               "usage: log_append_bench [--seconds S] [--rounds R] [--data-dir DIR] [--smoke]\n");
}

std::optional<Options> ParseOptions(int argc, char** argv) {
  Options o;
  const char* tmpdir = std::getenv("TMPDIR");
  if (tmpdir != nullptr && *tmpdir != '\0') o.data_parent = tmpdir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    try {
      if (a == "--smoke") {
        o.smoke = true;
      } else if (a == "--seconds") {
        auto v = next();
        if (!v) return std::nullopt;
        o.seconds = std::stod(*v);
      } else if (a == "--rounds") {
        auto v = next();
        if (!v) return std::nullopt;
        o.rounds = std::stoi(*v);
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
  if (o.smoke) {
    o.seconds = 0.3;
    o.rounds = 1;
  }
  if (o.seconds <= 0 || o.rounds < 1) return std::nullopt;
  if (o.data_parent.empty()) {
    o.data_parent = ExecutableFolder();
  }
  return o;
}

// ---- machine ---------------------------------------------------------------------------------

double Seconds(Steady::duration d) { return std::chrono::duration<double>(d).count(); }

// Median latency of write(4 KiB) + fdatasync on a file in `folder`, in milliseconds: about the
// time one durable commit has to wait for the disk.
double FlushLatencyMs(const std::string& folder) {
  const std::string path = folder + "/flush-probe";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  std::vector<double> ms;
  char block[4096] = {};
  for (int i = 0; i < 50; ++i) {
    const auto t0 = Steady::now();
    if (::pwrite(fd, block, sizeof block, 0) != static_cast<ssize_t>(sizeof block) ||
        ::fdatasync(fd) != 0) {
      ms.clear();
      break;
    }
    ms.push_back(Seconds(Steady::now() - t0) * 1000);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return ms.empty() ? -1 : Median(ms);
}

// ---- the entries -----------------------------------------------------------------------------

// A signature's audit entry as the service writes it (canonical JSON, sorted keys), about 400
// bytes; only the index differs between entries of one appender.
struct EntryShape {
  std::string account;  // the appender's account id, in the entry and in its account_id column
  std::string before_index;
  std::string after_index;
  std::string Render(int64_t index) const {
    std::string out;
    out.reserve(before_index.size() + 20 + after_index.size());
    out += before_index;
    out += std::to_string(index);
    out += after_index;
    return out;
  }
};

EntryShape ShapeFor(int appender) {
  char account[32];
  std::snprintf(account, sizeof account, "a_%016x", 0x3f2a0000u + static_cast<unsigned>(appender));
  EntryShape s;
  s.account = account;
  s.before_index = std::string("{\"action\":\"sign\",\"actor\":{\"account\":\"") + account +
                   "\",\"auth\":\"mtls\",\"client\":\"203.0.113.17\",\"role\":\"signer\"},"
                   "\"algorithm\":\"ecdsa-p256\",\"hash_algorithm\":\"sha256\",\"hashes\":[\"" +
                   std::string(64, 'a') + "\"],\"index\":";
  s.after_index =
      ",\"key\":\"k_3f2a9c0d1e5b4a7c\",\"object\":\"release-signing\",\"outcome\":\"success\","
      "\"request_id\":\"r_8c1d2e3f4a5b6c7d8e9f\",\"time\":\"2026-11-22T19:45:00.123456Z\"}";
  return s;
}

constexpr std::string_view kAction = "sign";
constexpr std::string_view kKeyId = "k_3f2a9c0d1e5b4a7c";

// ---- one block ---------------------------------------------------------------------------------

struct BlockResult {
  int64_t appends = 0;
  double seconds = 0;
  int64_t commits = 0;
  int64_t largest_batch = 0;
  double rate() const { return seconds > 0 ? static_cast<double>(appends) / seconds : 0; }
};

// Runs `threads` appenders calling `append(appender)` until `seconds` have passed; each call
// returns whether it succeeded. The time is from the common start to the last thread's last
// acknowledged append.
template <typename AppendFn>
std::optional<BlockResult> RunBlock(int threads, double seconds, AppendFn append) {
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::atomic<int64_t> appends{0};
  std::latch start(threads + 1);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      int64_t mine = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!append(t)) {
          failed = true;
          break;
        }
        ++mine;
      }
      appends += mine;
    });
  }
  start.arrive_and_wait();
  const auto t0 = Steady::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (std::thread& th : pool) th.join();
  if (failed) return std::nullopt;
  BlockResult r;
  r.appends = appends.load();
  r.seconds = Seconds(Steady::now() - t0);
  return r;
}

// A fresh database file with signet's schema, in a fresh folder.
std::optional<std::string> FreshDatabase(const std::string& root, const std::string& name) {
  const std::string dir = root + "/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/signet.db";
  auto store = store::SqliteStore::Open(path);
  if (!store.ok()) {
    std::fprintf(stderr, "cannot create %s: %s\n", path.c_str(), store.error().message().c_str());
    return std::nullopt;
  }
  return path;
}

// Checks that the log holds exactly `appends` entries, at 0 .. appends-1.
bool CheckLog(const std::string& path, int64_t appends) {
  auto store = store::SqliteStore::Open(path);
  if (!store.ok()) return false;
  auto size = (*store)->LogSize();
  auto last = (*store)->ReadLogEntries(appends > 0 ? appends - 1 : 0, 1);
  if (!size.ok() || *size != appends || !last.ok() ||
      (appends > 0 && (last->size() != 1 || (*last)[0].index != appends - 1))) {
    std::fprintf(stderr, "%s: the log holds %lld entries, %lld appends were acknowledged\n",
                 path.c_str(), size.ok() ? static_cast<long long>(*size) : -1LL,
                 static_cast<long long>(appends));
    return false;
  }
  return true;
}

// Plain one-row inserts, one durable transaction each, threads sharing one raw connection.
std::optional<BlockResult> BaselineBlock(const std::string& root, int threads, double seconds) {
  std::optional<std::string> path = FreshDatabase(root, "baseline");
  if (!path) return std::nullopt;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path->c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    std::fprintf(stderr, "cannot open %s\n", path->c_str());
    sqlite3_close_v2(db);
    return std::nullopt;
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> owned(db, sqlite3_close_v2);
  // The same settings SqliteStore uses: WAL (already set in the file), every commit synced.
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nullptr, nullptr,
                   nullptr) != SQLITE_OK) {
    return std::nullopt;
  }
  sqlite3_stmt* next = nullptr;
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "SELECT coalesce(max(idx) + 1, 0) FROM log_entries", -1, &next, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO log_entries (idx, time, action, key_id, account_id, data)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                     -1, &insert, nullptr);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> own_next(next, sqlite3_finalize);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> own_insert(insert, sqlite3_finalize);
  if (next == nullptr || insert == nullptr) return std::nullopt;

  std::vector<EntryShape> shapes;
  for (int t = 0; t < threads; ++t) shapes.push_back(ShapeFor(t));
  std::mutex mu;
  const int64_t now = ToUnixSeconds(std::chrono::system_clock::now());
  auto append = [&](int t) {
    std::lock_guard lock(mu);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return false;
    bool ok = sqlite3_step(next) == SQLITE_ROW;
    const int64_t index = ok ? sqlite3_column_int64(next, 0) : -1;
    sqlite3_reset(next);
    if (ok) {
      const std::string data = shapes[static_cast<size_t>(t)].Render(index);
      sqlite3_bind_int64(insert, 1, index);
      sqlite3_bind_int64(insert, 2, now);
      sqlite3_bind_text(insert, 3, kAction.data(), static_cast<int>(kAction.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 4, kKeyId.data(), static_cast<int>(kKeyId.size()), SQLITE_STATIC);
      const std::string& account = shapes[static_cast<size_t>(t)].account;
      sqlite3_bind_text(insert, 5, account.data(), static_cast<int>(account.size()), SQLITE_STATIC);
      sqlite3_bind_blob(insert, 6, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT);
      ok = sqlite3_step(insert) == SQLITE_DONE;
      sqlite3_reset(insert);
    }
    if (!ok || sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "baseline append failed: %s\n", sqlite3_errmsg(db));
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return false;
    }
    return true;
  };
  std::optional<BlockResult> r = RunBlock(threads, seconds, append);
  own_next.reset();
  own_insert.reset();
  owned.reset();
  if (!r || !CheckLog(*path, r->appends)) return std::nullopt;
  r->commits = r->appends;
  r->largest_batch = 1;
  return r;
}

// The Sequencer on SqliteStore: what the service runs.
std::optional<BlockResult> GroupBlock(const std::string& root, int threads, double seconds) {
  std::optional<std::string> path = FreshDatabase(root, "group");
  if (!path) return std::nullopt;
  auto store = store::SqliteStore::Open(*path);
  if (!store.ok()) return std::nullopt;
  std::optional<BlockResult> r;
  audit::SequencerStats stats;
  {
    audit::Sequencer sequencer(**store);
    std::vector<EntryShape> shapes;
    for (int t = 0; t < threads; ++t) shapes.push_back(ShapeFor(t));
    const TimePoint now = std::chrono::system_clock::now();
    auto append = [&](int t) {
      store::LogEntryAppend e;
      e.time = now;
      e.action = std::string(kAction);
      e.key_id = std::string(kKeyId);
      e.account_id = shapes[static_cast<size_t>(t)].account;
      const EntryShape* shape = &shapes[static_cast<size_t>(t)];
      e.render = [shape](int64_t index) -> Result<std::string> { return shape->Render(index); };
      std::vector<store::LogEntryAppend> one;
      one.push_back(std::move(e));
      Result<int64_t> index = sequencer.Append(std::move(one));
      if (!index.ok()) {
        std::fprintf(stderr, "sequencer append failed: %s\n", index.error().message().c_str());
        return false;
      }
      return true;
    };
    r = RunBlock(threads, seconds, append);
    stats = sequencer.stats();
  }
  store->reset();
  if (!r || !CheckLog(*path, r->appends)) return std::nullopt;
  if (stats.entries != r->appends) {
    std::fprintf(stderr, "sequencer counted %lld entries, the threads %lld\n",
                 static_cast<long long>(stats.entries), static_cast<long long>(r->appends));
    return std::nullopt;
  }
  r->commits = stats.batches;
  r->largest_batch = stats.largest_batch;
  return r;
}

int Run(const Options& o) {
  char tmpl_buf[4096];
  std::snprintf(tmpl_buf, sizeof tmpl_buf, "%s/log-append-bench-XXXXXX", o.data_parent.c_str());
  if (::mkdtemp(tmpl_buf) == nullptr) {
    std::fprintf(stderr, "cannot create a folder in %s\n", o.data_parent.c_str());
    return 1;
  }
  const std::string root = tmpl_buf;
  const std::string fs = FileSystemType(root);
  std::printf("log_append_bench: data in %s (%s)%s\n", root.c_str(), fs.c_str(),
              fs == "tmpfs" ? "  WARNING: tmpfs, flushes cost nothing; use --data-dir" : "");
  std::printf("disk flush (4 KiB write + fdatasync) p50: %.3f ms before\n", FlushLatencyMs(root));
  std::printf("entries: %zu bytes; %.1f s per block, %d round(s)%s\n",
              ShapeFor(0).Render(1'000'000).size(), o.seconds, o.rounds,
              o.smoke ? " (smoke: numbers mean nothing)" : "");

  struct Row {
    std::vector<double> base_rate, group_rate, ratio;
    int64_t base_commits = 0, group_commits = 0, base_appends = 0, group_appends = 0;
    int64_t largest = 0;
  };
  std::vector<Row> rows(std::size(kConcurrencies));
  int status = 0;
  for (int round = 0; round < o.rounds && status == 0; ++round) {
    for (size_t c = 0; c < std::size(kConcurrencies) && status == 0; ++c) {
      const int threads = kConcurrencies[c];
      std::optional<BlockResult> base = BaselineBlock(root, threads, o.seconds);
      std::optional<BlockResult> group = GroupBlock(root, threads, o.seconds);
      if (!base || !group) {
        status = 1;
        break;
      }
      Row& row = rows[c];
      row.base_rate.push_back(base->rate());
      row.group_rate.push_back(group->rate());
      row.ratio.push_back(base->rate() > 0 ? group->rate() / base->rate() : 0);
      row.base_commits += base->commits;
      row.base_appends += base->appends;
      row.group_commits += group->commits;
      row.group_appends += group->appends;
      row.largest = std::max(row.largest, group->largest_batch);
      std::printf(
          "  round %d, %2d appender(s): baseline %9.0f/s (%lld commits)  group %9.0f/s "
          "(%lld commits, largest batch %lld)  ratio %.1fx\n",
          round + 1, threads, base->rate(), static_cast<long long>(base->commits), group->rate(),
          static_cast<long long>(group->commits), static_cast<long long>(group->largest_batch),
          row.ratio.back());
    }
  }
  std::printf("disk flush (4 KiB write + fdatasync) p50: %.3f ms after\n", FlushLatencyMs(root));
  std::filesystem::remove_all(root);
  if (status != 0) {
    std::fprintf(stderr, "log_append_bench: a block failed; no numbers reported\n");
    return status;
  }

  std::printf("\n%-10s %16s %16s %8s %11s %13s %13s %8s\n", "appenders", "baseline app/s",
              "group app/s", "ratio", "target", "base/commit", "group/commit", "largest");
  for (size_t c = 0; c < std::size(kConcurrencies); ++c) {
    const Row& row = rows[c];
    const double base = Median(row.base_rate);
    const double group = Median(row.group_rate);
    // The median of the per-round ratios: each group block against the baseline block run just
    // before it, so a disk whose flush time drifts between rounds does not skew the comparison.
    const double ratio = Median(row.ratio);
    const bool has_target = kConcurrencies[c] == 64;
    char target[32] = "-";
    if (has_target) {
      std::snprintf(target, sizeof target, "%.0fx %s", kTargetRatio,
                    ratio >= kTargetRatio ? "met" : "MISSED");
    }
    std::printf("%-10d %16.0f %16.0f %7.1fx %11s %13.1f %13.1f %8lld\n", kConcurrencies[c], base,
                group, ratio, target,
                static_cast<double>(row.base_appends) /
                    static_cast<double>(std::max<int64_t>(row.base_commits, 1)),
                static_cast<double>(row.group_appends) /
                    static_cast<double>(std::max<int64_t>(row.group_commits, 1)),
                static_cast<long long>(row.largest));
  }
  // A missed target is a measurement, not a failure of the program.
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
  return signet::bench::Run(*options);
}
