// Runs every workload in every variant, each run on a fresh database: a new SQLite file, or on
// PostgreSQL a schema of the benchmark's own, dropped and created again before every run.
#include <libpq-fe.h>
#include <sqlite3.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "bench.hpp"
#include "clients.hpp"
#include "entity/database.hpp"
#include "entity/postgres.hpp"
#include "entity/sqlite.hpp"

namespace entity::bench {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = {
      "memory_store",       "memory_store_ttl",  "memory_load",          "memory_load_ttl",
      "memory_batch_store", "memory_batch_load", "memory_search_filter", "memory_search_text",
      "memory_sweep",       "db_insert",         "db_insert_many",       "db_select",
      "concurrent_1",       "concurrent_5",      "concurrent_10",        "concurrent_20",
      "group_commit_20"};
  return names;
}

bool sqlite_only(const std::string& workload) {
  return workload == "memory_search_filter" || workload == "memory_search_text" ||
         workload == "memory_sweep";
}

std::string plain_workload_of(const std::string& workload) {
  const std::string suffix = "_ttl";
  if (workload.size() > suffix.size() &&
      workload.compare(workload.size() - suffix.size(), suffix.size(), suffix) == 0)
    return workload.substr(0, workload.size() - suffix.size());
  return workload;
}

const std::vector<std::string>& variant_names(bool postgres) {
  static const std::vector<std::string> sqlite = {
      "sqlite_c", "sqlite_c_autocommit", "sqlite_c_times", "sync", "threadpool", "async"};
  static const std::vector<std::string> pg = {"libpq_sync", "sync", "threadpool", "async"};
  return postgres ? pg : sqlite;
}

bool runs_in(const std::string& workload, const std::string& variant) {
  if (variant == "sqlite_c_autocommit") return workload == "group_commit_20";
  if (variant == "sqlite_c_times")
    return workload == "memory_store" || workload == "memory_batch_store" ||
           workload == "group_commit_20";
  return true;
}

namespace {

constexpr int select_ops = 100;  // db_select: point selects per run, as the seed
constexpr int pool_threads = 4;  // the threadpool variant's workers
// The time to live of every item in the _ttl workloads (memory_params::default_ttl).
constexpr std::chrono::milliseconds workload_ttl = std::chrono::hours(1);

// What one run measured.
struct sample {
  std::vector<double> op_ns;  // per-operation latencies
  double seconds = 0;
  std::int64_t ops = 0;
  std::int64_t rows = 0;
  std::int64_t transactions = 0;  // memory_sweep
};

// What a run needs beyond its workload's name: the sizes, and for memory_sweep the clock that
// the clients' expiry times come from.
struct run_setup {
  int ops = 0;
  int items = 0;
  std::shared_ptr<bench_clock> clock;
};

// How entity-db opens the memory in `workload`: a _ttl workload is its plain one with every item
// given a time to live; in memory_sweep the clock is the benchmark's, and only sweep() deletes.
memory_params memory_params_of(const std::string& workload, const run_setup& setup) {
  memory_params mp;
  if (plain_workload_of(workload) != workload) mp.default_ttl = workload_ttl;
  if (workload == "memory_sweep") {
    mp.sweep_interval = std::chrono::milliseconds(0);
    mp.clock = [clock = setup.clock] { return clock->now(); };
  }
  return mp;
}

// memory_sweep stores a tenth of the searches' items, each to expire; then the clock moves on
// past their time to live, and the sweep is timed.
int sweep_items_of(int items) { return std::max(1, items / 10); }
constexpr std::chrono::milliseconds sweep_advance = std::chrono::hours(2);

int concurrency_of(const std::string& w) {
  if (w == "group_commit_20") return 20;
  if (w.rfind("concurrent_", 0) == 0) return std::stoi(w.substr(11));
  return 1;
}

// Stores per transaction of the raw SQLite floor: group_commit_20's commits its stores in groups
// of 20, what entity-db's group commit does with 20 concurrent ones (sqlite_c_autocommit, one by
// one, is shown beside it); everywhere else each statement commits by itself.
int floor_group_of(const std::string& w, const std::string& variant) {
  return w == "group_commit_20" && (variant == "sqlite_c" || variant == "sqlite_c_times")
             ? concurrency_of(w)
             : 1;
}

memory::items items_of(int n, const std::string& key_prefix = "") {
  memory::items items;
  items.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) items.emplace_back(key_prefix + key_of(i), value_of(i));
  return items;
}

