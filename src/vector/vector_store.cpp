// The vector store's operations, each written once: a chain of steps (statements on the
// database, then work on the in-memory index) run either inline on the calling thread (the sync
// API) or through the database's async API with every continuation on the caller's executor.
#include "entity/vector_store.hpp"

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <chrono>
#include <variant>

#include "common/op_runner.hpp"
#include "common/thread_safety.hpp"
#include "vector/codec.hpp"
#include "vector/collection.hpp"
#include "vector/kernels.hpp"

namespace entity {
namespace asio = boost::asio;
using vector_detail::check_name;
using vector_detail::collection;
using vector_detail::quote;
using vector_detail::table_of;
using store_shared = detail::shared_state_t<vector_store>;

std::string_view to_string(metric m) noexcept {
  switch (m) {
    case metric::cosine:
      return "cosine";
    case metric::l2:
      return "l2";
    case metric::inner_product:
      return "inner_product";
  }
  return "cosine";
}

std::optional<metric> parse_metric(std::string_view name) noexcept {
  if (name == "cosine") return metric::cosine;
  if (name == "l2") return metric::l2;
  if (name == "inner_product" || name == "ip") return metric::inner_product;
  return std::nullopt;
}

bool vector_store::valid_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 63) return false;
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (!letter(name[0])) return false;
  for (char c : name)
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

// What every copy of one store shares: the database, the tuning and the in-memory indexes.
struct vector_store::shared {
  database db;
  vector_store_params params;
  // The column types of the backend's dialect (the rest of the SQL is common to both).
  const char* blob_type;
  const char* version_type;
  std::atomic<bool> registry_ready{false};
  detail::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<collection>> collections ENTITY_GUARDED_BY(mu);

  shared(database d, vector_store_params p)
      : db(std::move(d)),
        params(p),
        blob_type(db.dialect() == sql_dialect::postgresql ? "BYTEA" : "BLOB"),
        version_type(db.dialect() == sql_dialect::postgresql ? "BIGINT" : "INTEGER") {}

  std::string registry_sql() const {
    return std::string(
               "CREATE TABLE IF NOT EXISTS vector_collections (name TEXT PRIMARY KEY, "
               "dim INTEGER NOT NULL, metric TEXT NOT NULL, version ") +
           version_type + " NOT NULL)";
  }

  std::shared_ptr<collection> mirror(const std::string& name) {
    detail::lock_guard lk(mu);
    auto& c = collections[name];
    if (!c) c = std::make_shared<collection>(params);
    return c;
  }
  std::shared_ptr<collection> find(const std::string& name) {
    detail::lock_guard lk(mu);
    auto it = collections.find(name);
    return it == collections.end() ? nullptr : it->second;
  }
  // The collection is released after the lock (`gone` outlives `lk`): if it is the last owner,
  // its destructor waits for a graph build in progress to stop, and other lookups go on.
  void forget(const std::string& name) {
    decltype(collections)::node_type gone;
    detail::lock_guard lk(mu);
    gone = collections.extract(name);
  }
};

// What a vector_store::transaction records of its vector writes: each write's collection, the
// version it wrote and the change, claimed while the transaction runs and applied to the
// indexes once it commits. Used by one body run at a time (on the writer) and then by the
// operation's end, never by two threads at once.
struct vector_writes::state {
  explicit state(store_shared* s) : store(s) {}
  struct write {
    std::shared_ptr<collection> mirror;
    std::int64_t version = 0;
    vector_detail::change c;
  };
  store_shared* store;  // alive while the operation runs
  std::vector<write> writes;

  void rolled_back() {
    for (write& w : writes) w.mirror->unclaim(w.version);
    writes.clear();
  }
  void committed() {
    for (write& w : writes) w.mirror->committed(w.version, std::move(w.c));
    writes.clear();
  }
};

