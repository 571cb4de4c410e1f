#include "clients.hpp"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <unordered_map>

namespace entity::bench {
namespace asio = boost::asio;
using asio::use_awaitable;

json value_of(int i) {
  return {{"id", i}, {"data", "test_value_" + std::to_string(i)}, {"nested", {{"count", i}}}};
}
std::string key_of(int i) { return "key_" + std::to_string(i); }

namespace {

// splitmix64: the same numbers on every platform, unlike the standard distributions.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Words of a small made-up language: syllables of a consonant and a vowel. common_word(c) has
// two syllables (common_words of them), topic words three, so the two sets never meet.
constexpr std::string_view consonants = "bdfgklmnprstvz";
constexpr std::string_view vowels = "aeiou";
constexpr int syllables = 14 * 5;
constexpr int common_words = 300;

void syllable(std::string& out, int s) {
  out += consonants[static_cast<std::size_t>(s / 5)];
  out += vowels[static_cast<std::size_t>(s % 5)];
}
std::string common_word(int c) {
  std::string w;
  syllable(w, c % syllables);
  syllable(w, (c / syllables + 7 * c) % syllables);
  return w;
}
std::string topic_word(int t) {
  std::string w;
  syllable(w, t % syllables);
  syllable(w, (t * 13 + 5) % syllables);
  syllable(w, (t / syllables + 29) % syllables);
  return w;
}

}  // namespace

json fact_of(int i) {
  std::uint64_t r = mix(static_cast<std::uint64_t>(i));
  auto draw = [&r](int n) {
    r = mix(r);
    return static_cast<int>(r % static_cast<std::uint64_t>(n));
  };
  const int kind = draw(fact_kinds);
  const int topic = draw(fact_topics);
  const int words = 8 + draw(5);
  const int topic_at = draw(words);
  std::string text;
  for (int w = 0; w < words; ++w) {
    if (w) text += ' ';
    text += w == topic_at ? topic_word(topic) : common_word(draw(common_words));
  }
  json tags = json::array();
  for (int t = 2 + draw(2); t > 0; --t) tags.push_back(common_word(draw(common_words)));
  return {{"kind", "k" + std::to_string(kind)},
          {"text", std::move(text)},
          {"n", i},
          {"score", static_cast<double>(draw(1'000'000)) / 1000.0},
          {"tags", std::move(tags)},
          {"user", "u" + std::to_string(draw(1000))}};
}

std::string fact_key_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fact:%06d", i);
  return buf;
}

memory::items facts_of(int n) {
  memory::items items;
  items.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) items.emplace_back(fact_key_of(i), fact_of(i));
  return items;
}

std::string kind_of(int i) { return "k" + std::to_string(i % fact_kinds); }
std::string topic_of(int i) { return topic_word(i % fact_topics); }

memory_time bench_clock::now() const {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(memory_clock::now()) +
         std::chrono::milliseconds(ahead_ms_.load());
}

