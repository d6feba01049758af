#include "control/sqlite_store.hpp"

#include <deque>
#include <memory>

#include <sqlite3.h>

#include "caf/all.hpp"
#include "control/local_store.hpp"
#include "control/store_backend.hpp"
#include "net/seam/assert.hpp"

namespace drtp::control {

namespace {

/// The layout below; a file with another is refused, not guessed at.
constexpr int64_t schema_version = 1;

// Keys and values are BLOBs: compared byte by byte (as std::string
// orders them), whatever bytes they hold.
constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  revision INTEGER PRIMARY KEY,
  type INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  created INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', 1), ('revision', 0),
  ('compact_revision', 0);
)sql";

struct db_closer {
  void operator()(sqlite3* db) const {
    sqlite3_close_v2(db);
  }
};
struct stmt_finalizer {
  void operator()(sqlite3_stmt* s) const {
    sqlite3_finalize(s);
  }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

/// Resets a statement when the scope that used it ends, on every path.
class stmt_use {
public:
  explicit stmt_use(const stmt_ptr& s) : s_(s.get()) {
  }
  ~stmt_use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  stmt_use(const stmt_use&) = delete;
  stmt_use& operator=(const stmt_use&) = delete;

  void blob(int i, const std::string& s) {
    // A non-null pointer even for "", so an empty value is a BLOB, not NULL.
    sqlite3_bind_blob(s_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void integer(int i, uint64_t v) {
    sqlite3_bind_int64(s_, i, static_cast<sqlite3_int64>(v));
  }
  /// SQLITE_ROW, SQLITE_DONE or an error.
  int step() {
    return sqlite3_step(s_);
  }
  std::string column_blob(int i) const {
    auto p = static_cast<const char*>(sqlite3_column_blob(s_, i));
    auto n = sqlite3_column_bytes(s_, i);
    return p ? std::string(p, static_cast<size_t>(n)) : std::string();
  }
  uint64_t column_u64(int i) const {
    return static_cast<uint64_t>(sqlite3_column_int64(s_, i));
  }

private:
  sqlite3_stmt* s_;
};

bool under(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

class sqlite_backend final : public store_backend {
public:
  /// The backend on `path`, or null with `error` (without the path).
  static std::unique_ptr<sqlite_backend> open(const sqlite_store_params& p, std::string& error) {
    sqlite3* raw = nullptr;
    auto rc = sqlite3_open_v2(p.path.c_str(), &raw,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              nullptr);
    db_ptr db(raw);
    if (rc != SQLITE_OK) {
      error = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
      return nullptr;
    }
    std::unique_ptr<sqlite_backend> b(new sqlite_backend(std::move(db), p.limits));
    if (!b->setup(p.busy_timeout_ms, error) || !b->load(error))
      return nullptr;
    return b;
  }

  uint64_t revision() const override {
    return revision_;
  }
  uint64_t compact_revision() const override {
    return compact_revision_;
  }
  uint64_t key_count() const override {
    return key_count_;
  }
  uint64_t data_bytes() const override {
    return data_bytes_;
  }

  bool find(const std::string& key, bool& found, store_record& out, std::string& error) override {
    stmt_use q(find_);
    q.blob(1, key);
    auto rc = q.step();
    found = rc == SQLITE_ROW;
    if (found) {
      out.key = key;
      out.value = q.column_blob(0);
      out.create_revision = q.column_u64(1);
      out.mod_revision = q.column_u64(2);
      return true;
    }
    return rc == SQLITE_DONE || failed(error);
  }

  bool scan(const std::string& prefix, uint32_t limit, std::vector<store_record>& out,
            bool& more, std::string& error) override {
    stmt_use q(scan_);
    q.blob(1, prefix);
    more = false;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      auto key = q.column_blob(0);
      if (!under(key, prefix))
        return true;
      if (out.size() == limit) {
        more = true;
        return true;
      }
      out.push_back({std::move(key), q.column_blob(1), q.column_u64(2), q.column_u64(3)});
    }
    return rc == SQLITE_DONE || failed(error);
  }

  bool apply(const store_change& c, std::string& error) override {
    DRTP_ASSERT(c.record.mod_revision == revision_ + 1, "changes come in revision order");
    auto change_bytes = c.record.key.size() + c.record.value.size();
    // What compaction will drop, decided before the transaction and done
    // to the in-memory mirror only after it commits.
    size_t drop = 0;
    uint64_t kept_bytes = history_bytes_ + change_bytes;
    while (history_.size() + 1 - drop > lim_.history_max || kept_bytes > lim_.history_bytes_max) {
      DRTP_ASSERT(drop < history_.size(), "the history holds at least the newest change");
      kept_bytes -= history_[drop++].second;
    }
    auto compact = drop > 0 ? history_[drop - 1].first : compact_revision_;
    uint64_t old_bytes = 0;
    bool existed = false;
    if (!exec("BEGIN IMMEDIATE", error))
      return false;
    bool ok = record_size(c.record.key, existed, old_bytes, error) && write_record(c, error)
              && write_history(c, compact, error) && exec("COMMIT", error);
    if (!ok) {
      std::string ignored;
      exec("ROLLBACK", ignored);
      return false;
    }
    revision_ = c.record.mod_revision;
    compact_revision_ = compact;
    if (existed) {
      key_count_ -= 1;
      data_bytes_ -= old_bytes;
    }
    if (c.type == store_event_type::put) {
      key_count_ += 1;
      data_bytes_ += change_bytes;
    }
    history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(drop));
    history_.emplace_back(revision_, change_bytes);
    history_bytes_ = kept_bytes;
    return true;
  }

  bool changes(uint64_t after, const std::string& prefix, uint32_t max,
               std::vector<store_change>& out, uint64_t& scanned, std::string& error) override {
    DRTP_ASSERT(after >= compact_revision_, "a replay starts within the history");
    stmt_use q(history_since_);
    q.integer(1, after);
    scanned = revision_;
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      auto key = q.column_blob(2);
      if (!under(key, prefix))
        continue;
      store_change c;
      c.type = q.column_u64(1) == 0 ? store_event_type::put : store_event_type::del;
      c.record = {std::move(key), q.column_blob(3), q.column_u64(4), q.column_u64(0)};
      c.created = q.column_u64(5) != 0;
      out.push_back(std::move(c));
      if (out.size() == max) {
        scanned = out.back().record.mod_revision;
        return true;
      }
    }
    return rc == SQLITE_DONE || failed(error);
  }

private:
  sqlite_backend(db_ptr db, const store_limits& lim) : db_(std::move(db)), lim_(lim) {
  }

