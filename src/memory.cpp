#include "entity/memory.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <mutex>

namespace entity {
namespace asio = boost::asio;

// What every view of one memory shares: the SQL of its backend and whether the table exists.
struct memory::shared {
  bool postgres = false;
  std::once_flag table_once;
  std::atomic<bool> table_ready{false};
  std::string upsert;
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
  if (diag)
    diag->message = "the stored value of key '" + key + "' is not valid JSON" +
                    (text ? ": " + sql_excerpt(*text) : std::string());
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
params chunk_params(const std::vector<std::string>& keys, std::size_t from, const std::string& prefix) {
  params args;
  args.reserve(memory::load_chunk);
  std::size_t to = std::min(keys.size(), from + memory::load_chunk);
  for (std::size_t i = from; i < to; ++i) args.emplace_back(prefix + keys[i]);
  while (args.size() < memory::load_chunk) args.push_back(args.back());
  return args;
}

void collect(std::vector<row>& rows, const std::string& prefix, memory::loaded& out,
             error_code& ec, diagnostics* diag) {
  for (row& r : rows) {
    std::string key = r[0].as_text().substr(prefix.size());
    json j = decode(r[1], key, ec, diag);
    if (ec) return;
    out.emplace(std::move(key), std::move(j));
  }
}


// Completes `h` now, with `args`, on its executor.
template <class H, class... A>
void complete_now(H& h, A... args) {
  auto ex = asio::get_associated_executor(h);
  asio::dispatch(ex, [h = std::move(h), ... args = std::move(args)]() mutable {
    std::move(h)(std::move(args)...);
  });
}

}  // namespace

memory::memory(database db) : memory(std::move(db), "", std::make_shared<shared>()) {}

memory::memory(database db, std::string prefix, std::shared_ptr<shared> s)
    : db_(std::move(db)), prefix_(std::move(prefix)), shared_(std::move(s)) {
  shared_->postgres = db_.backend_name() == "postgres";
  shared_->upsert = shared_->postgres
                        ? "INSERT INTO memory (key, value) VALUES (?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                        : "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)";
}

memory memory::scope(std::string_view name) const {
  if (name.empty()) throw error(errc::invalid_argument, {"a scope name must not be empty", {}});
  return memory(db_, prefix_ + std::string(name) + ":", shared_);
}

error_code memory::table_error() const noexcept {
  try {
    ensure_table();
    return {};
  } catch (const error& e) {
    return e.code();
  } catch (...) {
    return make_error_code(errc::open_failed);
  }
}

void memory::ensure_table() const {
  if (shared_->table_ready.load(std::memory_order_acquire)) return;
  std::call_once(shared_->table_once, [&] {
    db_.execute(create_sql);
    shared_->table_ready.store(true, std::memory_order_release);
  });
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
  std::string sql = "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
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
  std::string sql = "SELECT count(*), coalesce(sum(length(value)), 0) FROM memory" +
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
  db_.transaction(batch_store_body(std::make_shared<const items>(std::move(values)), prefix_,
                                   shared_->upsert));
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


void memory::start_store(std::string key, json value, void_handler h) const {
  if (error_code ec = table_error()) return complete_now(h, ec);
  std::string text;
  try {
    text = encode(value, key);
  } catch (const error& e) {
    return complete_now(h, e.code());
  }
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, result) mutable {
    std::move(h)(ec);
  });
  db_.async_execute(shared_->upsert, {prefix_ + key, std::move(text)}, std::move(cont));
}

void memory::start_load(std::string key, handler<std::optional<json>> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, std::nullopt);
  std::string stored_key = prefix_ + key;
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h), key = std::move(key)](
                                    error_code ec, std::optional<row> r) mutable {
    std::optional<json> out;
    if (!ec && r) out = decode((*r)[0], key, ec, nullptr);
    if (ec) out.reset();
    std::move(h)(ec, std::move(out));
  });
  db_.async_fetch_one(load_sql, {std::move(stored_key)}, std::move(cont));
}