namespace {

constexpr std::size_t in_chunk = memory::load_chunk;
// Items per transaction of a sweep: memory_params::sweep_batch's default.
const std::int64_t sweep_batch = memory_params{}.sweep_batch;
// The time to live of batch_store_expiring.
constexpr std::chrono::milliseconds expiring_ttl = std::chrono::hours(1);
const char* create_memory = "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)";
// On PostgreSQL as entity-db creates it: keys in byte order, whatever the database's collation.
const char* create_memory_pg =
    "CREATE TABLE IF NOT EXISTS memory (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT)";
const char* create_bench =
    "CREATE TABLE IF NOT EXISTS bench_table "
    "(id INTEGER PRIMARY KEY, name TEXT, value REAL, data TEXT)";
// PostgreSQL's REAL is 4 bytes; SQLite's is 8.
const char* create_bench_pg =
    "CREATE TABLE IF NOT EXISTS bench_table "
    "(id INTEGER PRIMARY KEY, name TEXT, value DOUBLE PRECISION, data TEXT)";
const char* create_bench_for(const database& db) {
  return db.dialect() == sql_dialect::postgresql ? create_bench_pg : create_bench;
}
const char* insert_sql = "INSERT INTO bench_table (id, name, value, data) VALUES (?, ?, ?, ?)";
const char* select_sql = "SELECT id, name, value, data FROM bench_table WHERE id = ?";
const char* select_named_sql =
    "SELECT id, name, value, data FROM bench_table WHERE name = ? LIMIT 10";

// Items per INSERT in a batch store, as entity-db's batch_store writes them, so that the floors
// do the same work the best simple way.
constexpr std::size_t rows_per_insert = 128;

// The memory upsert for `rows` rows; placeholders as `placeholder(i)` writes the i-th (from 1).
template <class Placeholder>
std::string upsert_rows_sql(const std::string& head, const std::string& tail, std::size_t rows,
                            Placeholder placeholder) {
  std::string sql = head;
  for (std::size_t r = 0; r < rows; ++r)
    sql +=
        std::string(r ? ", (" : "(") + placeholder(2 * r + 1) + ", " + placeholder(2 * r + 2) + ")";
  return sql + tail;
}

std::string in_sql() {
  std::string sql = "SELECT key, value FROM memory WHERE key IN (";
  for (std::size_t i = 0; i < in_chunk; ++i) sql += i ? ",?" : "?";
  return sql + ")";
}

entity::params row_params(int i, const std::string& name) {
  return {i, name, i * 1.5, "data_" + std::to_string(i)};
}

// ---- raw SQLite --------------------------------------------------------------------------

class raw_sqlite final : public sync_client {
 public:
  explicit raw_sqlite(const client_config& c)
      : group_(std::max(c.group, 1)), times_(c.times), clock_(c.clock) {
    if (sqlite3_open_v2(c.path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK)
      throw std::runtime_error("sqlite_c: cannot open " + c.path);
    sqlite3_busy_timeout(db_, 5000);
    // The same settings as entity-db's defaults, so that only the access path differs.
    exec(std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") +
         (c.durable ? "FULL" : "NORMAL") +
         "; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=268435456;");
    exec(create_memory);
    upsert_ = prepare("INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)");
    upsert_many_ = prepare(upsert_rows_sql("INSERT OR REPLACE INTO memory (key, value) VALUES ", "",
                                           rows_per_insert, [](std::size_t) { return "?"; })
                               .c_str());
    load_ = prepare("SELECT value FROM memory WHERE key = ?");
    in_ = prepare(in_sql().c_str());
    by_kind_ = prepare(
        "SELECT key, value FROM memory WHERE json_extract(value, '$.kind') = ? ORDER BY key "
        "LIMIT ?");
    if (times_) {
      exec(
          "CREATE TABLE IF NOT EXISTS memory_times (key TEXT PRIMARY KEY, created_ms INTEGER, "
          "updated_ms INTEGER, expires_ms INTEGER, ttl_ms INTEGER) WITHOUT ROWID; CREATE INDEX "
          "IF NOT EXISTS memory_times_expiry ON memory_times (expires_ms) WHERE expires_ms IS "
          "NOT NULL");
      // One row, and rows_per_insert rows with one time (?1) for all, as a batch writes them.
      const std::string conflict =
          " ON CONFLICT (key) DO UPDATE SET updated_ms = excluded.updated_ms, expires_ms = NULL, "
          "ttl_ms = NULL";
      std::string many = "INSERT INTO memory_times (key, created_ms, updated_ms) VALUES ";
      for (std::size_t r = 0; r < rows_per_insert; ++r)
        many += (r ? ", (?" : "(?") + std::to_string(r + 2) + ", ?1, ?1)";
      times_upsert_ = prepare(
          ("INSERT INTO memory_times (key, created_ms, updated_ms) VALUES (?2, ?1, ?1)" + conflict)
              .c_str());
      times_upsert_many_ = prepare((many + conflict).c_str());
    }
    if (group_ > 1 || times_) {
      begin_ = prepare("BEGIN IMMEDIATE");
      savepoint_ = prepare("SAVEPOINT bench_op");
      release_ = prepare("RELEASE bench_op");
      commit_ = prepare("COMMIT");
    }
  }
  ~raw_sqlite() override {
    for (sqlite3_stmt* s : {upsert_, upsert_many_, load_, in_, insert_, select_, named_, begin_,
                            savepoint_, release_, commit_, by_kind_, by_text_, expiry_,
                            expired_rows_, expired_times_, times_upsert_, times_upsert_many_})
      sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }

  bool thread_safe() const override { return false; }

  // In groups: the first store of a group begins its transaction, the last one commits it.
  void store(const std::string& key, const json& value) override {
    if (group_ == 1 && times_) {
      step_done(begin_);
      upsert(key, value);
      step_done(commit_);
      return;
    }
    if (group_ == 1) return upsert(key, value);
    if (in_group_ == 0) step_done(begin_);
    step_done(savepoint_);
    upsert(key, value);
    step_done(release_);
    if (++in_group_ == group_) {
      step_done(commit_);
      in_group_ = 0;
    }
  }

  bool load(const std::string& key) override {
    sqlite3_bind_text(load_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    bool found = false;
    if (sqlite3_step(load_) == SQLITE_ROW) {
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(load_, 0));
      json v = json::parse(p, p + sqlite3_column_bytes(load_, 0));
      found = !v.is_discarded();
    }
    sqlite3_reset(load_);
    return found;
  }

  void batch_store(memory::items items) override {
    exec("BEGIN IMMEDIATE");
    upsert_all(items);
    exec("COMMIT");
  }

  std::size_t batch_load(std::vector<std::string> keys) override {
    std::unordered_map<std::string, json> out;
    out.reserve(keys.size());
    for (std::size_t from = 0; from < keys.size(); from += in_chunk) {
      std::size_t to = std::min(keys.size(), from + in_chunk);
      for (std::size_t i = 0; i < in_chunk; ++i) {
        const std::string& k = keys[std::min(from + i, to - 1)];
        sqlite3_bind_text(in_, static_cast<int>(i + 1), k.data(), static_cast<int>(k.size()),
                          SQLITE_STATIC);
      }
      while (sqlite3_step(in_) == SQLITE_ROW) {
        auto* k = reinterpret_cast<const char*>(sqlite3_column_text(in_, 0));
        auto* p = reinterpret_cast<const char*>(sqlite3_column_text(in_, 1));
        out.emplace(std::string(k, static_cast<std::size_t>(sqlite3_column_bytes(in_, 0))),
                    json::parse(p, p + sqlite3_column_bytes(in_, 1)));
      }
      sqlite3_reset(in_);
    }
    return out.size();
  }

  void create_table() override {
    exec(create_bench);
    insert_ = prepare(insert_sql);
    select_ = prepare(select_sql);
    named_ = prepare(select_named_sql);
  }

  void insert(int i, const std::string& name) override {
    std::string data = "data_" + std::to_string(i);
    sqlite3_bind_int64(insert_, 1, i);
    sqlite3_bind_text(insert_, 2, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    sqlite3_bind_double(insert_, 3, i * 1.5);
    sqlite3_bind_text(insert_, 4, data.data(), static_cast<int>(data.size()), SQLITE_STATIC);
    step_done(insert_);
  }

  void insert_many(int n) override {
    exec("BEGIN IMMEDIATE");
    for (int i = 0; i < n; ++i) insert(i, "name_" + std::to_string(i));
    exec("COMMIT");
  }

  bool select(int id) override {
    sqlite3_bind_int64(select_, 1, id);
    bool found = false;
    if (sqlite3_step(select_) == SQLITE_ROW) found = read_row(select_);
    sqlite3_reset(select_);
    return found;
  }

  std::size_t select_named(const std::string& name) override {
    sqlite3_bind_text(named_, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
    std::size_t n = 0;
    while (sqlite3_step(named_) == SQLITE_ROW) n += read_row(named_) ? 1 : 0;
    sqlite3_reset(named_);
    return n;
  }

  std::int64_t count(const std::string& table) override {
    sqlite3_stmt* s = prepare(("SELECT count(*) FROM " + table).c_str());
    sqlite3_step(s);
    std::int64_t n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
  }

  std::size_t search_kind(const std::string& kind) override {
    sqlite3_bind_text(by_kind_, 1, kind.data(), static_cast<int>(kind.size()), SQLITE_STATIC);
    sqlite3_bind_int(by_kind_, 2, search_limit);
    return read_hits(by_kind_);
  }

  // An FTS5 table of every item's string leaves, under the item's rowid.
  void index_text() override {
    exec("BEGIN IMMEDIATE");
    exec("CREATE VIRTUAL TABLE fts USING fts5(body)");
    exec(
        "INSERT INTO fts (rowid, body) SELECT m.rowid, (SELECT group_concat(j.value, ' ') FROM "
        "json_tree(m.value) AS j WHERE j.type = 'text') FROM memory AS m");
    exec("COMMIT");
    by_text_ = prepare(
        "SELECT m.key, m.value FROM (SELECT rowid, rank FROM fts WHERE fts MATCH ? ORDER BY "
        "rank LIMIT ?) AS f JOIN memory AS m ON m.rowid = f.rowid ORDER BY f.rank");
  }

  std::size_t search_text(const std::string& word) override {
    sqlite3_bind_text(by_text_, 1, word.data(), static_cast<int>(word.size()), SQLITE_STATIC);
    sqlite3_bind_int(by_text_, 2, search_limit);
    return read_hits(by_text_);
  }

  void batch_store_expiring(memory::items items) override {
    if (!expiry_) {
      exec(
          "CREATE TABLE IF NOT EXISTS expiry (key TEXT PRIMARY KEY, expires INTEGER NOT NULL); "
          "CREATE INDEX IF NOT EXISTS expiry_by_time ON expiry (expires, key)");
      expiry_ = prepare("INSERT OR REPLACE INTO expiry (key, expires) VALUES (?, ?)");
      // One batch: the same keys, the earliest first, for both tables (in one transaction).
      const char* batch =
          "key IN (SELECT key FROM expiry WHERE expires <= ?1 ORDER BY expires, key LIMIT ?2)";
      expired_rows_ = prepare((std::string("DELETE FROM memory WHERE ") + batch).c_str());
      expired_times_ = prepare((std::string("DELETE FROM expiry WHERE ") + batch).c_str());
    }
    const std::int64_t expires = now_ms() + expiring_ttl.count();
    exec("BEGIN IMMEDIATE");
    upsert_all(items);
    for (const auto& [key, value] : items) {
      sqlite3_bind_text(expiry_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
      sqlite3_bind_int64(expiry_, 2, expires);
      step_done(expiry_);
    }
    exec("COMMIT");
  }

  // memory_params::sweep_batch (1000) items per transaction, until a batch finds fewer (as
  // entity-db's sweep goes: a last batch that finds none, when the items are a multiple).
  swept sweep() override {
    swept out;
    const std::int64_t now = now_ms();
    for (std::int64_t n = sweep_batch; n == sweep_batch;) {
      exec("BEGIN IMMEDIATE");
      for (sqlite3_stmt* s : {expired_rows_, expired_times_}) {
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, sweep_batch);
      }
      step_done(expired_rows_);
      n = sqlite3_changes64(db_);
      step_done(expired_times_);
      exec("COMMIT");
      out.items += n;
      ++out.transactions;
    }
    return out;
  }

 private:
  // rows_per_insert items per statement; the rest one by one; in whatever transaction is open.
  void upsert_all(const memory::items& items) {
    std::size_t i = 0;
    std::vector<std::string> texts(rows_per_insert);
    for (; i + rows_per_insert <= items.size(); i += rows_per_insert) {
      for (std::size_t r = 0; r < rows_per_insert; ++r) {
        const auto& [key, value] = items[i + r];
        texts[r] = value.dump();
        const int at = static_cast<int>(2 * r);
        sqlite3_bind_text(upsert_many_, at + 1, key.data(), static_cast<int>(key.size()),
                          SQLITE_STATIC);
        sqlite3_bind_text(upsert_many_, at + 2, texts[r].data(), static_cast<int>(texts[r].size()),
                          SQLITE_STATIC);
      }
      step_done(upsert_many_);
    }
    for (; i < items.size(); ++i) upsert(items[i].first, items[i].second, false);
    if (!times_) return;
    const std::int64_t now = now_ms();
    std::size_t t = 0;
    for (; t + rows_per_insert <= items.size(); t += rows_per_insert) {
      sqlite3_bind_int64(times_upsert_many_, 1, now);
      for (std::size_t r = 0; r < rows_per_insert; ++r) {
        const std::string& key = items[t + r].first;
        sqlite3_bind_text(times_upsert_many_, static_cast<int>(r + 2), key.data(),
                          static_cast<int>(key.size()), SQLITE_STATIC);
      }
      step_done(times_upsert_many_);
    }
    for (; t < items.size(); ++t) upsert_times(items[t].first);
  }

  // One store (and its times, with times_), in whatever transaction is open.
  void upsert(const std::string& key, const json& value, bool with_times = true) {
    std::string text = value.dump();
    sqlite3_bind_text(upsert_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_text(upsert_, 2, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    step_done(upsert_);
    if (times_ && with_times) upsert_times(key);
  }
  void upsert_times(const std::string& key) {
    sqlite3_bind_int64(times_upsert_, 1, now_ms());
    sqlite3_bind_text(times_upsert_, 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    step_done(times_upsert_);
  }

  // A search's results: each key copied out, each value decoded.
  static std::size_t read_hits(sqlite3_stmt* s) {
    std::size_t n = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::string key(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)),
                      static_cast<std::size_t>(sqlite3_column_bytes(s, 0)));
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, 1));
      json v = json::parse(p, p + sqlite3_column_bytes(s, 1));
      n += !key.empty() && !v.is_discarded() ? 1 : 0;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return n;
  }
  std::int64_t now_ms() const {
    memory_time t =
        clock_ ? clock_->now()
               : std::chrono::time_point_cast<std::chrono::milliseconds>(memory_clock::now());
    return t.time_since_epoch().count();
  }

  // Reads every column the way a caller would (the text copied out).
  static bool read_row(sqlite3_stmt* s) {
    volatile std::int64_t id = sqlite3_column_int64(s, 0);
    std::string name(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)),
                     static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
    volatile double v = sqlite3_column_double(s, 2);
    std::string data(reinterpret_cast<const char*>(sqlite3_column_text(s, 3)),
                     static_cast<std::size_t>(sqlite3_column_bytes(s, 3)));
    (void)id;
    (void)v;
    return !name.empty() && !data.empty();
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite_c: ") + sqlite3_errmsg(db_));
    return s;
  }
  void exec(const std::string& sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      throw std::runtime_error("sqlite_c: " + m);
    }
  }
  void step_done(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
      throw std::runtime_error(std::string("sqlite_c: ") + sqlite3_errmsg(db_));
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* upsert_ = nullptr;
  sqlite3_stmt* upsert_many_ = nullptr;
  sqlite3_stmt* load_ = nullptr;
  sqlite3_stmt* in_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* select_ = nullptr;
  sqlite3_stmt* named_ = nullptr;
  // Group commit: stores per transaction, how many the open one holds, its control statements.
  const int group_;
  const bool times_;
  sqlite3_stmt* times_upsert_ = nullptr;
  sqlite3_stmt* times_upsert_many_ = nullptr;
  int in_group_ = 0;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* savepoint_ = nullptr;
  sqlite3_stmt* release_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  // Searches and expiry.
  sqlite3_stmt* by_kind_ = nullptr;
  sqlite3_stmt* by_text_ = nullptr;
  sqlite3_stmt* expiry_ = nullptr;
  sqlite3_stmt* expired_rows_ = nullptr;
  sqlite3_stmt* expired_times_ = nullptr;
  std::shared_ptr<bench_clock> clock_;
};

// ---- raw libpq ---------------------------------------------------------------------------

// What a careful libpq program does: prepared statements, text parameters, results read in
// place, and batches in pipeline mode (a round trip per 1,000 statements, not per statement).
class raw_libpq final : public sync_client {
 public:
  explicit raw_libpq(const std::string& url) : pg_(PQconnectdb(url.c_str())) {
    if (!pg_ || PQstatus(pg_) != CONNECTION_OK)
      throw std::runtime_error("libpq_sync: cannot connect: " + message());
    PQsetNoticeProcessor(
        pg_, [](void*, const char*) {}, nullptr);
    exec(create_memory_pg);
    const std::string conflict = " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    const auto numbered = [](std::size_t i) { return "$" + std::to_string(i); };
    prepare("upsert",
            upsert_rows_sql("INSERT INTO memory (key, value) VALUES ", conflict, 1, numbered));
    prepare("upsert_many", upsert_rows_sql("INSERT INTO memory (key, value) VALUES ", conflict,
                                           rows_per_insert, numbered));
    prepare("load", "SELECT value FROM memory WHERE key = $1");
    std::string in = "SELECT key, value FROM memory WHERE key IN (";
    for (std::size_t i = 0; i < in_chunk; ++i) in += (i ? ",$" : "$") + std::to_string(i + 1);
    prepare("in", in + ")");
  }
  ~raw_libpq() override { PQfinish(pg_); }