// memory_batch_store times one batch, the second of its size: every client first stores a
// batch of the same size under other keys, untimed, as a long-lived agent has stored batches
// before. Every client so runs its batch with its statements prepared, as the other workloads,
// whose one prepare is shared by N operations, do; the floor's are prepared when it opens.
memory::items warm_up_batch(int n) { return items_of(n, "warm_"); }

std::vector<std::string> keys_of(int n) {
  std::vector<std::string> keys;
  keys.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) keys.push_back(key_of(i));
  return keys;
}

// A batch counts as n operations of equal share.
void batch_sample(sample& s, double ns, std::int64_t n) {
  s.seconds = ns / 1e9;
  s.ops = n;
  s.op_ns.assign(1, ns / static_cast<double>(n));
}

double elapsed_ns(clock::time_point since) {
  return std::chrono::duration<double, std::nano>(clock::now() - since).count();
}

// A sweep counts as one operation per item it deleted.
void sweep_sample(sample& s, double ns, const swept& sw) {
  batch_sample(s, ns, std::max<std::int64_t>(sw.items, 1));
  s.rows = sw.items;
  s.transactions = sw.transactions;
}

// ---- sync variants (sqlite_c, sync) ---------------------------------------------------------

// Runs op(i, worker) for i in [0, n) on `threads` threads (worker w takes i = w, w+threads...).
template <class Op>
void per_op(sample& s, int n, int threads, Op op) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(threads));
  auto body = [&](int w) {
    auto& mine = lat[static_cast<std::size_t>(w)];
    mine.reserve(static_cast<std::size_t>(n / threads + 1));
    for (int i = w; i < n; i += threads) {
      auto t = clock::now();
      op(i, w);
      mine.push_back(elapsed_ns(t));
    }
  };
  auto t0 = clock::now();
  if (threads == 1) {
    body(0);
  } else {
    std::vector<std::thread> ts;
    for (int w = 0; w < threads; ++w) ts.emplace_back(body, w);
    for (auto& t : ts) t.join();
  }
  s.seconds = elapsed_ns(t0) / 1e9;
  s.ops = n;
  for (auto& l : lat) s.op_ns.insert(s.op_ns.end(), l.begin(), l.end());
}