namespace {

constexpr const char* lookup_sql =
    "SELECT dim, metric, version FROM vector_collections WHERE name = ?";
// Every write transaction raises the version: how other processes notice it.
constexpr const char* bump_sql =
    "UPDATE vector_collections SET version = version + 1 WHERE name = ? "
    "RETURNING dim, metric, version";

std::string quoted_table(std::string_view name) { return "\"" + table_of(name) + "\""; }

error_code make_ec(errc e) { return make_error_code(e); }

[[noreturn]] void fail(errc e, std::string message) { throw error(e, {std::move(message), {}}); }

std::string no_collection(std::string_view name) {
  return "no vector collection named " + quote(name);
}

// A registry row: (dim, metric, version) from lookup_sql or bump_sql.
struct registry_row {
  std::size_t dim = 0;
  metric m = metric::cosine;
  std::int64_t version = 0;
};

// Reads (dim, metric, version) from columns `first`, `first + 1` and `first + 2` of `r`.
registry_row read_registry(const row& r, std::string_view name, std::size_t first = 0) {
  registry_row out;
  std::int64_t dim = r.get<std::int64_t>(first);
  std::string metric_text = r.get<std::string>(first + 1);
  auto m = parse_metric(metric_text);
  if (dim < 1 || dim > std::int64_t(vector_store::max_dim) || !m)
    fail(errc::decode_error, "the registry entry of vector collection " + quote(name) +
                                 " is damaged (dim " + std::to_string(dim) + ", metric " +
                                 quote(metric_text) + ")");
  out.dim = static_cast<std::size_t>(dim);
  out.m = *m;
  out.version = r.get<std::int64_t>(first + 2);
  return out;
}

std::string dimension_message(std::string_view name, std::size_t dim, std::string_view what,
                              std::size_t got) {
  return "vector collection " + quote(name) + " has dimension " + std::to_string(dim) + ", but " +
         std::string(what) + " has " + std::to_string(got);
}

// A cosine distance needs a direction: a vector whose norm float32 cannot hold (zero, or so
// small that its squared norm underflows to 0, like a denormal's, or so large that it
// overflows) has none the kernels can compute, and would be at distance 1 from everything.
bool no_direction(std::span<const float> v) {
  return vector_detail::inverse_norm(v.data(), v.size()) == 0;
}
constexpr const char* no_direction_why =
    "has no direction: it is zero, or its norm is out of float32's range";

// Every operation's state, from step to step (see common/op_runner.hpp).
template <class T>
using operation = detail::operation<std::shared_ptr<store_shared>, T>;
using step_result = detail::step_result<result>;
using tx_result = detail::step_result<std::monostate>;

// Runs `next` once the registry table exists (created by the first operation of a store).
template <class Op>
void with_registry(std::shared_ptr<Op> op, void (*next)(std::shared_ptr<Op>)) {
  if (op->st->registry_ready.load(std::memory_order_acquire)) return next(std::move(op));
  auto& db = op->st->db;
  op->run.execute(db, op->st->registry_sql(), {}, [op, next](step_result r) mutable {
    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
    op->st->registry_ready.store(true, std::memory_order_release);
    next(std::move(op));
  });
}

// A statement that names a missing vec_ table fails as SQL; for the caller the collection is
// simply not there (dropped while the operation ran).
void missing_table_is_not_found(step_result& r, std::string_view name) {
  if (r.ec == condition::syntax) {
    r.ec = make_ec(errc::not_found);
    r.diag = {no_collection(name), {}};
  }
}

// Collection op.name is not in the registry: its in-memory index is forgotten and the
// operation fails with not_found.
template <class Op>
void fail_gone(Op& op) {
  op.st->forget(op.name);
  op.fail_with(make_ec(errc::not_found), {no_collection(op.name), {}});
}

// Reads the registry row of op->name and asks the in-memory index: `answer(op, row)` gives the
// value, or nullopt when the index cannot answer as it is and `otherwise(op)` must go on. A
// collection that is not in the registry fails with not_found (and its index is forgotten);
// an error `answer` throws fails the operation.
template <class Op, class T, class Answer>
void answer_from_index(std::shared_ptr<Op> op, Answer answer,
                       void (*otherwise)(std::shared_ptr<Op>)) {
  auto& db = op->st->db;
  op->run.execute(db, lookup_sql, {op->name}, [op, answer, otherwise](step_result r) mutable {
    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
    if (r.value.rows.empty()) return fail_gone(*op);
    std::optional<T> found = answer(*op, read_registry(r.value.rows.front(), op->name));
    if (found) return op->succeed(std::move(*found));
    otherwise(std::move(op));
  });
}

// ---- create / drop / list ----------------------------------------------------------------------

// Creates collection `name` inside a transaction; false when it exists with this dimension
// and metric. Versions start from the clock (in microseconds) and rise by one per write, far
// slower: a collection dropped and created anew never repeats a version an index was built at.
void check_create(const std::string& name, std::size_t dim) {
  check_name(name);
  if (dim < 1 || dim > vector_store::max_dim)
    fail(errc::invalid_argument, "the dimension of a vector collection must be 1 to " +
                                     std::to_string(vector_store::max_dim) + " (got " +
                                     std::to_string(dim) + ")");
}

bool create_in(session& s, const std::string& name, std::size_t dim, metric m,
               const std::string& blob_type, std::int64_t now_us) {
  check_create(name, dim);
  auto same = s.fetch_one(
      "SELECT name, dim, metric, version FROM vector_collections "
      "WHERE lower(name) = lower(?)",
      {name});
  if (same) {
    std::string existing = same->get<std::string>(0);
    if (existing != name)
      fail(errc::invalid_argument, "vector collection " + quote(name) +
                                       " would share its table with " + quote(existing) +
                                       " (table names ignore case)");
    registry_row r = read_registry(*same, name, 1);
    if (r.dim != dim || r.m != m)
      fail(errc::invalid_argument,
           "vector collection " + quote(name) + " already exists with dimension " +
               std::to_string(r.dim) + " and metric " + std::string(to_string(r.m)) +
               " (asked for " + std::to_string(dim) + " and " + std::string(to_string(m)) + ")");
    return false;
  }
  auto highest = s.fetch_one("SELECT coalesce(max(version), 0) FROM vector_collections");
  std::int64_t version = std::max<std::int64_t>(now_us, highest->get<std::int64_t>(0) + 1);
  s.execute("INSERT INTO vector_collections (name, dim, metric, version) VALUES (?, ?, ?, ?)",
            {name, dim, std::string(to_string(m)), version});
  s.execute("CREATE TABLE " + quoted_table(name) + " (id TEXT PRIMARY KEY, embedding " + blob_type +
            " NOT NULL, metadata TEXT)");
  return true;
}

std::int64_t clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct create_op : operation<bool> {
  using operation::operation;
  std::string name;
  std::size_t dim = 0;
  metric m = metric::cosine;
  std::shared_ptr<bool> created = std::make_shared<bool>(false);

  static void start(std::shared_ptr<create_op> op) {
    check_create(op->name, op->dim);
    with_registry(op, &create_op::write);
  }

  static void write(std::shared_ptr<create_op> op) {
    auto body = [name = op->name, dim = op->dim, m = op->m, created = op->created,
                 now_us = clock_us(), blob_type = std::string(op->st->blob_type)](session& s) {
      *created = create_in(s, name, dim, m, blob_type, now_us);
    };
    auto& db = op->st->db;
    op->run.transaction(db, std::move(body), [op](tx_result r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->succeed(*op->created);
    });
  }
};

struct drop_op : operation<bool> {
  using operation::operation;
  std::string name;
  std::shared_ptr<bool> existed = std::make_shared<bool>(false);

