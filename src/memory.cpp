#include "entity/memory.hpp"

#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <mutex>

namespace entity {
namespace asio = boost::asio;

// What every view of one memory shares: the SQL of its backend, fixed when the memory is made
// (views are made from any thread while others use the memory, so nothing here is rewritten),
// and whether the table is known to exist.
struct memory::shared {
  explicit shared(bool pg)
      : upsert(pg ? "INSERT INTO memory (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                  : "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)"),
        // Bytes, not characters: SQLite's length() of TEXT counts characters.
        value_bytes(pg ? "octet_length(value)" : "length(CAST(value AS BLOB))") {}
  const std::string upsert;
  const std::string value_bytes;
  std::atomic<bool> table_ready{false};
};

namespace {

constexpr const char* create_sql =
    "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)";
constexpr const char* load_sql = "SELECT value FROM memory WHERE key = ?";
constexpr const char* erase_sql = "DELETE FROM memory WHERE key = ?";
constexpr const char* exists_sql = "SELECT 1 FROM memory WHERE key = ?";

// '%', '_' and the escape character itself become literal in a LIKE pattern.
std::string escape_like(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The WHERE clause selecting keys of the view `prefix` that match `pattern`, with its
// parameters. A scope is a key range [prefix, prefix with its last byte raised): exact byte
// comparison, unlike LIKE, which ignores ASCII case.
std::string where_matching(const std::string& prefix, const std::string& pattern, params& args) {
  if (prefix.empty()) {
    args.emplace_back(pattern);
    return " WHERE key LIKE ? ESCAPE '\\'";
  }
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  args.emplace_back(prefix);
  args.emplace_back(upper);
  args.emplace_back(escape_like(prefix) + pattern);
  return " WHERE key >= ? AND key < ? AND key LIKE ? ESCAPE '\\'";
}

std::string encode(const json& v, const std::string& key) {
  try {
    return v.dump();
  } catch (const json::exception& e) {
    throw error(errc::invalid_argument,
                {"the value of key '" + key + "' cannot be written as JSON: " + e.what(), {}});
  }
}

// Decodes a stored value; a value that is not JSON is reported with its key, never dropped.
json decode(const value& stored, const std::string& key, error_code& ec, diagnostics* diag) {
  if (stored.is_null()) return json(nullptr);
  const std::string* text = stored.is_text() ? &stored.as_text() : nullptr;
  std::string from_blob;
  if (!text && stored.is_blob()) {
    const auto& b = stored.as_blob().bytes;
    from_blob.assign(reinterpret_cast<const char*>(b.data()), b.size());
    text = &from_blob;
  }
  if (text) {
    json j = json::parse(*text, nullptr, false);
    if (!j.is_discarded()) return j;
  }
  ec = make_error_code(errc::decode_error);
  if (diag) {
    diag->clear();  // a caller's diagnostics may hold an earlier failure
    diag->message = "the stored value of key '" + key + "' is not valid JSON" +
                    (text ? ": " + sql_excerpt(*text) : std::string());
  }
  return json();
}

json decode_or_throw(const value& stored, const std::string& key) {
  error_code ec;
  diagnostics diag;
  json j = decode(stored, key, ec, &diag);
  throw_if(ec, diag);
  return j;
}

std::string in_list_sql() {
  std::string sql = "SELECT key, value FROM memory WHERE key IN (";
  for (std::size_t i = 0; i < memory::load_chunk; ++i) sql += i ? ",?" : "?";
  return sql + ")";
}
const std::string& batch_load_sql() {
  static const std::string sql = in_list_sql();
  return sql;
}

// The parameters of one chunk of a batch_load; short chunks repeat their last key so that
// every chunk shares one prepared statement.
params chunk_params(const std::vector<std::string>& keys, std::size_t from,
                    const std::string& prefix) {
  params args;
  args.reserve(memory::load_chunk);
  std::size_t to = std::min(keys.size(), from + memory::load_chunk);
  for (std::size_t i = from; i < to; ++i) args.emplace_back(prefix + keys[i]);
  while (args.size() < memory::load_chunk) args.push_back(args.back());
  return args;
}

void collect(std::vector<row>& rows, const std::string& prefix, memory::loaded& out, error_code& ec,
             diagnostics* diag) {
  for (row& r : rows) {
    std::string key = r[0].as_text().substr(prefix.size());
    json j = decode(r[1], key, ec, diag);
    if (ec) return;
    out.emplace(std::move(key), std::move(j));
  }
}

// Completes `h` with (ec, args...) outside the call that started the operation, as asio
// requires: through a thread of the system executor, then on the handler's own executor. A
// type-erased handler's executor cannot be required to be non-blocking, hence the hop.
template <class... A>
void complete_later(asio::any_completion_handler<void(error_code, A...)>& h, error_code ec,
                    std::type_identity_t<A>... args) {
  auto work = asio::make_work_guard(h);  // keeps the caller's executor running meanwhile
  asio::post(asio::system_executor(),
             [h = std::move(h), work = std::move(work), ec, ... args = std::move(args)]() mutable {
               auto ex = work.get_executor();
               asio::dispatch(ex, [h = std::move(h), ec, ... args = std::move(args)]() mutable {
                 std::move(h)(ec, std::move(args)...);
               });
             });
}

// Fails `h` with `ec` and empty results.
template <class... A>
void fail_later(asio::any_completion_handler<void(error_code, A...)>& h, error_code ec) {
  complete_later(h, ec, A{}...);
}

// The database's async calls, with or without the caller's diagnostics.
template <class Cont>
void run_execute(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_execute(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_execute(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_fetch_one(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_fetch_one(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_fetch_one(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_fetch_all(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_fetch_all(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_fetch_all(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_transaction(const database& db, transaction_body body, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_transaction(std::move(body), *diag, std::forward<Cont>(c));
  else
    db.async_transaction(std::move(body), std::forward<Cont>(c));
}

// The first async use of a memory: creates the table without waiting for it, then `retry(h)`
// starts the operation again (the table is known from then on), or `h` fails with the
// creation's error. Waiting would block the caller's executor, and a caller running on the
// engine's writer thread (a plain callback of a write) would wait for itself forever.
template <class H, class Retry>
void create_table_then(const database& db, std::shared_ptr<memory::shared> s, diagnostics* diag,
                       H h, Retry retry) {
  auto work = asio::make_work_guard(h);  // the caller's executor has nothing else to wait on
  run_execute(db, create_sql, {}, diag,
              [s = std::move(s), h = std::move(h), retry = std::move(retry),
               work = std::move(work)](error_code ec, result) mutable {
                if (ec) return fail_later(h, ec);
                s->table_ready.store(true, std::memory_order_release);
                retry(std::move(h));
              });
}

}  // namespace

memory::memory(database db)
    : memory(db, "", std::make_shared<shared>(db.backend_name() == "postgres")) {}

memory::memory(database db, std::string prefix, std::shared_ptr<shared> s)
    : db_(std::move(db)), prefix_(std::move(prefix)), shared_(std::move(s)) {}

memory memory::scope(std::string_view name) const {
  if (name.empty()) throw error(errc::invalid_argument, {"a scope name must not be empty", {}});
  return memory(db_, prefix_ + std::string(name) + ":", shared_);
}

bool memory::table_known() const noexcept {
  return shared_->table_ready.load(std::memory_order_acquire);
}

// Several threads may each create the table on a first use at once: CREATE ... IF NOT EXISTS
// makes that harmless, so no lock is held across the statement.
void memory::ensure_table() const {
  if (table_known()) return;
  db_.execute(create_sql);
  shared_->table_ready.store(true, std::memory_order_release);
}

// ---- sync ---------------------------------------------------------------------------------

void memory::store(std::string key, json value) const {
  ensure_table();
  db_.execute(shared_->upsert, {prefix_ + key, encode(value, key)});
}

std::optional<json> memory::load(std::string key) const {
  ensure_table();
  auto r = db_.fetch_one(load_sql, {prefix_ + key});
  if (!r) return std::nullopt;
  return decode_or_throw((*r)[0], key);
}

json memory::load(std::string key, json default_value) const {
  auto v = load(std::move(key));
  return v ? std::move(*v) : std::move(default_value);
}

bool memory::erase(std::string key) const {
  ensure_table();
  return db_.execute(erase_sql, {prefix_ + key}).rows_affected > 0;
}

bool memory::exists(std::string key) const {
  ensure_table();
  return db_.fetch_one(exists_sql, {prefix_ + key}).has_value();
}

std::vector<std::string> memory::keys(std::string pattern) const {
  ensure_table();
  params args;
  std::string sql =
      "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
  std::vector<std::string> out;
  for (const row& r : db_.fetch_all(std::move(sql), std::move(args)))
    out.push_back(r[0].as_text().substr(prefix_.size()));
  return out;
}

std::int64_t memory::clear(std::string pattern) const {
  ensure_table();
  params args;
  std::string sql = "DELETE FROM memory" + where_matching(prefix_, pattern, args);
  return db_.execute(std::move(sql), std::move(args)).rows_affected;
}

std::int64_t memory::size() const {
  ensure_table();
  params args;
  std::string sql = "SELECT count(*) FROM memory" + where_matching(prefix_, "%", args);
  return db_.fetch_one(std::move(sql), std::move(args))->get<std::int64_t>(0);
}

memory_stats memory::stats() const {
  ensure_table();
  params args;
  std::string sql = "SELECT count(*), coalesce(sum(" + shared_->value_bytes + "), 0) FROM memory" +
                    where_matching(prefix_, "%", args);
  auto r = db_.fetch_one(std::move(sql), std::move(args));
  memory_stats s;
  s.keys = r->get<std::int64_t>(0);
  s.value_bytes = r->get<std::int64_t>(1);
  s.engine = db_.stats();
  return s;
}

namespace {
// The body of a batch_store: binds one item at a time, so nothing beyond the items themselves
// is held in memory however many there are.
transaction_body batch_store_body(std::shared_ptr<const memory::items> values, std::string prefix,
                                  std::string upsert) {
  return [values = std::move(values), prefix = std::move(prefix),
          upsert = std::move(upsert)](session& s) {
    params args(2);
    for (const auto& [key, v] : *values) {
      args[0] = prefix + key;
      args[1] = encode(v, key);
      s.execute(upsert, args);
    }
  };
}
}  // namespace

void memory::batch_store(items values) const {
  ensure_table();
  if (values.empty()) return;
  db_.transaction(
      batch_store_body(std::make_shared<const items>(std::move(values)), prefix_, shared_->upsert));
}

memory::loaded memory::batch_load(std::vector<std::string> keys) const {
  ensure_table();
  loaded out;
  out.reserve(keys.size());
  for (std::size_t from = 0; from < keys.size(); from += load_chunk) {
    auto rows = db_.fetch_all(batch_load_sql(), chunk_params(keys, from, prefix_));
    error_code ec;
    diagnostics diag;
    collect(rows, prefix_, out, ec, &diag);
    throw_if(ec, diag);
  }
  return out;
}

// ---- async --------------------------------------------------------------------------------
// Each continuation is bound to the executor of the caller's handler: the database dispatches
// it there, so the handler runs where asio's rules say it must.

void memory::start_store(diagnostics* diag, void_handler h, std::string key, json value) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key),
                              value = std::move(value)](void_handler h) mutable {
                               self.start_store(diag, std::move(h), std::move(key),
                                                std::move(value));
                             });
  std::string text;
  try {
    text = encode(value, key);
  } catch (const error& e) {
    if (diag) *diag = e.diag();
    return fail_later(h, e.code());
  }
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(
      ex, [h = std::move(h)](error_code ec, result) mutable { std::move(h)(ec); });
  run_execute(db_, shared_->upsert, {prefix_ + key, std::move(text)}, diag, std::move(cont));
}

void memory::start_load(diagnostics* diag, handler<std::optional<json>> h, std::string key) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, key = std::move(key)](handler<std::optional<json>> h) mutable {
          self.start_load(diag, std::move(h), std::move(key));
        });
  std::string stored_key = prefix_ + key;
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h), key = std::move(key), diag](
                                          error_code ec, std::optional<row> r) mutable {
    std::optional<json> out;
    if (!ec && r) out = decode((*r)[0], key, ec, diag);
    if (ec) out.reset();
    std::move(h)(ec, std::move(out));
  });
  run_fetch_one(db_, load_sql, {std::move(stored_key)}, diag, std::move(cont));
}

void memory::start_erase(diagnostics* diag, handler<bool> h, std::string key) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key)](handler<bool> h) mutable {
                               self.start_erase(diag, std::move(h), std::move(key));
                             });
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, !ec && r.rows_affected > 0);
  });
  run_execute(db_, erase_sql, {prefix_ + key}, diag, std::move(cont));
}