sample run_sync(sync_client& c, const std::string& workload, const run_setup& setup) {
  sample s;
  const int n = setup.ops;
  const std::string w = plain_workload_of(workload);  // a _ttl workload runs its plain one's code
  int k = concurrency_of(w);
  int threads = c.thread_safe() ? k : 1;  // raw SQLite: back to back on its one connection
  if (w == "memory_store") {
    per_op(s, n, 1, [&](int i, int) { c.store(key_of(i), value_of(i)); });
    s.rows = c.count("memory");
  } else if (w == "memory_load") {
    c.batch_store(items_of(n));
    std::atomic<std::int64_t> found{0};
    per_op(s, n, 1, [&](int i, int) { found += c.load(key_of(i)) ? 1 : 0; });
    s.rows = found;
  } else if (w == "memory_batch_store") {
    c.batch_store(warm_up_batch(n));
    auto items = items_of(n);
    auto t = clock::now();
    c.batch_store(std::move(items));
    batch_sample(s, elapsed_ns(t), n);
    s.rows = c.count("memory");
  } else if (w == "memory_batch_load") {
    c.batch_store(items_of(n));
    auto keys = keys_of(n);
    auto t = clock::now();
    s.rows = static_cast<std::int64_t>(c.batch_load(std::move(keys)));
    batch_sample(s, elapsed_ns(t), n);
  } else if (w == "memory_search_filter") {
    c.batch_store(facts_of(setup.items));
    std::atomic<std::int64_t> hits{0};
    per_op(s, n, 1,
           [&](int i, int) { hits += static_cast<std::int64_t>(c.search_kind(kind_of(i))); });
    s.rows = hits;
  } else if (w == "memory_search_text") {
    c.batch_store(facts_of(setup.items));
    c.index_text();
    std::atomic<std::int64_t> hits{0};
    per_op(s, n, 1,
           [&](int i, int) { hits += static_cast<std::int64_t>(c.search_text(topic_of(i))); });
    s.rows = hits;
  } else if (w == "memory_sweep") {
    c.batch_store_expiring(facts_of(sweep_items_of(setup.items)));
    setup.clock->advance(sweep_advance);
    auto t = clock::now();
    swept sw = c.sweep();
    sweep_sample(s, elapsed_ns(t), sw);
  } else if (w == "db_insert") {
    c.create_table();
    per_op(s, n, 1, [&](int i, int) { c.insert(i, "name_" + std::to_string(i)); });
    s.rows = c.count("bench_table");
  } else if (w == "db_insert_many") {
    c.create_table();
    auto t = clock::now();
    c.insert_many(n);
    batch_sample(s, elapsed_ns(t), n);
    s.rows = c.count("bench_table");
  } else if (w == "db_select") {
    c.create_table();
    c.insert_many(n);
    std::atomic<std::int64_t> found{0};
    per_op(s, select_ops, 1, [&](int i, int) { found += c.select(i * 7919 % n) ? 1 : 0; });
    s.rows = found;
  } else if (w == "group_commit_20") {
    int total = n / k * k;
    per_op(s, total, threads, [&](int i, int) { c.store(key_of(i), value_of(i)); });
    s.rows = c.count("memory");
  } else {  // concurrent_k: each worker inserts a row, then reads its own rows back
    c.create_table();
    per_op(s, n, threads, [&](int i, int worker) {
      std::string name = "worker_" + std::to_string(i % k);
      (void)worker;
      c.insert(i, name);
      c.select_named(name);
    });
    s.rows = c.count("bench_table");
  }
  return s;
}

// ---- async variants (threadpool, async) -----------------------------------------------------

template <class Op>
void per_op_async(asio::io_context& io, sample& s, int n, int workers, Op op) {
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(workers));
  auto t0 = clock::now();
  for (int w = 0; w < workers; ++w) {
    asio::co_spawn(
        io,
        [&, w]() -> awaitable<> {
          auto& mine = lat[static_cast<std::size_t>(w)];
          for (int i = w; i < n; i += workers) {
            auto t = clock::now();
            co_await op(i);
            mine.push_back(elapsed_ns(t));
          }
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  io.run();
  io.restart();
  s.seconds = elapsed_ns(t0) / 1e9;
  s.ops = n;
  for (auto& l : lat) s.op_ns.insert(s.op_ns.end(), l.begin(), l.end());
}

// Runs one coroutine to completion on `io`.
template <class T>
T block_on(asio::io_context& io, awaitable<T> a) {
  std::optional<T> out;
  std::exception_ptr err;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    err = e;
    if (!e) out = std::move(v);
  });
  io.run();
  io.restart();
  if (err) std::rethrow_exception(err);
  return std::move(*out);
}
inline void block_on(asio::io_context& io, awaitable<> a) {
  std::exception_ptr err;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e) { err = e; });
  io.run();
  io.restart();
  if (err) std::rethrow_exception(err);
}