  static void start(std::shared_ptr<drop_op> op) {
    check_name(op->name);
    with_registry(op, &drop_op::write);
  }

  static void write(std::shared_ptr<drop_op> op) {
    auto body = [name = op->name, existed = op->existed](session& s) {
      *existed =
          s.execute("DELETE FROM vector_collections WHERE name = ?", {name}).rows_affected > 0;
      s.execute("DROP TABLE IF EXISTS " + quoted_table(name));
    };
    auto& db = op->st->db;
    op->run.transaction(db, std::move(body), [op](tx_result r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->st->forget(op->name);
      op->succeed(*op->existed);
    });
  }
};

struct list_op : operation<std::vector<collection_info>> {
  using operation::operation;
  std::vector<collection_info> found;
  int attempts = 0;

  static void start(std::shared_ptr<list_op> op) {
    with_registry(op, &list_op::read_registry_rows);
  }

  static void read_registry_rows(std::shared_ptr<list_op> op) {
    auto& db = op->st->db;
    op->run.execute(db, "SELECT name, dim, metric FROM vector_collections ORDER BY name", {},
                    [op](step_result r) mutable {
                      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                      op->found.clear();
                      for (const row& rw : r.value.rows) {
                        collection_info info;
                        info.name = rw.get<std::string>(0);
                        // Only names this library would have created become table names.
                        if (!vector_store::valid_name(info.name)) continue;
                        info.dim = static_cast<std::size_t>(rw.get<std::int64_t>(1));
                        info.metric = parse_metric(rw.get<std::string>(2)).value_or(metric::cosine);
                        op->found.push_back(std::move(info));
                      }
                      count_rows(std::move(op));
                    });
  }

  static void count_rows(std::shared_ptr<list_op> op) {
    if (op->found.empty()) return op->succeed({});
    std::string sql;
    for (std::size_t i = 0; i < op->found.size(); ++i) {
      if (i) sql += " UNION ALL ";
      sql += "SELECT " + std::to_string(i) + ", count(*) FROM " + quoted_table(op->found[i].name);
    }
    auto& db = op->st->db;
    op->run.execute(db, std::move(sql), {}, [op](step_result r) mutable {
      // A collection dropped between the two statements: list again.
      if (r.ec == condition::syntax && ++op->attempts < 3) return read_registry_rows(std::move(op));
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      for (const row& rw : r.value.rows)
        op->found.at(static_cast<std::size_t>(rw.get<std::int64_t>(0))).count =
            rw.get<std::int64_t>(1);
      for (collection_info& info : op->found)
        if (auto c = op->st->find(info.name)) info.indexed = c->indexed();
      op->succeed(std::move(op->found));
    });
  }
};

// ---- writes ------------------------------------------------------------------------------------

// What a write transaction tells the operation that submitted it.
struct write_ticket {
  std::int64_t version = 0;  // the version it wrote (0: none)
  bool existed = false;      // erase: the id was there
};

// A body runs again when its shared transaction was rolled back under it: what the earlier run
// claimed was rolled back too.
void forget_earlier_run(write_ticket& t, collection& mirror) {
  if (t.version) mirror.unclaim(t.version);
  t = write_ticket{};
}

// Everything about the items that does not need the registry is checked here, before
// anything is written; `rows` receives them as bound parameters.
void check_items(const vector_store::items& items, std::vector<params>& rows) {
  rows.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const vector_item& item = items[i];
    std::string whose = "item " + quote(item.id);
    if (items.size() > 1) whose += " (#" + std::to_string(i + 1) + ")";
    if (item.id.empty())
      fail(errc::invalid_argument, "an id must not be empty (item #" + std::to_string(i + 1) + ")");
    if (auto why = vector_detail::vector_problem(item.vector))
      fail(errc::invalid_argument, "the vector of " + whose + " " + *why);
    if (item.vector.size() != items[0].vector.size())
      fail(errc::dimension_mismatch, "the vectors of one batch must have one dimension: " + whose +
                                         " has " + std::to_string(item.vector.size()) + ", item " +
                                         quote(items[0].id) + " has " +
                                         std::to_string(items[0].vector.size()));
    std::string meta = vector_detail::encode_metadata(item.metadata, whose);
    rows.push_back({item.id, vector_detail::encode_vector(item.vector), std::move(meta)});
  }
}