  bool thread_safe() const override { return false; }

  void store(const std::string& key, const json& value) override {
    std::string text = value.dump();
    const char* v[] = {key.c_str(), text.c_str()};
    command(PQexecPrepared(pg_, "upsert", 2, v, nullptr, nullptr, 0));
  }

  bool load(const std::string& key) override {
    const char* v[] = {key.c_str()};
    PGresult* r = rows(PQexecPrepared(pg_, "load", 1, v, nullptr, nullptr, 0));
    bool found = false;
    if (PQntuples(r) > 0) {
      const char* p = PQgetvalue(r, 0, 0);
      json j = json::parse(p, p + PQgetlength(r, 0, 0));
      found = !j.is_discarded();
    }
    PQclear(r);
    return found;
  }

  // rows_per_insert items per statement; the rest one by one.
  void batch_store(memory::items items) override {
    const std::size_t full = items.size() / rows_per_insert;
    const std::size_t statements = full + items.size() % rows_per_insert;
    pipelined(statements, [&](std::size_t s, std::vector<std::string>& args) {
      args.clear();
      if (s >= full) {
        const auto& [key, value] = items[full * rows_per_insert + (s - full)];
        args = {key, value.dump()};
        return "upsert";
      }
      for (std::size_t i = s * rows_per_insert; i < (s + 1) * rows_per_insert; ++i) {
        args.push_back(items[i].first);
        args.push_back(items[i].second.dump());
      }
      return "upsert_many";
    });
  }

