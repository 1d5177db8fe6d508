#!/usr/bin/env python3
# log_query_compare.py: what schema migration 5 (block summaries instead of four per-entry
# indexes on log_entries) costs the entry query of GET /api/v1/log/entries, measured once with
# Python's sqlite3 module (the same libsqlite3 as signet) on a synthetic log.
#
# It builds a log of N entries (default 1 000 000; 90 % `sign`, 8 % `authorize`, 2 % others,
# 20 keys and 50 accounts, one rare key every 50 000 entries, 100 entries per second) with the
# schema of migration 4 read from src/store/sqlite/migrations.cc, times six query shapes with the
# per-entry indexes (the SQL SqliteStore ran before migration 5), then applies migration 5 (also
# read from migrations.cc) and times the same shapes the way SqliteStore::QueryLogEntries now
# answers them (sqlite_store_log.cc; the query walk is re-implemented below, so keep the two in
# step if either changes). Each shape asks for a page of 100 entries; times are means of 20 runs.
#
# Usage: python3 bench/log_query_compare.py [N] [DB_PATH]   (about 20 s for a million entries)
import os
import random
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = open(os.path.join(HERE, "..", "src", "store", "sqlite", "migrations.cc")).read()


def migration_sql(name):
    start = 'constexpr std::string_view %s = R"sql(' % name
    a = MIGRATIONS.index(start) + len(start)
    return MIGRATIONS[a:MIGRATIONS.index(')sql"', a)]


def build(path, n):
    if os.path.exists(path):
        os.remove(path)
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript(migration_sql("kCreateLog"))
    rng = random.Random(1)
    keys = ["k_%d" % i for i in range(20)]
    accounts = ["a_%d" % i for i in range(50)]
    actions = ["sign"] * 90 + ["authorize"] * 8 + ["login_success", "key_create"]
    c.execute("BEGIN")
    rows = []
    for i in range(n):
        action = rng.choice(actions)
        key = rng.choice(keys) if action in ("sign", "authorize") else ""
        if i % 50000 == 7:
            key = "k_rare"
        rows.append((i, T0 + i // 100, action, key, rng.choice(accounts), b"x" * 400))
    c.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?, ?, ?)", rows)
    c.execute("COMMIT")
    return c


T0 = 1_800_000_000
COLUMNS = "SELECT idx, time, action, key_id, account_id, data FROM log_entries"


def old_query(c, f, limit=100, after=-1):
    # SqliteStore::QueryLogEntries before migration 5.
    sql, args = COLUMNS + " WHERE idx > ?", [after]
    if "since" in f:
        sql, args = sql + " AND time >= ?", args + [f["since"]]
    if "until" in f:
        sql, args = sql + " AND time < ?", args + [f["until"]]
    if "key" in f:
        sql, args = sql + " AND key_id != '' AND key_id = ?", args + [f["key"]]
    if "account" in f:
        sql, args = sql + " AND account_id != '' AND account_id = ?", args + [f["account"]]
    if "action" in f:
        sql, args = sql + " AND action = ?", args + [f["action"]]
    return c.execute(sql + " ORDER BY idx LIMIT ?", args + [limit]).fetchall()


def new_query(c, f, limit=100, after=-1):
    # SqliteStore::QueryLogEntries since migration 5.
    filters, fargs = "", []
    for name, column, op in (("since", "time", ">="), ("until", "time", "<"), ("key", "key_id", "="),
                             ("account", "account_id", "="), ("action", "action", "=")):
        if name in f:
            filters += " AND %s %s ?" % (column, op)
            fargs.append(f[name])
    out = []

    def read(lo, hi):
        out.extend(c.execute(COLUMNS + " WHERE idx >= ? AND idx < ?" + filters +
                             " ORDER BY idx LIMIT ?", [lo, hi] + fargs + [limit - len(out)]))

    last = c.execute("SELECT block, run_max FROM log_blocks ORDER BY block DESC LIMIT 1").fetchone()
    end = last[0] + 1 if last else 0
    start = after + 1
    first = start >> 8
    if "since" in f and first < end:
        row = c.execute("SELECT block FROM log_blocks WHERE run_max >= ? ORDER BY run_max, block"
                        " LIMIT 1", [f["since"]]).fetchone()
        first = max(first, row[0] if row else end)
    if first < end:
        terms = [p + f[k] for k, p in (("key", "key:"), ("account", "account:"),
                                       ("action", "action:")) if k in f]
        args = [first, end]
        if not terms:
            sql = "SELECT b.block FROM log_blocks AS b WHERE b.block >= ? AND b.block < ?"
        else:
            sql = ("SELECT b.block FROM log_block_terms AS t CROSS JOIN log_blocks AS b"
                   " ON b.block = t.block WHERE t.block >= ? AND t.block < ? AND t.term = ?")
            args.append(terms[0])
            for term in terms[1:]:
                sql += " AND EXISTS (SELECT 1 FROM log_block_terms WHERE term = ? AND block = b.block)"
                args.append(term)
        if "since" in f:
            sql, args = sql + " AND b.max_time >= ?", args + [f["since"]]
        if "until" in f:
            sql, args = sql + " AND b.min_time < ?", args + [f["until"]]
        for (block,) in c.cursor().execute(sql + " ORDER BY b.block", args):
            if len(out) >= limit:
                break
            read(max(start, block << 8), (block + 1) << 8)
    if len(out) < limit:
        read(max(start, end << 8), 2**62)
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "log-query-compare.db")
    c = build(path, n)
    shapes = [
        ("key k_3 (20 % of entries)", {"key": "k_3"}),
        ("key k_rare (1 in 50 000)", {"key": "k_rare"}),
        ("action login_success (1 %)", {"action": "login_success"}),
        ("account a_7 and action key_create (1 in 5 000)", {"account": "a_7", "action": "key_create"}),
        ("since one hour before the end", {"since": T0 + n // 100 - 3600}),
        ("a one-minute window in the middle", {"since": T0 + n // 200, "until": T0 + n // 200 + 60}),
    ]

    def timed(query, f):
        t = time.perf_counter()
        for _ in range(20):
            rows = query(c, f)
        return (time.perf_counter() - t) / 20 * 1000, rows

    before = [timed(old_query, f) for _, f in shapes]
    c.executescript(migration_sql("kCreateLogBlocks"))
    after = [timed(new_query, f) for _, f in shapes]
    print("entry query, page of 100, log of %d entries, sqlite %s" % (n, sqlite3.sqlite_version))
    print("%-50s %18s %18s" % ("shape", "per-entry indexes", "block summaries"))
    for (label, f), (t0, r0), (t1, r1) in zip(shapes, before, after):
        if r0 != r1:
            sys.exit("the two answers differ for " + label)
        print("%-50s %15.3f ms %15.3f ms  (%d rows)" % (label, t0, t1, len(r0)))
    c.close()
    os.remove(path)


if __name__ == "__main__":
    main()