// What the registry decides: the dimension, and a direction for cosine.
void check_against(const std::string& name, const registry_row& r,
                   const vector_store::items& items) {
  for (const vector_item& item : items) {
    if (item.vector.size() != r.dim)
      fail(errc::dimension_mismatch,
           dimension_message(name, r.dim, "the vector of item " + quote(item.id),
                             item.vector.size()));
    if (r.m == metric::cosine && no_direction(item.vector))
      fail(errc::invalid_argument, "the vector of item " + quote(item.id) + " " + no_direction_why +
                                       " (a cosine collection needs one)");
  }
}

std::string upsert_sql_of(const std::string& name) {
  return "INSERT INTO " + quoted_table(name) +
         " (id, embedding, metadata) VALUES (?, ?, ?) ON CONFLICT (id) DO "
         "UPDATE SET embedding = excluded.embedding, metadata = excluded.metadata";
}

struct upsert_op : operation<std::monostate> {
  using operation::operation;
  std::string name;
  std::shared_ptr<vector_store::items> batch;
  std::shared_ptr<std::vector<params>> rows;  // the items as bound parameters
  std::shared_ptr<collection> mirror;
  std::shared_ptr<write_ticket> ticket = std::make_shared<write_ticket>();

  void check() {
    check_name(name);
    check_items(*batch, *rows);
  }

  static void start(std::shared_ptr<upsert_op> op) {
    op->rows = std::make_shared<std::vector<params>>();
    op->check();
    if (op->batch->empty()) return op->succeed({});
    op->mirror = op->st->mirror(op->name);
    with_registry(op, &upsert_op::write);
  }

  static void write(std::shared_ptr<upsert_op> op) {
    auto body = [name = op->name, batch = op->batch, rows = op->rows, mirror = op->mirror,
                 ticket = op->ticket, upsert_sql = upsert_sql_of(op->name)](session& s) {
      forget_earlier_run(*ticket, *mirror);
      auto reg = s.fetch_one(bump_sql, {name});
      if (!reg) fail(errc::not_found, no_collection(name));
      registry_row r = read_registry(*reg, name);
      check_against(name, r, *batch);
      for (const params& p : *rows) s.execute(upsert_sql, p);
      ticket->version = r.version;
      mirror->claim(r.version);
    };
    auto& db = op->st->db;
    op->run.transaction(db, std::move(body), [op](tx_result r) {
      if (r.ec) {
        if (op->ticket->version) op->mirror->unclaim(op->ticket->version);
        return op->fail_with(r.ec, std::move(r.diag));
      }
      op->mirror->committed(op->ticket->version, vector_detail::change{op->batch, {}});
      op->succeed({});
    });
  }
};

struct erase_op : operation<bool> {
  using operation::operation;
  std::string name;
  std::string id;
  std::shared_ptr<collection> mirror;
  std::shared_ptr<write_ticket> ticket = std::make_shared<write_ticket>();

  static void start(std::shared_ptr<erase_op> op) {
    check_name(op->name);
    op->mirror = op->st->mirror(op->name);
    with_registry(op, &erase_op::write);
  }