  std::size_t batch_load(std::vector<std::string> keys) override {
    std::unordered_map<std::string, json> out;
    out.reserve(keys.size());
    std::vector<const char*> v(in_chunk);
    for (std::size_t from = 0; from < keys.size(); from += in_chunk) {
      std::size_t to = std::min(keys.size(), from + in_chunk);
      for (std::size_t i = 0; i < in_chunk; ++i) v[i] = keys[std::min(from + i, to - 1)].c_str();
      PGresult* r = rows(
          PQexecPrepared(pg_, "in", static_cast<int>(in_chunk), v.data(), nullptr, nullptr, 0));
      for (int i = 0; i < PQntuples(r); ++i) {
        const char* p = PQgetvalue(r, i, 1);
        out.emplace(
            std::string(PQgetvalue(r, i, 0), static_cast<std::size_t>(PQgetlength(r, i, 0))),
            json::parse(p, p + PQgetlength(r, i, 1)));
      }
      PQclear(r);
    }
    return out.size();
  }

  void create_table() override {
    exec(create_bench_pg);
    prepare("insert", "INSERT INTO bench_table (id, name, value, data) VALUES ($1, $2, $3, $4)");
    prepare("select", "SELECT id, name, value, data FROM bench_table WHERE id = $1");
    prepare("named", "SELECT id, name, value, data FROM bench_table WHERE name = $1 LIMIT 10");
  }