  /// SQLite's message ("database or disk is full"), for the caller's line.
  bool failed(std::string& error) const {
    error = sqlite3_errmsg(db_.get());
    return false;
  }

  bool exec(const char* sql, std::string& error) {
    return sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr) == SQLITE_OK || failed(error);
  }

  bool prepare(const char* sql, stmt_ptr& out, std::string& error) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql, -1, &s, nullptr) != SQLITE_OK)
      return failed(error);
    out.reset(s);
    return true;
  }

  /// One PRAGMA whose answer must be `expected` (journal_mode answers).
  bool pragma(const char* sql, const char* expected, std::string& error) {
    stmt_ptr s;
    if (!prepare(sql, s, error))
      return false;
    stmt_use q(s);
    auto rc = q.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return failed(error);
    if (expected && (rc != SQLITE_ROW || q.column_blob(0) != expected)) {
      error = std::string(sql) + " did not answer " + expected;
      return false;
    }
    return true;
  }

  bool setup(uint32_t busy_timeout_ms, std::string& error) {
    sqlite3_busy_timeout(db_.get(), static_cast<int>(busy_timeout_ms));
    // Exclusive: the revision, counts and history index below mirror the
    // file, so no other writer may change it under them.
    return pragma("PRAGMA locking_mode = EXCLUSIVE", "exclusive", error)
           && pragma("PRAGMA journal_mode = WAL", "wal", error)
           && pragma("PRAGMA synchronous = FULL", nullptr, error)
           && exec("BEGIN IMMEDIATE", error) && exec(schema_sql, error) && exec("COMMIT", error)
           && prepare("SELECT value, create_revision, mod_revision FROM records WHERE key = ?1",
                      find_, error)
           && prepare("SELECT key, value, create_revision, mod_revision FROM records"
                      " WHERE key >= ?1 ORDER BY key",
                      scan_, error)
           && prepare("SELECT length(key) + length(value) FROM records WHERE key = ?1", size_,
                      error)
           && prepare("INSERT OR REPLACE INTO records (key, value, create_revision, mod_revision)"
                      " VALUES (?1, ?2, ?3, ?4)",
                      upsert_, error)
           && prepare("DELETE FROM records WHERE key = ?1", erase_, error)
           && prepare("INSERT INTO history (revision, type, key, value, create_revision, created)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                      append_, error)
           && prepare("DELETE FROM history WHERE revision <= ?1", compact_, error)
           && prepare("UPDATE meta SET value = ?2 WHERE name = ?1", set_meta_, error)
           && prepare("SELECT revision, type, key, value, create_revision, created FROM history"
                      " WHERE revision > ?1 ORDER BY revision",
                      history_since_, error);
  }

  bool query_u64(const char* sql, uint64_t& out, std::string& error) {
    stmt_ptr s;
    if (!prepare(sql, s, error))
      return false;
    stmt_use q(s);
    if (q.step() != SQLITE_ROW)
      return failed(error);
    out = q.column_u64(0);
    return true;
  }

  /// The mirror of the file: revision, counts, the history's index.
  bool load(std::string& error) {
    uint64_t schema = 0;
    if (!query_u64("SELECT value FROM meta WHERE name = 'schema'", schema, error)
        || !query_u64("SELECT value FROM meta WHERE name = 'revision'", revision_, error)
        || !query_u64("SELECT value FROM meta WHERE name = 'compact_revision'", compact_revision_,
                      error)
        || !query_u64("SELECT count(*) FROM records", key_count_, error)
        || !query_u64("SELECT coalesce(sum(length(key) + length(value)), 0) FROM records",
                      data_bytes_, error))
      return false;
    if (schema != static_cast<uint64_t>(schema_version)) {
      error = "schema version " + std::to_string(schema) + ", this drtp-control knows "
              + std::to_string(schema_version);
      return false;
    }
    stmt_ptr s;
    if (!prepare("SELECT revision, length(key) + length(value) FROM history ORDER BY revision", s,
                 error))
      return false;
    stmt_use q(s);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      auto rev = q.column_u64(0);
      // The history is every revision from compact + 1 to the last.
      if (rev != compact_revision_ + history_.size() + 1) {
        error = "the history skips from revision " + std::to_string(rev - 1) + " (damaged file?)";
        return false;
      }
      history_.emplace_back(rev, q.column_u64(1));
      history_bytes_ += q.column_u64(1);
    }
    if (rc != SQLITE_DONE)
      return failed(error);
    if (compact_revision_ + history_.size() != revision_) {
      error = "the history ends before revision " + std::to_string(revision_) + " (damaged file?)";
      return false;
    }
    return true;
  }

  bool record_size(const std::string& key, bool& existed, uint64_t& bytes, std::string& error) {
    stmt_use q(size_);
    q.blob(1, key);
    auto rc = q.step();
    existed = rc == SQLITE_ROW;
    bytes = existed ? q.column_u64(0) : 0;
    return existed || rc == SQLITE_DONE || failed(error);
  }

  bool write_record(const store_change& c, std::string& error) {
    if (c.type == store_event_type::del) {
      stmt_use q(erase_);
      q.blob(1, c.record.key);
      return q.step() == SQLITE_DONE || failed(error);
    }
    stmt_use q(upsert_);
    q.blob(1, c.record.key);
    q.blob(2, c.record.value);
    q.integer(3, c.record.create_revision);
    q.integer(4, c.record.mod_revision);
    return q.step() == SQLITE_DONE || failed(error);
  }

  bool set_meta(const char* name, uint64_t value, std::string& error) {
    stmt_use q(set_meta_);
    sqlite3_bind_text(set_meta_.get(), 1, name, -1, SQLITE_STATIC);
    q.integer(2, value);
    return q.step() == SQLITE_DONE || failed(error);
  }

  /// The change into the history, the older changes out of it.
  bool write_history(const store_change& c, uint64_t compact, std::string& error) {
    {
      stmt_use q(append_);
      q.integer(1, c.record.mod_revision);
      q.integer(2, c.type == store_event_type::put ? 0 : 1);
      q.blob(3, c.record.key);
      q.blob(4, c.record.value);
      q.integer(5, c.record.create_revision);
      q.integer(6, c.created ? 1 : 0);
      if (q.step() != SQLITE_DONE)
        return failed(error);
    }
    if (compact != compact_revision_) {
      stmt_use q(compact_);
      q.integer(1, compact);
      if (q.step() != SQLITE_DONE || !set_meta("compact_revision", compact, error))
        return failed(error);
    }
    return set_meta("revision", c.record.mod_revision, error);
  }

  db_ptr db_;
  store_limits lim_;
  stmt_ptr find_, scan_, size_, upsert_, erase_, append_, compact_, set_meta_, history_since_;
  uint64_t revision_ = 0;
  uint64_t compact_revision_ = 0;
  uint64_t key_count_ = 0;
  uint64_t data_bytes_ = 0;
  /// (revision, bytes of key and value) of every change in the history.
  std::deque<std::pair<uint64_t, uint64_t>> history_;
  uint64_t history_bytes_ = 0;
};

} // namespace

caf::actor spawn_sqlite_store(caf::actor_system& sys, sqlite_store_params p, std::string& error) {
  std::string why;
  auto backend = sqlite_backend::open(p, why);
  if (!backend) {
    error = "sqlite store " + p.path + ": " + why;
    return nullptr;
  }
  // Its calls block (fsync on every write): a thread of its own, never
  // the I/O loop's.
  std::shared_ptr<store_backend> shared(std::move(backend));
  return sys.spawn<caf::detached>(local_store, std::move(shared), p.limits);
}

} // namespace drtp::control