  static void write(std::shared_ptr<erase_op> op) {
    std::string delete_sql = "DELETE FROM " + quoted_table(op->name) + " WHERE id = ?";
    auto body = [name = op->name, id = op->id, mirror = op->mirror, ticket = op->ticket,
                 delete_sql = std::move(delete_sql)](session& s) {
      forget_earlier_run(*ticket, *mirror);
      if (!s.fetch_one(lookup_sql, {name})) fail(errc::not_found, no_collection(name));
      ticket->existed = s.execute(delete_sql, {id}).rows_affected > 0;
      if (!ticket->existed) return;  // nothing changed: the version stays
      auto reg = s.fetch_one(bump_sql, {name});
      ticket->version = read_registry(reg.value(), name).version;
      mirror->claim(ticket->version);
    };
    auto& db = op->st->db;
    op->run.transaction(db, std::move(body), [op](tx_result r) {
      if (r.ec) {
        if (op->ticket->version) op->mirror->unclaim(op->ticket->version);
        return op->fail_with(r.ec, std::move(r.diag));
      }
      if (op->ticket->version)
        op->mirror->committed(op->ticket->version, vector_detail::change{nullptr, {op->id}});
      op->succeed(op->ticket->existed);
    });
  }
};

// ---- transactions of the caller's ------------------------------------------------------------

struct tx_op : operation<std::monostate> {
  using operation::operation;
  std::shared_ptr<vector_transaction_body> body;
  std::shared_ptr<detail::access::state_of<vector_writes>> writes;

  static void start(std::shared_ptr<tx_op> op) { with_registry(op, &tx_op::write); }

  static void write(std::shared_ptr<tx_op> op) {
    op->writes = std::make_shared<detail::access::state_of<vector_writes>>(op->st.get());
    auto body = [body = op->body, writes = op->writes](session& s) {
      writes->rolled_back();  // a run before this one was rolled back with its transaction
      vector_writes w = detail::access::make<vector_writes>(s, *writes);
      (*body)(s, w);
    };
    auto& db = op->st->db;
    op->run.transaction(db, std::move(body), [op](tx_result r) {
      if (r.ec) {
        op->writes->rolled_back();
        return op->fail_with(r.ec, std::move(r.diag));
      }
      op->writes->committed();
      op->succeed({});
    });
  }
};

// ---- reads -------------------------------------------------------------------------------------

struct get_op : operation<std::optional<vector_item>> {
  using operation::operation;
  std::string name;
  std::string id;

  static void start(std::shared_ptr<get_op> op) {
    check_name(op->name);
    with_registry(op, &get_op::read);
  }

  // One statement reads the registry and the row together: always current, no index needed.
  static void read(std::shared_ptr<get_op> op) {
    std::string sql =
        "SELECT r.dim, v.embedding, v.metadata FROM vector_collections AS r "
        "LEFT JOIN " +
        quoted_table(op->name) + " AS v ON v.id = ? WHERE r.name = ?";
    auto& db = op->st->db;
    op->run.execute(db, std::move(sql), {op->id, op->name}, [op](step_result r) {
      missing_table_is_not_found(r, op->name);
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      if (r.value.rows.empty())
        return op->fail_with(make_ec(errc::not_found), {no_collection(op->name), {}});
      const row& rw = r.value.rows.front();
      if (rw[1].is_null()) return op->succeed(std::nullopt);
      auto dim = static_cast<std::size_t>(rw.get<std::int64_t>(0));
      vector_item out;
      out.id = op->id;
      out.vector.resize(dim);
      if (!rw[1].is_blob() ||
          !vector_detail::decode_vector(rw[1].as_blob(), dim, out.vector.data()))
        fail(errc::decode_error, "the stored vector of " + quote(op->id) + " in collection " +
                                     quote(op->name) + " is not " + std::to_string(dim) +
                                     " float32 values");
      out.metadata = vector_detail::decode_metadata(rw[2], quote(op->id));
      op->succeed(std::move(out));
    });
  }
};

struct count_op : operation<std::int64_t> {
  using operation::operation;
  std::string name;

  static void start(std::shared_ptr<count_op> op) {
    check_name(op->name);
    with_registry(op, &count_op::lookup);
  }

  static void lookup(std::shared_ptr<count_op> op) {
    answer_from_index<count_op, std::int64_t>(
        std::move(op),
        [](count_op& o, const registry_row& reg) -> std::optional<std::int64_t> {
          auto mirror = o.st->find(o.name);
          return mirror ? mirror->count(reg.version, reg.dim, reg.m) : std::nullopt;
        },
        &count_op::count_table);  // no current index: ask the table
  }

  static void count_table(std::shared_ptr<count_op> op) {
    auto& db = op->st->db;
    op->run.execute(db, "SELECT count(*) FROM " + quoted_table(op->name), {}, [op](step_result r) {
      missing_table_is_not_found(r, op->name);
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->succeed(r.value.rows.at(0).get<std::int64_t>(0));
    });
  }
};

struct search_op : operation<vector_store::matches> {
  using operation::operation;
  std::string name;
  std::vector<float> query;
  std::int64_t k = 0;
  json filter;
  search_mode mode = search_mode::approximate;
  registry_row reg;
  std::shared_ptr<collection> mirror;
  int attempts = 0;