  void insert(int i, const std::string& name) override {
    std::vector<std::string> args;
    row_args(i, name, args);
    const char* v[] = {args[0].c_str(), args[1].c_str(), args[2].c_str(), args[3].c_str()};
    command(PQexecPrepared(pg_, "insert", 4, v, nullptr, nullptr, 0));
  }

  void insert_many(int n) override {
    pipelined(static_cast<std::size_t>(n), [&](std::size_t i, std::vector<std::string>& args) {
      row_args(static_cast<int>(i), "name_" + std::to_string(i), args);
      return "insert";
    });
  }

  bool select(int id) override {
    std::string key = std::to_string(id);
    const char* v[] = {key.c_str()};
    PGresult* r = rows(PQexecPrepared(pg_, "select", 1, v, nullptr, nullptr, 0));
    bool found = PQntuples(r) > 0 && read_row(r, 0);
    PQclear(r);
    return found;
  }

  std::size_t select_named(const std::string& name) override {
    const char* v[] = {name.c_str()};
    PGresult* r = rows(PQexecPrepared(pg_, "named", 1, v, nullptr, nullptr, 0));
    std::size_t n = 0;
    for (int i = 0; i < PQntuples(r); ++i) n += read_row(r, i) ? 1 : 0;
    PQclear(r);
    return n;
  }

  std::int64_t count(const std::string& table) override {
    PGresult* r = rows(PQexec(pg_, ("SELECT count(*) FROM " + table).c_str()));
    std::int64_t n = std::strtoll(PQgetvalue(r, 0, 0), nullptr, 10);
    PQclear(r);
    return n;
  }