sample run_async(asio::io_context& io, async_client& c, const std::string& workload,
                 const run_setup& setup) {
  sample s;
  const int n = setup.ops;
  const std::string w = plain_workload_of(workload);
  int k = concurrency_of(w);
  if (w == "memory_store") {
    per_op_async(io, s, n, 1, [&](int i) { return c.store(key_of(i), value_of(i)); });
    s.rows = block_on(io, c.count("memory"));
  } else if (w == "memory_load") {
    block_on(io, c.batch_store(items_of(n)));
    std::int64_t found = 0;
    per_op_async(io, s, n, 1,
                 [&](int i) -> awaitable<> { found += (co_await c.load(key_of(i))) ? 1 : 0; });
    s.rows = found;
  } else if (w == "memory_batch_store") {
    block_on(io, c.batch_store(warm_up_batch(n)));
    auto items = items_of(n);
    auto t = clock::now();
    block_on(io, c.batch_store(std::move(items)));
    batch_sample(s, elapsed_ns(t), n);
    s.rows = block_on(io, c.count("memory"));
  } else if (w == "memory_batch_load") {
    block_on(io, c.batch_store(items_of(n)));
    auto keys = keys_of(n);
    auto t = clock::now();
    s.rows = static_cast<std::int64_t>(block_on(io, c.batch_load(std::move(keys))));
    batch_sample(s, elapsed_ns(t), n);
  } else if (w == "memory_search_filter") {
    block_on(io, c.batch_store(facts_of(setup.items)));
    std::int64_t hits = 0;
    per_op_async(io, s, n, 1, [&](int i) -> awaitable<> {
      hits += static_cast<std::int64_t>(co_await c.search_kind(kind_of(i)));
    });
    s.rows = hits;
  } else if (w == "memory_search_text") {
    block_on(io, c.batch_store(facts_of(setup.items)));
    block_on(io, c.index_text());
    std::int64_t hits = 0;
    per_op_async(io, s, n, 1, [&](int i) -> awaitable<> {
      hits += static_cast<std::int64_t>(co_await c.search_text(topic_of(i)));
    });
    s.rows = hits;
  } else if (w == "memory_sweep") {
    block_on(io, c.batch_store_expiring(facts_of(sweep_items_of(setup.items))));
    setup.clock->advance(sweep_advance);
    auto t = clock::now();
    swept sw = block_on(io, c.sweep());
    sweep_sample(s, elapsed_ns(t), sw);
  } else if (w == "db_insert") {
    block_on(io, c.create_table());
    per_op_async(io, s, n, 1, [&](int i) { return c.insert(i, "name_" + std::to_string(i)); });
    s.rows = block_on(io, c.count("bench_table"));
  } else if (w == "db_insert_many") {
    block_on(io, c.create_table());
    auto t = clock::now();
    block_on(io, c.insert_many(n));
    batch_sample(s, elapsed_ns(t), n);
    s.rows = block_on(io, c.count("bench_table"));
  } else if (w == "db_select") {
    block_on(io, c.create_table());
    block_on(io, c.insert_many(n));
    std::int64_t found = 0;
    per_op_async(io, s, select_ops, 1,
                 [&](int i) -> awaitable<> { found += (co_await c.select(i * 7919 % n)) ? 1 : 0; });
    s.rows = found;
  } else if (w == "group_commit_20") {
    int total = n / k * k;
    per_op_async(io, s, total, k, [&](int i) { return c.store(key_of(i), value_of(i)); });
    s.rows = block_on(io, c.count("memory"));
  } else {
    block_on(io, c.create_table());
    per_op_async(io, s, n, k, [&](int i) -> awaitable<> {
      std::string name = "worker_" + std::to_string(i % k);
      co_await c.insert(i, name);
      co_await c.select_named(name);
    });
    s.rows = block_on(io, c.count("bench_table"));
  }
  return s;
}

// ---- one run ------------------------------------------------------------------------------

void remove_db(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(path + suffix, ec);
}

// Where the runs happen. SQLite: a file per workload and variant in `dir`. PostgreSQL: the
// schema `schema`, emptied before every run, so that a run never sees another's tables and a
// user's own `memory` table is never touched.
struct target {
  std::filesystem::path dir;
  std::string pg_url;   // the user's URL
  std::string schema;   // ours, on that server
  std::string run_url;  // the user's URL with search_path set to our schema
  std::shared_ptr<postgres_infrastructure> admin;  // runs the DROP / CREATE SCHEMA
  bool postgres() const { return !pg_url.empty(); }
};