  void check() {
    check_name(name);
    if (k < 1) fail(errc::invalid_argument, "k must be at least 1 (got " + std::to_string(k) + ")");
    if (auto why = vector_detail::vector_problem(query))
      fail(errc::invalid_argument, "the query vector " + *why);
    if (filter.is_null()) filter = json::object();
    if (!filter.is_object())
      fail(errc::invalid_argument,
           std::string("a search filter must be a JSON object (it is ") + filter.type_name() + ")");
    if (auto why = json_storage_problem(filter))
      fail(errc::invalid_argument, "the search filter " + *why);
  }

  static void start(std::shared_ptr<search_op> op) {
    op->check();
    with_registry(op, &search_op::lookup);
  }

  // The registry's version decides whether the index can answer as it is.
  static void lookup(std::shared_ptr<search_op> op) {
    answer_from_index<search_op, vector_store::matches>(
        std::move(op),
        [](search_op& o, const registry_row& entry) {
          o.reg = entry;
          o.check_against_registry();
          o.mirror = o.st->mirror(o.name);
          return o.search(entry.version);
        },
        &search_op::load);
  }

  void check_against_registry() const {
    if (query.size() != reg.dim)
      fail(errc::dimension_mismatch, dimension_message(name, reg.dim, "the query", query.size()));
    if (reg.m == metric::cosine && no_direction(query))
      fail(errc::invalid_argument,
           std::string("the query vector ") + no_direction_why + " (a cosine search needs one)");
  }

  std::optional<vector_store::matches> search(std::optional<std::int64_t> stored) {
    return mirror->search(stored, reg.dim, reg.m, query, static_cast<std::size_t>(k), filter, mode);
  }

  // Reads the whole collection in one statement (so at one version) and installs it.
  static void load(std::shared_ptr<search_op> op) {
    std::string sql =
        "SELECT r.dim, r.metric, r.version, v.id, v.embedding, v.metadata "
        "FROM vector_collections AS r LEFT JOIN " +
        quoted_table(op->name) + " AS v ON TRUE WHERE r.name = ?";
    auto& db = op->st->db;
    op->run.execute(db, std::move(sql), {op->name}, [op](step_result r) mutable {
      missing_table_is_not_found(r, op->name);
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      if (r.value.rows.empty()) return fail_gone(*op);
      vector_detail::snapshot s = decode(r.value.rows, op->name);
      op->reg = registry_row{s.dim, s.m, s.version};
      op->check_against_registry();
      op->mirror->install(std::move(s));
      std::optional<vector_store::matches> found = op->search(std::nullopt);
      if (found) return op->succeed(std::move(*found));
      // Another load of another shape (the collection was created anew) won the race.
      if (++op->attempts < 3) return lookup(std::move(op));
      op->fail_with(
          make_ec(errc::conflict),
          {"vector collection " + quote(op->name) + " kept changing while it was loaded", {}});
    });
  }

  static vector_detail::snapshot decode(std::vector<row>& rows, const std::string& name) {
    vector_detail::snapshot s;
    registry_row reg = read_registry(rows.front(), name);
    s.version = reg.version;
    s.dim = reg.dim;
    s.m = reg.m;
    s.ids.reserve(rows.size());
    s.metadata.reserve(rows.size());
    s.data.resize(rows.size() * s.dim);
    std::size_t n = 0;
    for (row& rw : rows) {
      if (rw[3].is_null()) continue;  // the one row of an empty collection
      std::string id = rw.get<std::string>(3);
      if (!rw[4].is_blob() ||
          !vector_detail::decode_vector(rw[4].as_blob(), s.dim, &s.data[n * s.dim]))
        fail(errc::decode_error, "the stored vector of " + quote(id) + " in collection " +
                                     quote(name) + " is not " + std::to_string(s.dim) +
                                     " float32 values");
      s.metadata.push_back(vector_detail::decode_metadata(rw[5], quote(id)));
      s.ids.push_back(std::move(id));
      ++n;
    }
    s.data.resize(n * s.dim);
    return s;
  }
};

}  // namespace

// ---- the public face --------------------------------------------------------------------------
// Each operation: the error_code& form runs it inline, the throwing form is that one and a
// throw, the async form runs it on the caller's executor. The `*_inputs` set an operation's
// inputs, for both.

namespace {
auto create_inputs(std::string& name, std::size_t dim, metric m) {
  return [&name, dim, m](create_op& op) {
    op.name = std::move(name);
    op.dim = dim;
    op.m = m;
  };
}
template <class Op>
auto name_inputs(std::string& name) {
  return [&](Op& op) { op.name = std::move(name); };
}
template <class Op>
auto id_inputs(std::string& name, std::string& id) {
  return [&](Op& op) {
    op.name = std::move(name);
    op.id = std::move(id);
  };
}
auto upsert_inputs(std::string& name, vector_store::items& batch) {
  return [&](upsert_op& op) {
    op.name = std::move(name);
    op.batch = std::make_shared<vector_store::items>(std::move(batch));
  };
}
auto search_inputs(std::string& name, std::vector<float>& query, std::int64_t k, json& filter,
                   search_mode mode) {
  return [&, k, mode](search_op& op) {
    op.name = std::move(name);
    op.query = std::move(query);
    op.k = k;
    op.filter = std::move(filter);
    op.mode = mode;
  };
}
auto transaction_inputs(vector_transaction_body& body) {
  return [&](tx_op& op) { op.body = std::make_shared<vector_transaction_body>(std::move(body)); };
}
}  // namespace