  // The search and sweep workloads run on SQLite only (the runner refuses them here).
  std::size_t search_kind(const std::string&) override { sqlite_only(); }
  void index_text() override { sqlite_only(); }
  std::size_t search_text(const std::string&) override { sqlite_only(); }
  void batch_store_expiring(memory::items) override { sqlite_only(); }
  swept sweep() override { sqlite_only(); }

 private:
  static constexpr std::size_t chunk = 1000;

  [[noreturn]] static void sqlite_only() {
    throw std::runtime_error("libpq_sync: memory search and sweep workloads run on SQLite only");
  }

  // Reads every column the way a caller would (the text converted or copied out).
  static bool read_row(const PGresult* r, int i) {
    volatile std::int64_t id = std::strtoll(PQgetvalue(r, i, 0), nullptr, 10);
    std::string name(PQgetvalue(r, i, 1), static_cast<std::size_t>(PQgetlength(r, i, 1)));
    volatile double v = std::strtod(PQgetvalue(r, i, 2), nullptr);
    std::string data(PQgetvalue(r, i, 3), static_cast<std::size_t>(PQgetlength(r, i, 3)));
    (void)id;
    (void)v;
    return !name.empty() && !data.empty();
  }
  static void row_args(int i, const std::string& name, std::vector<std::string>& args) {
    char buf[64];
    auto end = std::to_chars(buf, buf + sizeof buf, i * 1.5).ptr;
    args = {std::to_string(i), name, std::string(buf, end), "data_" + std::to_string(i)};
  }

  std::string message() const {
    std::string m = pg_ ? PQerrorMessage(pg_) : "out of memory";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }
  void fail(PGresult* r) {
    std::string m = r ? PQresultErrorMessage(r) : "";
    if (r) PQclear(r);
    if (m.empty()) m = message();
    throw std::runtime_error("libpq_sync: " + m);
  }
  void command(PGresult* r) {
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) fail(r);
    PQclear(r);
  }
  PGresult* rows(PGresult* r) {
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) fail(r);
    return r;
  }
  void exec(const char* sql) { command(PQexec(pg_, sql)); }
  void prepare(const char* name, const std::string& sql) {
    command(PQprepare(pg_, name, sql.c_str(), 0, nullptr));
  }

  // BEGIN, `n` executions of prepared statements, COMMIT: `fill(i, args)` gives the i-th one's
  // parameters and returns its name. In pipeline mode, a sync point (and the wait for its
  // results) every `chunk` statements.
  template <class Fill>
  void pipelined(std::size_t n, Fill fill) {
    if (PQenterPipelineMode(pg_) != 1) throw std::runtime_error("libpq_sync: " + message());
    std::vector<std::string> args;
    std::vector<const char*> v;
    bool ok = PQsendQueryParams(pg_, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
    std::string failure;
    for (std::size_t from = 0; ok && failure.empty() && from <= n; from += chunk) {
      std::size_t to = std::min(n, from + chunk);
      for (std::size_t i = from; ok && i < to; ++i) {
        const char* statement = fill(i, args);
        v.clear();
        for (const auto& a : args) v.push_back(a.c_str());
        ok = PQsendQueryPrepared(pg_, statement, static_cast<int>(v.size()), v.data(), nullptr,
                                 nullptr, 0) == 1;
      }
      if (ok && to == n)
        ok = PQsendQueryParams(pg_, "COMMIT", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1;
      if (ok) ok = PQpipelineSync(pg_) == 1;
      if (ok) ok = drain_to_sync(failure);
      if (to == n) break;
    }
    if (!ok && failure.empty()) failure = message();
    if (!failure.empty() && ok) {
      // The server skipped the rest up to the sync point; the transaction is aborted.
      std::string ignored;
      if (PQsendQueryParams(pg_, "ROLLBACK", 0, nullptr, nullptr, nullptr, nullptr, 0) == 1 &&
          PQpipelineSync(pg_) == 1)
        drain_to_sync(ignored);
    }
    PQexitPipelineMode(pg_);
    if (!failure.empty()) throw std::runtime_error("libpq_sync: " + failure);
  }

  // Reads results up to the next sync point; the first error's message goes to `failure`.
  // False when the connection failed.
  bool drain_to_sync(std::string& failure) {
    for (;;) {
      PGresult* r = PQgetResult(pg_);
      if (!r) {  // the end of one statement's results
        if (PQstatus(pg_) != CONNECTION_OK) return false;
        continue;
      }
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_FATAL_ERROR && failure.empty()) failure = PQresultErrorMessage(r);
      PQclear(r);
      if (st == PGRES_PIPELINE_SYNC) return true;
    }
  }

  PGconn* pg_;
};

// The first use of a memory creates its table, and on a fresh file that first commit also
// writes the new write-ahead log's header and syncs it and the folder: milliseconds on a disk
// whose fsync is slow, once per database, not per operation. The raw clients create the table
// when they open, before any workload is timed; entity-db's clients do the same, by a load of
// a key never stored. (Statements are still prepared on first use, inside the timed part.)
void open_memory(const memory& m) { (void)m.load("entitydb-bench: no such key"); }

// The searches of the memory_search_* workloads.
search_query kind_query(const std::string& kind) {
  search_query q;
  q.filter = {{"kind", kind}};
  q.limit = search_limit;
  return q;
}
search_query text_query(const std::string& word) {
  search_query q;
  q.text = word;
  q.limit = search_limit;
  return q;
}
// The word of the untimed search that builds the full-text index: in no fact.
const std::string index_word = "entitydb";

bool read_row(const row& r) {
  volatile std::int64_t id = r.get<std::int64_t>(0);
  (void)id;
  return !r.get<std::string>(1).empty() && r.get<double>(2) >= 0 && !r.get<std::string>(3).empty();
}

// ---- entity-db sync ----------------------------------------------------------------------

class entity_sync final : public sync_client {
 public:
  entity_sync(const database& db, const memory_params& params) : db_(db), mem_(db, params) {
    open_memory(mem_);
  }
  bool thread_safe() const override { return true; }
  void store(const std::string& key, const json& value) override { mem_.store(key, value); }
  bool load(const std::string& key) override { return mem_.load(key).has_value(); }
  void batch_store(memory::items items) override { mem_.batch_store(std::move(items)); }
  std::size_t batch_load(std::vector<std::string> keys) override {
    return mem_.batch_load(std::move(keys)).size();
  }
  void create_table() override { db_.execute(create_bench_for(db_)); }
  void insert(int i, const std::string& name) override {
    db_.execute(insert_sql, row_params(i, name));
  }
  void insert_many(int n) override {
    std::vector<entity::params> rows;
    rows.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) rows.push_back(row_params(i, "name_" + std::to_string(i)));
    db_.execute_many(insert_sql, std::move(rows));
  }
  bool select(int id) override {
    auto r = db_.fetch_one(select_sql, {id});
    return r && read_row(*r);
  }
  std::size_t select_named(const std::string& name) override {
    std::size_t n = 0;
    for (const row& r : db_.fetch_all(select_named_sql, {name})) n += read_row(r) ? 1 : 0;
    return n;
  }
  std::int64_t count(const std::string& table) override {
    return db_.fetch_one("SELECT count(*) FROM " + table)->get<std::int64_t>(0);
  }
  std::size_t search_kind(const std::string& kind) override {
    return mem_.search(kind_query(kind)).size();
  }
  void index_text() override { (void)mem_.search(text_query(index_word)); }
  std::size_t search_text(const std::string& word) override {
    return mem_.search(text_query(word)).size();
  }
  void batch_store_expiring(memory::items items) override {
    mem_.batch_store(std::move(items), expiring_ttl);
  }
  swept sweep() override {
    const auto before = db_.stats().operations;
    swept out;
    out.items = mem_.sweep();
    out.transactions = static_cast<std::int64_t>(db_.stats().operations - before);
    return out;
  }