void memory::start_exists(diagnostics* diag, handler<bool> h, std::string key) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key)](handler<bool> h) mutable {
                               self.start_exists(diag, std::move(h), std::move(key));
                             });
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont =
      asio::bind_executor(ex, [h = std::move(h)](error_code ec, std::optional<row> r) mutable {
        std::move(h)(ec, !ec && r.has_value());
      });
  run_fetch_one(db_, exists_sql, {prefix_ + key}, diag, std::move(cont));
}

void memory::start_keys(diagnostics* diag, handler<std::vector<std::string>> h,
                        std::string pattern) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, pattern = std::move(pattern)](
                                 handler<std::vector<std::string>> h) mutable {
                               self.start_keys(diag, std::move(h), std::move(pattern));
                             });
  params args;
  std::string sql =
      "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(
      ex, [h = std::move(h), n = prefix_.size()](error_code ec, std::vector<row> rows) mutable {
        std::vector<std::string> out;
        if (!ec) {
          out.reserve(rows.size());
          for (const row& r : rows) out.push_back(r[0].as_text().substr(n));
        }
        std::move(h)(ec, std::move(out));
      });
  run_fetch_all(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_clear(diagnostics* diag, handler<std::int64_t> h, std::string pattern) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, pattern = std::move(pattern)](handler<std::int64_t> h) mutable {
          self.start_clear(diag, std::move(h), std::move(pattern));
        });
  params args;
  std::string sql = "DELETE FROM memory" + where_matching(prefix_, pattern, args);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, ec ? 0 : r.rows_affected);
  });
  run_execute(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_size(diagnostics* diag, handler<std::int64_t> h) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag](handler<std::int64_t> h) mutable {
                               self.start_size(diag, std::move(h));
                             });
  params args;
  std::string sql = "SELECT count(*) FROM memory" + where_matching(prefix_, "%", args);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont =
      asio::bind_executor(ex, [h = std::move(h)](error_code ec, std::optional<row> r) mutable {
        std::move(h)(ec, (!ec && r) ? r->get<std::int64_t>(0) : 0);
      });
  run_fetch_one(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_batch_store(diagnostics* diag, void_handler h, items values) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, values = std::move(values)](void_handler h) mutable {
          self.start_batch_store(diag, std::move(h), std::move(values));
        });
  if (values.empty()) return complete_later(h, error_code{});
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont =
      asio::bind_executor(ex, [h = std::move(h)](error_code ec) mutable { std::move(h)(ec); });
  run_transaction(
      db_,
      batch_store_body(std::make_shared<const items>(std::move(values)), prefix_, shared_->upsert),
      diag, std::move(cont));
}