vector_store::vector_store(database db, vector_store_params p)
    : shared_(std::make_shared<shared>(std::move(db), p)) {}

const database& vector_store::db() const noexcept { return shared_->db; }
const vector_store_params& vector_store::params() const noexcept { return shared_->params; }

bool vector_store::create_collection(std::string name, std::size_t dim, metric m, error_code& ec,
                                     diagnostics& diag) const {
  return detail::run_inline<create_op>(shared_, ec, diag, create_inputs(name, dim, m));
}
bool vector_store::create_collection(std::string name, std::size_t dim, metric m) const {
  return detail::throwing([&](error_code& ec, diagnostics& d) {
    return create_collection(std::move(name), dim, m, ec, d);
  });
}
void vector_store::start_create_collection(diagnostics* diag, handler<bool> h, std::string name,
                                           std::size_t dim, metric m) const {
  detail::run_async<create_op>(shared_, diag, std::move(h), create_inputs(name, dim, m));
}

bool vector_store::drop_collection(std::string name, error_code& ec, diagnostics& diag) const {
  return detail::run_inline<drop_op>(shared_, ec, diag, name_inputs<drop_op>(name));
}
bool vector_store::drop_collection(std::string name) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return drop_collection(std::move(name), ec, d); });
}
void vector_store::start_drop_collection(diagnostics* diag, handler<bool> h,
                                         std::string name) const {
  detail::run_async<drop_op>(shared_, diag, std::move(h), name_inputs<drop_op>(name));
}

std::vector<collection_info> vector_store::list_collections(error_code& ec,
                                                            diagnostics& diag) const {
  return detail::run_inline<list_op>(shared_, ec, diag, [](list_op&) {});
}
std::vector<collection_info> vector_store::list_collections() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return list_collections(ec, d); });
}
void vector_store::start_list_collections(diagnostics* diag,
                                          handler<std::vector<collection_info>> h) const {
  detail::run_async<list_op>(shared_, diag, std::move(h), [](list_op&) {});
}

void vector_store::upsert(std::string collection, std::string id, std::span<const float> vector,
                          json metadata) const {
  upsert_batch(std::move(collection),
               one_item(std::move(id), std::vector<float>(vector.begin(), vector.end()),
                        std::move(metadata)));
}
void vector_store::upsert(std::string collection, std::string id, std::vector<float> vector,
                          json metadata) const {
  upsert_batch(std::move(collection),
               one_item(std::move(id), std::move(vector), std::move(metadata)));
}
void vector_store::upsert(std::string collection, std::string id, std::vector<float> vector,
                          json metadata, error_code& ec, diagnostics& diag) const {
  upsert_batch(std::move(collection),
               one_item(std::move(id), std::move(vector), std::move(metadata)), ec, diag);
}

void vector_store::upsert_batch(std::string collection, items batch, error_code& ec,
                                diagnostics& diag) const {
  detail::run_inline<upsert_op>(shared_, ec, diag, upsert_inputs(collection, batch));
}
void vector_store::upsert_batch(std::string collection, items batch) const {
  detail::throwing([&](error_code& ec, diagnostics& d) {
    upsert_batch(std::move(collection), std::move(batch), ec, d);
  });
}
void vector_store::start_upsert_batch(diagnostics* diag, void_handler h, std::string collection,
                                      items batch) const {
  detail::run_async<upsert_op>(shared_, diag, std::move(h), upsert_inputs(collection, batch));
}

bool vector_store::erase(std::string collection, std::string id, error_code& ec,
                         diagnostics& diag) const {
  return detail::run_inline<erase_op>(shared_, ec, diag, id_inputs<erase_op>(collection, id));
}
bool vector_store::erase(std::string collection, std::string id) const {
  return detail::throwing([&](error_code& ec, diagnostics& d) {
    return erase(std::move(collection), std::move(id), ec, d);
  });
}
void vector_store::start_erase(diagnostics* diag, handler<bool> h, std::string collection,
                               std::string id) const {
  detail::run_async<erase_op>(shared_, diag, std::move(h), id_inputs<erase_op>(collection, id));
}