 private:
  database db_;
  memory mem_;
};

// ---- entity-db async ---------------------------------------------------------------------

class entity_async final : public async_client {
 public:
  entity_async(const database& db, const memory_params& params) : db_(db), mem_(db, params) {
    open_memory(mem_);
  }
  awaitable<> store(std::string key, json value) override {
    co_await mem_.async_store(std::move(key), std::move(value), use_awaitable);
  }
  awaitable<bool> load(std::string key) override {
    auto v = co_await mem_.async_load(std::move(key), use_awaitable);
    co_return v.has_value();
  }
  awaitable<> batch_store(memory::items items) override {
    co_await mem_.async_batch_store(std::move(items), use_awaitable);
  }
  awaitable<std::size_t> batch_load(std::vector<std::string> keys) override {
    auto m = co_await mem_.async_batch_load(std::move(keys), use_awaitable);
    co_return m.size();
  }
  awaitable<> create_table() override {
    std::string create = create_bench_for(db_);
    co_await db_.async_execute(std::move(create), {}, use_awaitable);
  }
  awaitable<> insert(int i, std::string name) override {
    co_await db_.async_execute(insert_sql, row_params(i, name), use_awaitable);
  }
  awaitable<> insert_many(int n) override {
    std::vector<entity::params> rows;
    rows.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) rows.push_back(row_params(i, "name_" + std::to_string(i)));
    co_await db_.async_execute_many(insert_sql, std::move(rows), use_awaitable);
  }
  awaitable<bool> select(int id) override {
    entity::params args{id};
    auto r = co_await db_.async_fetch_one(select_sql, std::move(args), use_awaitable);
    co_return r&& read_row(*r);
  }
  awaitable<std::size_t> select_named(std::string name) override {
    entity::params args{std::move(name)};
    auto rows = co_await db_.async_fetch_all(select_named_sql, std::move(args), use_awaitable);
    std::size_t n = 0;
    for (const row& r : rows) n += read_row(r) ? 1 : 0;
    co_return n;
  }
  awaitable<std::int64_t> count(std::string table) override {
    auto r = co_await db_.async_fetch_one("SELECT count(*) FROM " + table, {}, use_awaitable);
    co_return r->get<std::int64_t>(0);
  }
  awaitable<std::size_t> search_kind(std::string kind) override {
    auto hits = co_await mem_.async_search(kind_query(kind), use_awaitable);
    co_return hits.size();
  }
  awaitable<> index_text() override {
    (void)co_await mem_.async_search(text_query(index_word), use_awaitable);
  }
  awaitable<std::size_t> search_text(std::string word) override {
    auto hits = co_await mem_.async_search(text_query(word), use_awaitable);
    co_return hits.size();
  }
  awaitable<> batch_store_expiring(memory::items items) override {
    co_await mem_.async_batch_store(std::move(items), expiring_ttl, use_awaitable);
  }
  awaitable<swept> sweep() override {
    const auto before = db_.stats().operations;
    swept out;
    out.items = co_await mem_.async_sweep(use_awaitable);
    out.transactions = static_cast<std::int64_t>(db_.stats().operations - before);
    co_return out;
  }

 private:
  database db_;
  memory mem_;
};