void memory::start_erase(std::string key, handler<bool> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, false);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, !ec && r.rows_affected > 0);
  });
  db_.async_execute(erase_sql, {prefix_ + key}, std::move(cont));
}

void memory::start_exists(std::string key, handler<bool> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, false);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, std::optional<row> r) mutable {
    std::move(h)(ec, !ec && r.has_value());
  });
  db_.async_fetch_one(exists_sql, {prefix_ + key}, std::move(cont));
}

void memory::start_keys(std::string pattern, handler<std::vector<std::string>> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, std::vector<std::string>{});
  params args;
  std::string sql = "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h), n = prefix_.size()](
                                    error_code ec, std::vector<row> rows) mutable {
    std::vector<std::string> out;
    if (!ec) {
      out.reserve(rows.size());
      for (const row& r : rows) out.push_back(r[0].as_text().substr(n));
    }
    std::move(h)(ec, std::move(out));
  });
  db_.async_fetch_all(std::move(sql), std::move(args), std::move(cont));
}

void memory::start_clear(std::string pattern, handler<std::int64_t> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, 0);
  params args;
  std::string sql = "DELETE FROM memory" + where_matching(prefix_, pattern, args);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, ec ? 0 : r.rows_affected);
  });
  db_.async_execute(std::move(sql), std::move(args), std::move(cont));
}

void memory::start_size(handler<std::int64_t> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, 0);
  params args;
  std::string sql = "SELECT count(*) FROM memory" + where_matching(prefix_, "%", args);
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec, std::optional<row> r) mutable {
    std::move(h)(ec, (!ec && r) ? r->get<std::int64_t>(0) : 0);
  });
  db_.async_fetch_one(std::move(sql), std::move(args), std::move(cont));
}

void memory::start_batch_store(items values, void_handler h) const {
  if (error_code ec = table_error()) return complete_now(h, ec);
  if (values.empty()) return complete_now(h, error_code{});
  auto ex = asio::get_associated_executor(h);  // before h moves into the continuation
  auto cont = asio::bind_executor(ex, [h = std::move(h)](error_code ec) mutable { std::move(h)(ec); });
  db_.async_transaction(batch_store_body(std::make_shared<const items>(std::move(values)), prefix_,
                                         shared_->upsert),
                        std::move(cont));
}

void memory::start_batch_load(std::vector<std::string> keys, handler<loaded> h) const {
  if (error_code ec = table_error()) return complete_now(h, ec, loaded{});
  if (keys.empty()) return complete_now(h, error_code{}, loaded{});
  // The chunks run concurrently on the readers; the last one to finish completes the handler.
  struct gather {
    // Boost 1.81's any_completion_handler move-assignment wraps the handler in itself; only
    // ever move-construct it.
    explicit gather(handler<loaded> handler) : h(std::move(handler)) {}
    std::mutex mu;
    std::size_t remaining;
    error_code ec;
    loaded out;
    handler<loaded> h;
  };
  auto ex = asio::get_associated_executor(h);
  auto state = std::make_shared<gather>(std::move(h));
  state->remaining = (keys.size() + load_chunk - 1) / load_chunk;
  state->out.reserve(keys.size());
  for (std::size_t from = 0; from < keys.size(); from += load_chunk) {
    auto cont = asio::bind_executor(ex, [state, prefix = prefix_](error_code ec,
                                                                  std::vector<row> rows) {
      std::unique_lock lk(state->mu);
      if (!ec && !state->ec) collect(rows, prefix, state->out, ec, nullptr);
      if (ec && !state->ec) state->ec = ec;
      if (--state->remaining > 0) return;
      lk.unlock();
      if (state->ec) state->out.clear();
      std::move(state->h)(state->ec, std::move(state->out));
    });
    db_.async_fetch_all(batch_load_sql(), chunk_params(keys, from, prefix_), std::move(cont));
  }
}

}  // namespace entity