std::optional<vector_item> vector_store::get(std::string collection, std::string id, error_code& ec,
                                             diagnostics& diag) const {
  return detail::run_inline<get_op>(shared_, ec, diag, id_inputs<get_op>(collection, id));
}
std::optional<vector_item> vector_store::get(std::string collection, std::string id) const {
  return detail::throwing([&](error_code& ec, diagnostics& d) {
    return get(std::move(collection), std::move(id), ec, d);
  });
}
void vector_store::start_get(diagnostics* diag, handler<std::optional<vector_item>> h,
                             std::string collection, std::string id) const {
  detail::run_async<get_op>(shared_, diag, std::move(h), id_inputs<get_op>(collection, id));
}

std::int64_t vector_store::count(std::string collection, error_code& ec, diagnostics& diag) const {
  return detail::run_inline<count_op>(shared_, ec, diag, name_inputs<count_op>(collection));
}
std::int64_t vector_store::count(std::string collection) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return count(std::move(collection), ec, d); });
}
void vector_store::start_count(diagnostics* diag, handler<std::int64_t> h,
                               std::string collection) const {
  detail::run_async<count_op>(shared_, diag, std::move(h), name_inputs<count_op>(collection));
}

vector_store::matches vector_store::search(std::string collection, std::vector<float> query,
                                           std::int64_t k, json filter, search_mode mode,
                                           error_code& ec, diagnostics& diag) const {
  return detail::run_inline<search_op>(shared_, ec, diag,
                                       search_inputs(collection, query, k, filter, mode));
}
vector_store::matches vector_store::search(std::string collection, std::span<const float> query,
                                           std::int64_t k, json filter, search_mode mode) const {
  return search(std::move(collection), std::vector<float>(query.begin(), query.end()), k,
                std::move(filter), mode);
}
vector_store::matches vector_store::search(std::string collection, std::vector<float> query,
                                           std::int64_t k, json filter, search_mode mode) const {
  return detail::throwing([&](error_code& ec, diagnostics& d) {
    return search(std::move(collection), std::move(query), k, std::move(filter), mode, ec, d);
  });
}
void vector_store::start_search(diagnostics* diag, handler<matches> h, std::string collection,
                                std::vector<float> query, std::int64_t k, json filter,
                                search_mode mode) const {
  detail::run_async<search_op>(shared_, diag, std::move(h),
                               search_inputs(collection, query, k, filter, mode));
}

void vector_store::transaction(vector_transaction_body body, error_code& ec,
                               diagnostics& diag) const {
  detail::run_inline<tx_op>(shared_, ec, diag, transaction_inputs(body));
}
void vector_store::transaction(vector_transaction_body body) const {
  detail::throwing([&](error_code& ec, diagnostics& d) { transaction(std::move(body), ec, d); });
}
void vector_store::start_transaction(diagnostics* diag, void_handler h,
                                     vector_transaction_body body) const {
  detail::run_async<tx_op>(shared_, diag, std::move(h), transaction_inputs(body));
}

// ---- vector_writes ---------------------------------------------------------------------------

std::optional<collection_info> vector_writes::find(const std::string& name) {
  check_name(name);
  auto r = session_.fetch_one(lookup_sql, {name});
  if (!r) return std::nullopt;
  registry_row reg = read_registry(*r, name);
  return collection_info{name, reg.dim, reg.m, -1};
}

bool vector_writes::create_collection(const std::string& name, std::size_t dim, metric m) {
  return create_in(session_, name, dim, m, state_.store->blob_type, clock_us());
}

void vector_writes::upsert(const std::string& name, vector_store::items batch) {
  check_name(name);
  std::vector<params> rows;
  check_items(batch, rows);
  if (batch.empty()) return;
  auto reg = session_.fetch_one(bump_sql, {name});
  if (!reg) fail(errc::not_found, no_collection(name));
  registry_row r = read_registry(*reg, name);
  check_against(name, r, batch);
  const std::string sql = upsert_sql_of(name);
  for (const params& p : rows) session_.execute(sql, p);
  auto mirror = state_.store->mirror(name);
  mirror->claim(r.version);
  state_.writes.push_back(
      {std::move(mirror), r.version,
       vector_detail::change{std::make_shared<const vector_store::items>(std::move(batch)), {}}});
}

std::int64_t vector_writes::erase(const std::string& name, const std::vector<std::string>& ids) {
  check_name(name);
  if (ids.empty() || !session_.fetch_one(lookup_sql, {name})) return 0;
  const std::string sql = "DELETE FROM " + quoted_table(name) + " WHERE id = ?";
  std::vector<std::string> gone;
  for (const std::string& id : ids)
    if (session_.execute(sql, {id}).rows_affected > 0) gone.push_back(id);
  if (gone.empty()) return 0;  // nothing changed: the version stays
  auto reg = session_.fetch_one(bump_sql, {name});
  std::int64_t version = read_registry(reg.value(), name).version;
  auto mirror = state_.store->mirror(name);
  mirror->claim(version);
  auto n = static_cast<std::int64_t>(gone.size());
  state_.writes.push_back(
      {std::move(mirror), version, vector_detail::change{nullptr, std::move(gone)}});
  return n;
}

}  // namespace entity