// ---- the sync API on a thread pool ---------------------------------------------------------

// Runs `f` on `pool` and resumes the awaiting coroutine on its own executor with the result:
// what asyncio.to_thread does.
template <class F>
auto to_thread(asio::thread_pool& pool, F f) {
  using R = decltype(f());
  using T = std::conditional_t<std::is_void_v<R>, int, R>;
  return asio::async_initiate<decltype(use_awaitable), void(std::exception_ptr, T)>(
      [&pool](auto handler, F job) {
        auto work = asio::make_work_guard(handler);
        asio::post(pool, [f = std::move(job), handler = std::move(handler),
                          work = std::move(work)]() mutable {
          std::exception_ptr ep;
          T value{};
          try {
            if constexpr (std::is_void_v<R>)
              f();
            else
              value = f();
          } catch (...) {
            ep = std::current_exception();
          }
          asio::dispatch(work.get_executor(),
                         [handler = std::move(handler), ep, value = std::move(value)]() mutable {
                           std::move(handler)(ep, std::move(value));
                         });
        });
      },
      use_awaitable, std::move(f));
}

class threadpool_client final : public async_client {
 public:
  threadpool_client(std::unique_ptr<sync_client> inner, int threads)
      : inner_(std::move(inner)), pool_(static_cast<std::size_t>(threads)) {}
  ~threadpool_client() override { pool_.join(); }

  awaitable<> store(std::string key, json value) override {
    co_await to_thread(pool_, [&] { inner_->store(key, value); });
  }
  awaitable<bool> load(std::string key) override {
    co_return co_await to_thread(pool_, [&] { return inner_->load(key); });
  }
  awaitable<> batch_store(memory::items items) override {
    co_await to_thread(pool_, [&] { inner_->batch_store(std::move(items)); });
  }
  awaitable<std::size_t> batch_load(std::vector<std::string> keys) override {
    co_return co_await to_thread(pool_, [&] { return inner_->batch_load(std::move(keys)); });
  }
  awaitable<> create_table() override {
    co_await to_thread(pool_, [&] { inner_->create_table(); });
  }
  awaitable<> insert(int i, std::string name) override {
    co_await to_thread(pool_, [&] { inner_->insert(i, name); });
  }
  awaitable<> insert_many(int n) override {
    co_await to_thread(pool_, [&] { inner_->insert_many(n); });
  }
  awaitable<bool> select(int id) override {
    co_return co_await to_thread(pool_, [&] { return inner_->select(id); });
  }
  awaitable<std::size_t> select_named(std::string name) override {
    co_return co_await to_thread(pool_, [&] { return inner_->select_named(name); });
  }
  awaitable<std::int64_t> count(std::string table) override {
    co_return co_await to_thread(pool_, [&] { return inner_->count(table); });
  }
  awaitable<std::size_t> search_kind(std::string kind) override {
    co_return co_await to_thread(pool_, [&] { return inner_->search_kind(kind); });
  }
  awaitable<> index_text() override {
    co_await to_thread(pool_, [&] { inner_->index_text(); });
  }
  awaitable<std::size_t> search_text(std::string word) override {
    co_return co_await to_thread(pool_, [&] { return inner_->search_text(word); });
  }
  awaitable<> batch_store_expiring(memory::items items) override {
    co_await to_thread(pool_, [&] { inner_->batch_store_expiring(std::move(items)); });
  }
  awaitable<swept> sweep() override {
    co_return co_await to_thread(pool_, [&] { return inner_->sweep(); });
  }

 private:
  std::unique_ptr<sync_client> inner_;
  asio::thread_pool pool_;
};

}  // namespace

std::unique_ptr<sync_client> make_raw_sqlite_client(const client_config& c) {
  return std::make_unique<raw_sqlite>(c);
}
std::unique_ptr<sync_client> make_raw_libpq_client(const std::string& url) {
  return std::make_unique<raw_libpq>(url);
}
std::unique_ptr<sync_client> make_entity_sync_client(const database& db,
                                                     const memory_params& params) {
  return std::make_unique<entity_sync>(db, params);
}
std::unique_ptr<async_client> make_entity_async_client(const database& db,
                                                       const memory_params& params) {
  return std::make_unique<entity_async>(db, params);
}
std::unique_ptr<async_client> make_threadpool_client(std::unique_ptr<sync_client> inner,
                                                     int threads) {
  return std::make_unique<threadpool_client>(std::move(inner), threads);
}

}  // namespace entity::bench