std::string with_option(const std::string& url, const std::string& option) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + option;
}

void reset_schema(const target& t) {
  database(t.admin).execute_script("DROP SCHEMA IF EXISTS " + t.schema +
                                   " CASCADE; CREATE SCHEMA " + t.schema);
}

sample run_on(const run_setup& setup, const std::string& workload, const std::string& variant,
              std::shared_ptr<infrastructure> infra) {
  sample s;
  infra->startup();
  database db(infra);
  const memory_params mp = memory_params_of(workload, setup);
  if (variant == "sync") {
    s = run_sync(*make_entity_sync_client(db, mp), workload, setup);
  } else {
    asio::io_context io;
    auto c = variant == "async"
                 ? make_entity_async_client(db, mp)
                 : make_threadpool_client(make_entity_sync_client(db, mp), pool_threads);
    s = run_async(io, *c, workload, setup);
  }
  infra->shutdown();
  return s;
}

sample run_once(const bench_params& p, const target& t, const std::string& workload,
                const std::string& variant) {
  sample s;
  run_setup setup;
  setup.ops = p.ops;
  setup.items = p.items;
  setup.clock = std::make_shared<bench_clock>();
  if (t.postgres()) {
    reset_schema(t);
    if (variant == "libpq_sync") {
      auto c = make_raw_libpq_client(t.run_url);
      s = run_sync(*c, workload, setup);
    } else {
      postgres_params pp;
      pp.url = t.run_url;
      s = run_on(setup, workload, variant, std::make_shared<postgres_infrastructure>(pp));
    }
    return s;
  }
  const std::string path = (t.dir / (workload + "-" + variant + ".db")).string();
  remove_db(path);
  if (variant.rfind("sqlite_c", 0) == 0) {
    auto c = make_raw_sqlite_client({path, p.durable, floor_group_of(workload, variant),
                                     variant == "sqlite_c_times", setup.clock});
    s = run_sync(*c, workload, setup);
  } else {
    sqlite_params sp;
    sp.path = path;
    if (p.durable) sp.synchronous = synchronous_mode::full;
    s = run_on(setup, workload, variant, std::make_shared<sqlite_infrastructure>(sp));
  }
  remove_db(path);
  return s;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

nlohmann::json machine_info() {
  utsname u{};
  uname(&u);
  return {{"cpus", std::thread::hardware_concurrency()},
          {"cpu", cpu_model()},
          {"os", std::string(u.sysname) + " " + u.release},
          {"sqlite", sqlite3_libversion()},
          {"compiler", __VERSION__}};
}

namespace {

// The machine, and the server when the run is on PostgreSQL.
nlohmann::json machine_info(const target& t) {
  nlohmann::json m = bench::machine_info();
  if (t.postgres()) {
    m["postgres"] = database(t.admin).fetch_one("SHOW server_version")->get<std::string>(0);
    m["libpq"] = PQlibVersion();
  }
  return m;
}

bool selected(const std::vector<std::string>& chosen, const std::string& name) {
  return chosen.empty() || std::find(chosen.begin(), chosen.end(), name) != chosen.end();
}

}  // namespace

report run(const bench_params& p, const progress_fn& progress) {
  if (p.ops < 20) throw std::invalid_argument("--ops must be at least 20");
  if (p.repeat < 1) throw std::invalid_argument("--repeat must be at least 1");
  if (p.items < 1000) throw std::invalid_argument("--items must be at least 1000");
  const bool postgres = !p.pg_url.empty();
  for (const auto& w : p.workloads) {
    if (!selected(workload_names(), w) || w.empty())
      throw std::invalid_argument("unknown workload: " + w);
    if (postgres && sqlite_only(w))
      throw std::invalid_argument(
          w +
          " runs on SQLite only (its floor is SQLite's own: json_extract, FTS5, an expiry "
          "table); on PostgreSQL leave it out");
  }
  for (const auto& v : p.variants)
    if (!selected(variant_names(postgres), v) || v.empty())
      throw std::invalid_argument("unknown variant: " + v + (postgres ? " (on PostgreSQL)" : ""));
  if (postgres && p.durable)
    throw std::invalid_argument(
        "--durable sets SQLite's synchronous=FULL; a PostgreSQL server's durability is its own "
        "setting (synchronous_commit)");

  target t;
  bool temporary = false;
  if (postgres) {
    t.pg_url = p.pg_url;
    std::random_device rd;
    t.schema = "entitydb_bench_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
    t.run_url = with_option(p.pg_url, "options=-csearch_path%3D" + t.schema);
    postgres_params ap;
    ap.url = p.pg_url;
    ap.pool_size = 1;
    ap.min_connections = 1;
    t.admin = std::make_shared<postgres_infrastructure>(ap);
    t.admin->startup();
  } else {
    t.dir = p.db_dir;
    temporary = t.dir.empty();
    if (temporary) {
      std::random_device rd;
      t.dir = std::filesystem::temp_directory_path() /
              ("entitydb-bench-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    }
    std::filesystem::create_directories(t.dir);
  }
  auto clean_up = [&] {
    if (temporary) std::filesystem::remove_all(t.dir);
    if (t.admin) {
      error_code ec;
      diagnostics diag;
      database(t.admin).execute_script("DROP SCHEMA IF EXISTS " + t.schema + " CASCADE", ec, diag);
      t.admin->shutdown();
    }
  };

  report r;
  r.postgres = postgres;
  r.machine = machine_info(t);
  r.params = {{"ops", p.ops},
              {"repeat", p.repeat},
              {"search_items", p.items},
              {"sweep_items", sweep_items_of(p.items)},
              {"durable", p.durable},
              {"backend", postgres ? "postgresql" : "sqlite"},
              {"threadpool_threads", pool_threads}};
  if (!postgres) r.params["synchronous"] = p.durable ? "FULL" : "NORMAL";

  std::vector<std::pair<std::string, std::string>> plan;
  for (const auto& w : workload_names())
    if (selected(p.workloads, w) && !(postgres && sqlite_only(w)))
      for (const auto& v : variant_names(postgres))
        if (selected(p.variants, v) && runs_in(w, v)) plan.emplace_back(w, v);

  int total = static_cast<int>(plan.size()) * p.repeat;
  int done = 0;
  try {
    // Round after round of the whole plan, not every repeat of one run back to back: a drift
    // in what else the machine does then falls on every workload and variant alike, and the
    // ratios within the run (to the floor, ttl to plain) stay fair.
    std::vector<std::vector<sample>> runs(plan.size());
    for (int rep = 0; rep < p.repeat; ++rep)
      for (std::size_t k = 0; k < plan.size(); ++k) {
        const auto& [w, v] = plan[k];
        if (progress) progress(done, total, w + "/" + v);
        runs[k].push_back(run_once(p, t, w, v));
        ++done;
      }
    for (std::size_t k = 0; k < plan.size(); ++k) {
      std::vector<sample>& done_runs = runs[k];
      std::sort(done_runs.begin(), done_runs.end(),
                [](const sample& a, const sample& b) { return a.seconds < b.seconds; });
      const sample& m = done_runs[done_runs.size() / 2];
      run_result res;
      res.workload = plan[k].first;
      res.variant = plan[k].second;
      res.ops = m.ops;
      res.seconds = m.seconds;
      res.ops_per_sec = m.seconds > 0 ? static_cast<double>(m.ops) / m.seconds : 0;
      res.p50_us = quantile(m.op_ns, 0.50) / 1000.0;
      res.p99_us = quantile(m.op_ns, 0.99) / 1000.0;
      res.rows = m.rows;
      res.transactions = m.transactions;
      r.results.push_back(res);
    }
  } catch (...) {
    clean_up();
    throw;
  }
  if (progress) progress(total, total, "done");
  clean_up();
  return r;
}

}  // namespace entity::bench