void memory::start_batch_load(diagnostics* diag, handler<loaded> h,
                              std::vector<std::string> keys) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, keys = std::move(keys)](handler<loaded> h) mutable {
          self.start_batch_load(diag, std::move(h), std::move(keys));
        });
  if (keys.empty()) return complete_later(h, error_code{}, loaded{});
  // The chunks run concurrently on the readers; the last one to finish completes the handler.
  // Each chunk has diagnostics of its own: the engine fills them from its own threads.
  struct gather {
    // Boost 1.81's any_completion_handler move-assignment wraps the handler in itself; only
    // ever move-construct it.
    gather(handler<loaded> handler, std::size_t chunks, diagnostics* caller)
        : remaining(chunks), h(std::move(handler)), diag(caller) {
      if (diag) chunk_diags.resize(chunks);
    }
    std::mutex mu;
    std::size_t remaining;
    error_code ec;
    loaded out;
    handler<loaded> h;
    diagnostics* diag;
    std::vector<diagnostics> chunk_diags;
    diagnostics first_failure;
  };
  const std::size_t chunks = (keys.size() + load_chunk - 1) / load_chunk;
  auto ex = asio::get_associated_executor(h);
  auto state = std::make_shared<gather>(std::move(h), chunks, diag);
  state->out.reserve(keys.size());
  for (std::size_t i = 0; i < chunks; ++i) {
    diagnostics* chunk_diag = diag ? &state->chunk_diags[i] : nullptr;
    auto cont = asio::bind_executor(
        ex, [state, chunk_diag, prefix = prefix_](error_code ec, std::vector<row> rows) {
          std::unique_lock lk(state->mu);
          if (ec) {
            if (!state->ec && chunk_diag) state->first_failure = std::move(*chunk_diag);
          } else if (!state->ec) {
            collect(rows, prefix, state->out, ec, state->diag ? &state->first_failure : nullptr);
          }
          if (ec && !state->ec) state->ec = ec;
          if (--state->remaining > 0) return;
          lk.unlock();
          if (state->ec) {
            state->out.clear();
            if (state->diag) *state->diag = std::move(state->first_failure);
          }
          std::move(state->h)(state->ec, std::move(state->out));
        });
    run_fetch_all(db_, batch_load_sql(), chunk_params(keys, i * load_chunk, prefix_), chunk_diag,
                  std::move(cont));
  }
}

}  // namespace entity
