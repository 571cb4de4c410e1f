// entity_db._core: the Python classes over the public C++ API.
//
// Every operation is written once as a call of the C++ API and served twice:
//   - awaitable: start_async() starts the C++ async form with a handler bound to the running
//     loop's bridge (loop_bridge.hpp) and returns an asyncio future;
//   - blocking (`verb_sync`): run_sync() calls the C++ sync form with the GIL released.
// Arguments are converted to engine values before either starts (convert.hpp), results back to
// Python objects under the GIL once the engine is done.
#include <pybind11/pybind11.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "convert.hpp"
#include "entity/entity.hpp"
#include "loop_bridge.hpp"

namespace py = pybind11;
namespace asio = boost::asio;

namespace entity::python {
namespace {

// ---- the two runners -------------------------------------------------------------------------

[[noreturn]] void throw_python() { throw py::error_already_set(); }

py::object steal_or_throw(PyObject* o) {
  if (!o) throw_python();
  return py::reinterpret_steal<py::object>(o);
}

// The handler of an awaited operation: records the engine's answer; the bridge hands it to
// Python (ToPy, under the GIL) once its queue is empty.
template <class T, class ToPy>
struct completion {
  std::shared_ptr<pending_op> op;
  ToPy to_py;
  void operator()(error_code ec, T v) {
    op->ec = ec;
    if (!ec)
      op->make_result = [v = std::move(v), to_py = std::move(to_py)]() mutable -> PyObject* {
        return to_py(v);
      };
    auto b = op->bridge;
    b->finished(std::move(op));
  }
};
template <class ToPy>
struct completion<void, ToPy> {
  std::shared_ptr<pending_op> op;
  ToPy to_py;
  void operator()(error_code ec) {
    op->ec = ec;
    if (!ec)
      op->make_result = [to_py = std::move(to_py)]() mutable -> PyObject* { return to_py(); };
    auto b = op->bridge;
    b->finished(std::move(op));
  }
};

struct none_result {
  PyObject* operator()() const { Py_RETURN_NONE; }
};

// What a future of loop_bridge::completes::with_its_group holds (Python's _GroupedFuture calls
// it): its await runs the loop's queued work, and its cancel() cancels the operation.
struct grouped_op {
  std::weak_ptr<pending_op> op;
  void awaited() const {
    if (auto o = op.lock()) o->bridge->awaited(o);
  }
  void cancel() const {
    if (auto o = op.lock(); o && !o->delivered())
      o->cancel.emit(boost::asio::cancellation_type::terminal);
  }
};

// A future for `op` on `bridge`'s loop: an asyncio future, or a _GroupedFuture that knows `op`.
py::object make_future(loop_bridge& bridge, const std::shared_ptr<pending_op>& op,
                       loop_bridge::completes when) {
  if (when == loop_bridge::completes::at_once)
    return steal_or_throw(ENTITY_PY_CALL(bridge.loop(), "create_future"));
  static PyObject* kwnames = Py_BuildValue("(s)", "loop");
  PyObject* args[] = {bridge.loop()};
  py::object fut = steal_or_throw(PyObject_Vectorcall(grouped_future_class(), args, 0, kwnames));
  py::object handle = py::cast(grouped_op{op});
  static PyObject* op_name = PyUnicode_InternFromString("_op");
  if (PyObject_SetAttr(fut.ptr(), op_name, handle.ptr()) < 0) throw_python();
  return fut;
}

// Starts `initiate(diag, handler)` (a C++ async_* call) for the running loop; returns its
// future. T is the handler's value type (void for none); to_py(T&) builds the Python result;
// `when` says when the work left to the loop runs (loop_bridge::completes).
template <class T, class Initiate, class ToPy>
py::object start_async(Initiate&& initiate, ToPy to_py,
                       loop_bridge::completes when = loop_bridge::completes::at_once,
                       std::shared_ptr<pending_op> op = {}) {
  std::shared_ptr<loop_bridge> bridge = bridge_for_running_loop();
  if (!bridge) throw_python();
  if (!op) op = std::make_shared<pending_op>();
  op->bridge = bridge;
  py::object fut = make_future(*bridge, op, when);
  op->future = py_ref::borrow(fut.ptr());
  auto handler = asio::bind_cancellation_slot(
      op->cancel.slot(),
      asio::bind_executor(bridge->executor(), completion<T, ToPy>{op, std::move(to_py)}));
  std::forward<Initiate>(initiate)(op->diag, std::move(handler));
  bridge->started(op, when);
  return fut;
}

template <class F>
auto run_sync(F&& f) {
  py::gil_scoped_release nogil;
  return std::forward<F>(f)();
}

// Converters of C++ results, one per result type.
inline PyObject* py_bool(bool b) { return PyBool_FromLong(b ? 1 : 0); }
inline PyObject* py_int(std::int64_t i) { return PyLong_FromLongLong(i); }

// ---- durations and times ----------------------------------------------------------------------

// Seconds as milliseconds, to the nearest; a positive duration under a millisecond is one
// millisecond, never zero. nullopt for NaN and for what milliseconds cannot hold.
std::optional<std::chrono::milliseconds> to_milliseconds(double seconds) {
  double ms = seconds * 1000;
  if (!(std::fabs(ms) < 9e18)) return std::nullopt;
  auto n = static_cast<std::int64_t>(std::llround(ms));
  if (seconds > 0 && n < 1) n = 1;
  return std::chrono::milliseconds(n);
}

// The `ttl` of store and batch_store: seconds (int or float) or a timedelta; None: the
// memory's default_ttl; infinity: never expires. Zero and negative ones reach the engine, which
// refuses them.
memory::ttl to_ttl(py::handle v) {
  if (v.is_none()) return std::nullopt;
  auto s = to_seconds(v.ptr());
  if (!s || std::isnan(*s))
    throw error(errc::invalid_argument,
                {"ttl must be a number of seconds or a datetime.timedelta (None: the memory's "
                 "default_ttl; math.inf: never expires)",
                 {}});
  if (*s == std::numeric_limits<double>::infinity()) return memory::no_expiry;
  auto ms = to_milliseconds(*s);
  if (!ms || *ms >= memory::no_expiry)
    throw error(errc::invalid_argument,
                {"ttl is out of the range of milliseconds (math.inf: never expires)", {}});
  return *ms;
}

// The time-window keywords of keys() and search(); None: no bound.
time_window to_window(py::handle created_after, py::handle created_before, py::handle updated_after,
                      py::handle updated_before) {
  auto bound = [](py::handle t, bool before, const char* name) -> std::optional<memory_time> {
    if (t.is_none()) return std::nullopt;
    return to_time(t.ptr(), before, name);
  };
  return {
      bound(created_after, false, "created_after"), bound(created_before, true, "created_before"),
      bound(updated_after, false, "updated_after"), bound(updated_before, true, "updated_before")};
}

// Calls f(x...) with the value of each optional that holds one, in order: the C++ API has an
// overload with and one without each optional argument (an embedding, a time to live).
template <class F>
decltype(auto) with_present(F&& f) {
  return std::forward<F>(f)();
}
template <class F, class T, class... Rest>
decltype(auto) with_present(F&& f, std::optional<T>& first, Rest&... rest) {
  if (first)
    return with_present(
        [&](auto&&... x) -> decltype(auto) {
          return f(std::move(*first), std::forward<decltype(x)>(x)...);
        },
        rest...);
  return with_present(std::forward<F>(f), rest...);
}

// ---- settings ---------------------------------------------------------------------------------

// The keyword settings of open() / memory() / vector_store(): each read at most once; what is
// left over is an unknown setting.
class settings {
 public:
  explicit settings(const py::dict& d) {
    for (auto [k, v] : d) {
      if (!py::isinstance<py::str>(k))
        throw error(errc::invalid_argument, {"settings are named by strings", {}});
      items_.emplace_back(k.cast<std::string>(), py::reinterpret_borrow<py::object>(v));
    }
  }
  std::optional<py::object> take(std::string_view name) {
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == name) {
        py::object v = std::move(it->second);
        items_.erase(it);
        return v;
      }
    return std::nullopt;
  }
  template <class Duration>
  void seconds(std::string_view name, Duration& out) {
    if (auto v = take(name)) {
      double s = number(name, *v);
      if (!(s >= 0) || !std::isfinite(s))
        fail(name, "must be a finite number of seconds, zero or more");
      out = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
    }
  }
  // A duration of zero or more, as milliseconds (see to_milliseconds).
  void milliseconds(std::string_view name, std::chrono::milliseconds& out) {
    if (auto v = take(name)) {
      double s = number(name, *v);
      auto ms = s >= 0 ? to_milliseconds(s) : std::nullopt;
      if (!ms) fail(name, "must be a finite number of seconds, zero or more");
      out = *ms;
    }
  }
  // A time to live: positive; None or infinity: none.
  void ttl(std::string_view name, std::optional<std::chrono::milliseconds>& out) {
    if (auto v = take(name)) {
      if (v->is_none()) {
        out.reset();
        return;
      }
      double s = number(name, *v);
      if (s == std::numeric_limits<double>::infinity()) {
        out.reset();
        return;
      }
      if (!(s > 0)) fail(name, "must be a positive number of seconds (None: items never expire)");
      auto ms = to_milliseconds(s);
      if (!ms) fail(name, "is out of the range of milliseconds (None: items never expire)");
      out = *ms;
    }
  }
  // A list or tuple of str.
  void strings(std::string_view name, std::vector<std::string>& out) {
    if (auto v = take(name)) {
      if (!py::isinstance<py::list>(*v) && !py::isinstance<py::tuple>(*v))
        fail(name, "must be a list of str");
      out.clear();
      for (py::handle x : *v) {
        if (!py::isinstance<py::str>(x)) fail(name, "must be a list of str");
        out.push_back(x.cast<std::string>());
      }
    }
  }
  template <class Int>
  void count(std::string_view name, Int& out, long long min = 0) {
    if (auto v = take(name)) {
      if (py::isinstance<py::bool_>(*v) || !py::isinstance<py::int_>(*v))
        fail(name, "must be an integer");
      long long i = v->cast<long long>();
      if (i < min) fail(name, "must be at least " + std::to_string(min));
      out = static_cast<Int>(i);
    }
  }
  void flag(std::string_view name, bool& out) {
    if (auto v = take(name)) {
      if (!py::isinstance<py::bool_>(*v)) fail(name, "must be True or False");
      out = v->cast<bool>();
    }
  }
  template <class Enum>
  void choice(std::string_view name, Enum& out,
              std::initializer_list<std::pair<const char*, Enum>> options) {
    if (auto v = take(name)) {
      std::string s = py::isinstance<py::str>(*v) ? v->cast<std::string>() : "";
      for (auto& [n, e] : options)
        if (s == n) {
          out = e;
          return;
        }
      std::string names;
      for (auto& [n, e] : options) names += std::string(names.empty() ? "" : ", ") + n;
      fail(name, "must be one of " + names);
    }
  }
  void finish(std::string_view where) const {
    if (items_.empty()) return;
    std::string names;
    for (auto& [n, v] : items_) names += (names.empty() ? "" : ", ") + n;
    throw error(
        errc::invalid_argument,
        {std::string(where) + ": unknown setting" + (items_.size() > 1 ? "s " : " ") + names, {}});
  }

 private:
  static double number(std::string_view name, const py::object& v) {
    auto s = to_seconds(v.ptr());
    if (!s) fail(name, "must be a number of seconds or a datetime.timedelta");
    return *s;
  }
  [[noreturn]] static void fail(std::string_view name, const std::string& why) {
    throw error(errc::invalid_argument, {"setting " + std::string(name) + " " + why, {}});
  }
  std::vector<std::pair<std::string, py::object>> items_;
};

vector_store_params vector_settings(settings& s) {
  vector_store_params p;
  s.count("hnsw_threshold", p.hnsw_threshold);
  s.flag("hnsw_build_in_background", p.hnsw_build_in_background);
  s.count("hnsw_m", p.hnsw_m, 2);
  s.count("hnsw_ef_construction", p.hnsw_ef_construction, 1);
  s.count("hnsw_ef", p.hnsw_ef, 1);
  return p;
}

memory_params memory_settings(settings& s) {
  memory_params p;
  p.recall = vector_settings(s);
  s.ttl("default_ttl", p.default_ttl);
  s.flag("refresh_on_read", p.refresh_on_read);
  s.milliseconds("sweep_interval", p.sweep_interval);
  s.count("sweep_batch", p.sweep_batch, 1);
  s.strings("text_fields", p.text_fields);
  return p;
}

// ---- open databases, for interpreter exit ----------------------------------------------------

std::mutex open_mutex;
std::vector<std::weak_ptr<infrastructure>>& open_engines() {
  static auto* v = new std::vector<std::weak_ptr<infrastructure>>();
  return *v;
}

void remember(const std::shared_ptr<infrastructure>& infra) {
  std::lock_guard lock(open_mutex);
  auto& v = open_engines();
  std::erase_if(v, [](const std::weak_ptr<infrastructure>& w) { return w.expired(); });
  v.push_back(infra);
}

// Interpreter exit: every loop's bridge cancels what it still awaits and drops its queue, and
// every engine still open shuts down, so no engine thread is left to call into a finalizing
// interpreter. A statement nothing can stop (a blocking call on a daemon thread) is waited for
// at most exit_grace; then the process exits around it (its request was never acknowledged).
constexpr std::chrono::seconds exit_grace{3};

void at_exit() {
  close_all_bridges();
  std::vector<std::shared_ptr<infrastructure>> engines;
  {
    std::lock_guard lock(open_mutex);
    for (auto& w : open_engines())
      if (auto e = w.lock()) engines.push_back(std::move(e));
    open_engines().clear();
  }
  if (engines.empty()) return;
  py::gil_scoped_release nogil;
  struct shutdown_state {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  auto st = std::make_shared<shutdown_state>();
  std::thread([engines = std::move(engines), st]() mutable {
    for (auto& e : engines) e->shutdown();
    engines.clear();
    std::lock_guard lock(st->m);
    st->done = true;
    st->cv.notify_all();
  }).detach();
  std::unique_lock lock(st->m);
  st->cv.wait_for(lock, exit_grace, [&] { return st->done; });
}

// Drops the last references to engine objects without the GIL: an engine's destructor joins
// threads that may be waiting for it.
template <class T>
void drop_without_gil(T& x) {
  py::gil_scoped_release nogil;
  T gone = std::move(x);
  (void)gone;
}

// ---- Database -----------------------------------------------------------------------------

// The session of a transaction body, valid while the body runs.
struct py_transaction {
  session* s = nullptr;
  session& get() const {
    if (!s) throw error(errc::invalid_argument, {"the transaction has ended", {}});
    return *s;
  }
};

struct py_database {
  std::optional<database> db;
  std::string target;

  py_database(database d, std::string t) : db(std::move(d)), target(std::move(t)) {}
  ~py_database() { drop_without_gil(db); }
  const database& get() const { return *db; }
  infrastructure& engine() const { return db->infra(); }
};

// What a Python transaction body left behind: its result, or the exception it raised.
struct body_outcome {
  py_ref value;
  py_ref raised;  // the exception instance
};

// A transaction body calling `fn(tx)` under the GIL; it may run more than once.
transaction_body python_body(py::object fn, std::shared_ptr<body_outcome> out) {
  auto f = std::make_shared<py_ref>(py_ref::borrow(fn.ptr()));
  return [f, out](session& s) {
    py::gil_scoped_acquire gil;
    py::object tx = py::cast(py_transaction{&s});
    struct end_session {
      py::object& tx;
      ~end_session() { tx.cast<py_transaction&>().s = nullptr; }
    } end{tx};
    PyObject* r = PyObject_CallOneArg(f->get(), tx.ptr());
    if (!r) {
      PyObject *type, *val, *tb;
      PyErr_Fetch(&type, &val, &tb);
      PyErr_NormalizeException(&type, &val, &tb);
      if (tb && val) PyException_SetTraceback(val, tb);
      out->raised = py_ref::steal(val);
      Py_XDECREF(type);
      Py_XDECREF(tb);
      out->value.reset();
      throw error(errc::aborted,
                  {"the transaction function raised; the transaction was rolled back", {}});
    }
    out->raised.reset();
    out->value = py_ref::steal(r);
  };
}

py::object tx_query(const py_transaction& tx, const std::string& sql, py::object args,
                    std::size_t max_rows) {
  session& s = tx.get();
  params p = to_params(args.ptr());
  result r = run_sync([&] { return s.query(sql, p, max_rows); });
  return steal_or_throw(from_result(r));
}

// The settings both engines have, read the same way for either.
template <class Params>
void common_settings(settings& s, Params& p) {
  s.count("pool_size", p.pool_size, 1);
  s.count("min_connections", p.min_connections);
  s.seconds("query_timeout", p.query_timeout);
  s.seconds("acquire_timeout", p.acquire_timeout);
}

std::shared_ptr<py_database> open_database(const std::string& target, py::dict kwargs) {
  settings s(kwargs);
  std::shared_ptr<infrastructure> infra;
  engine_target where = parse_target(target);
  if (where.postgres) {
    postgres_params p;
    p.url = std::move(where.location);
    common_settings(s, p);
    s.seconds("connect_timeout", p.connect_timeout);
    s.count("pipeline_chunk", p.pipeline_chunk, 1);
    s.count("statement_cache_size", p.statement_cache_size);
    s.finish("open");
    infra = std::make_shared<postgres_infrastructure>(std::move(p));
  } else {
    sqlite_params p;
    p.path = std::move(where.location);
    common_settings(s, p);
    s.seconds("busy_timeout", p.busy_timeout);
    s.choice("journal_mode", p.journal,
             {{"wal", journal_mode::wal},
              {"delete", journal_mode::delete_},
              {"truncate", journal_mode::truncate},
              {"persist", journal_mode::persist},
              {"memory", journal_mode::memory},
              {"off", journal_mode::off}});
    s.choice("synchronous", p.synchronous,
             {{"off", synchronous_mode::off},
              {"normal", synchronous_mode::normal},
              {"full", synchronous_mode::full},
              {"extra", synchronous_mode::extra}});
    bool durable = false;
    s.flag("durable", durable);
    if (durable) p.synchronous = synchronous_mode::full;
    s.choice("temp_store", p.temp_store,
             {{"default", temp_store_mode::default_},
              {"file", temp_store_mode::file},
              {"memory", temp_store_mode::memory}});
    s.count("mmap_size", p.mmap_size);
    s.count("statement_cache_size", p.statement_cache_size);
    s.count("max_group_size", p.max_group_size, 1);
    s.seconds("inline_budget", p.inline_budget);
    s.finish("open");
    infra = std::make_shared<sqlite_infrastructure>(std::move(p));
  }
  run_sync([&] { infra->startup(); });
  remember(infra);
  database db(infra);
  return std::make_shared<py_database>(std::move(db), target);
}

// ---- Memory and VectorStore ------------------------------------------------------------------

struct py_memory {
  std::optional<memory> mem;
  explicit py_memory(memory m) : mem(std::move(m)) {}
  ~py_memory() { drop_without_gil(mem); }
  const memory& get() const { return *mem; }
};

struct py_vectors {
  std::optional<vector_store> vs;
  explicit py_vectors(vector_store v) : vs(std::move(v)) {}
  ~py_vectors() { drop_without_gil(vs); }
  const vector_store& get() const { return *vs; }
};

memory::items to_items(py::handle items) {
  memory::items out;
  if (PyDict_Check(items.ptr())) {
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(items.ptr(), &pos, &k, &v)) {
      if (!PyUnicode_Check(k))
        throw error(errc::invalid_argument, {"a memory key must be a str", {}});
      std::string key = py::reinterpret_borrow<py::str>(k).cast<std::string>();
      json value = to_json(v, "the value of key '" + key + "'");
      out.emplace_back(std::move(key), std::move(value));
    }
    return out;
  }
  for (py::handle pair : items) {
    py::tuple t = py::reinterpret_borrow<py::object>(pair).cast<py::tuple>();
    if (t.size() != 2 || !py::isinstance<py::str>(t[0]))
      throw error(errc::invalid_argument, {"batch_store takes a dict or (key, value) pairs", {}});
    std::string key = t[0].cast<std::string>();
    json value = to_json(t[1].ptr(), "the value of key '" + key + "'");
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

// The items of restore: Items (Memory.load_item) or (key, value[, created[, updated[,
// expires]]]) tuples, times as timezone-aware datetimes or None; an item's `ttl` attribute
// (seconds or a timedelta), when it has one, is its time to live.
std::vector<memory_item> to_memory_items(py::handle items) {
  const char* shape =
      "restore takes Items (Memory.load_item) or (key, value[, created[, updated[, expires]]]) "
      "tuples";
  std::vector<memory_item> out;
  for (py::handle x : items) {
    if (!PyTuple_Check(x.ptr())) throw error(errc::invalid_argument, {shape, {}});
    auto t = py::reinterpret_borrow<py::tuple>(x);
    if (t.size() < 2 || t.size() > 5 || !py::isinstance<py::str>(t[0]))
      throw error(errc::invalid_argument, {shape, {}});
    memory_item item;
    item.key = t[0].cast<std::string>();
    const std::string of_key = " of key '" + item.key + "'";
    item.value = to_json(t[1].ptr(), "the value" + of_key);
    auto time_at = [&](std::size_t i, const char* name) -> std::optional<memory_time> {
      if (t.size() <= i || t[i].is_none()) return std::nullopt;
      return to_time(t[i].ptr(), false, name + of_key);
    };
    item.created = time_at(2, "created");
    item.updated = time_at(3, "updated");
    item.expires = time_at(4, "expires");
    if (py::hasattr(x, "ttl")) {
      py::object ttl = x.attr("ttl");
      if (!ttl.is_none()) {
        auto seconds = to_seconds(ttl.ptr());
        auto ms = seconds && *seconds > 0 ? to_milliseconds(*seconds) : std::nullopt;
        if (!ms || *ms >= memory::no_expiry)
          throw error(
              errc::invalid_argument,
              {"the ttl" + of_key + " must be a positive number of seconds or a timedelta", {}});
        item.ttl = *ms;
      }
    }
    out.push_back(std::move(item));
  }
  return out;
}

std::vector<std::string> to_keys(py::handle keys) {
  std::vector<std::string> out;
  if (py::isinstance<py::str>(keys))
    throw error(errc::invalid_argument, {"batch_load takes an iterable of keys, not one str", {}});
  for (py::handle k : keys) {
    if (!py::isinstance<py::str>(k))
      throw error(errc::invalid_argument, {"a memory key must be a str", {}});
    out.push_back(k.cast<std::string>());
  }
  return out;
}

json to_metadata(py::handle m, const std::string& what) {
  if (m.is_none()) return json::object();
  return to_json(m.ptr(), what);
}

vector_store::items to_vector_items(py::handle items) {
  vector_store::items out;
  std::size_t i = 0;
  for (py::handle it : items) {
    vector_item v;
    std::string what = "item " + std::to_string(i++);
    if (PyDict_Check(it.ptr())) {
      py::dict d = py::reinterpret_borrow<py::dict>(it);
      if (!d.contains("id") || !d.contains("vector"))
        throw error(errc::invalid_argument, {what + ": a dict item needs 'id' and 'vector'", {}});
      v.id = py::str(d["id"]).cast<std::string>();
      v.vector = to_floats(py::object(d["vector"]).ptr(), what);
      if (d.contains("metadata")) v.metadata = to_metadata(d["metadata"], what);
    } else {
      py::tuple t = py::reinterpret_borrow<py::object>(it).cast<py::tuple>();
      if (t.size() < 2 || t.size() > 3 || !py::isinstance<py::str>(t[0]))
        throw error(errc::invalid_argument,
                    {what + ": an item is (id, vector) or (id, vector, metadata)", {}});
      v.id = t[0].cast<std::string>();
      v.vector = to_floats(t[1].ptr(), what);
      if (t.size() == 3) v.metadata = to_metadata(t[2], what);
    }
    out.push_back(std::move(v));
  }
  return out;
}

metric to_metric(const std::string& name) {
  auto m = parse_metric(name);
  if (!m)
    throw error(errc::invalid_argument,
                {"unknown metric '" + name + "' (cosine, l2, inner_product or ip)", {}});
  return *m;
}

std::size_t to_dim(std::int64_t dim) {
  if (dim < 1 || static_cast<std::uint64_t>(dim) > vector_store::max_dim)
    throw error(errc::invalid_argument,
                {"a collection's dimension is 1 to " + std::to_string(vector_store::max_dim) +
                     ", not " + std::to_string(dim),
                 {}});
  return static_cast<std::size_t>(dim);
}

// ---- the module ---------------------------------------------------------------------------------

// Binds `name` (awaitable) and `name_sync` (blocking) from one pair of lambdas: for the verbs
// whose two forms differ beyond the C++ call (a transaction's function, close, a default).
template <class Class, class Async, class Sync, class... Extra>
void pair(Class& c, const char* name, Async&& async_fn, Sync&& sync_fn, const Extra&... extra) {
  c.def(name, std::forward<Async>(async_fn), extra...);
  c.def((std::string(name) + "_sync").c_str(), std::forward<Sync>(sync_fn), extra...);
}

template <class F>
struct call_signature : call_signature<decltype(&F::operator())> {};
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const> {
  using args = std::tuple<A...>;
};

template <class T, loop_bridge::completes When, class Class, class Prepare, class Async, class Sync,
          class ToPy, class... A, class... Extra>
void verb_of(Class& c, const char* name, std::tuple<A...>*, Prepare prepare, Async async_call,
             Sync sync_call, ToPy to_py, const Extra&... extra) {
  using Self = typename Class::type;
  c.def(
      name,
      [=](const Self& self, A... a) {
        auto args = prepare(std::move(a)...);
        return start_async<T>(
            [&](diagnostics& diag, auto h) {
              std::apply(
                  [&](auto&... x) { async_call(self.get(), diag, std::move(h), std::move(x)...); },
                  args);
            },
            to_py, When);
      },
      extra...);
  c.def((std::string(name) + "_sync").c_str(),
        [=](const Self& self, A... a) -> py::object {
          auto args = prepare(std::move(a)...);
          auto call = [&] {
            return std::apply([&](auto&... x) { return sync_call(self.get(), std::move(x)...); },
                              args);
          };
          if constexpr (std::is_void_v<T>) {
            run_sync(call);
            return py::none();
          } else {
            T r = run_sync(call);
            return steal_or_throw(to_py(r));
          }
        },
        extra...);
}

// Binds a verb written once: `prepare(python args...)` converts the arguments to the C++ ones
// (a tuple), once, before either form starts; `async_call(api, diag, handler, args...)` and
// `sync_call(api, args...) -> T` are the two forms of the C++ call; `to_py(T&)` (`to_py()`
// for void) builds the Python result of both. `name` is the awaitable, `name_sync` the blocking.
// A write completes with its group (loop_bridge::completes): writes started together commit
// together.
template <class T, loop_bridge::completes When = loop_bridge::completes::at_once, class Class,
          class Prepare, class Async, class Sync, class ToPy, class... Extra>
void verb(Class& c, const char* name, Prepare prepare, Async async_call, Sync sync_call, ToPy to_py,
          const Extra&... extra) {
  verb_of<T, When>(c, name, static_cast<typename call_signature<Prepare>::args*>(nullptr),
                   std::move(prepare), std::move(async_call), std::move(sync_call),
                   std::move(to_py), extra...);
}

}  // namespace
}  // namespace entity::python

PYBIND11_MODULE(_core, mod) {
  using namespace entity;
  using namespace entity::python;
  mod.doc() =
      "entity-db's engine: SQLite and PostgreSQL for asyncio, with a blocking twin of every call";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const entity::error& e) {
      set_error(e.code(), e.diag());
    }
  });

  mod.def("_register", [](py::object mapping) { register_classes(mapping.ptr()); });
  mod.def("_at_exit", &at_exit);
  mod.def(
      "loop_stats",
      [] {
        std::shared_ptr<loop_bridge> b = bridge_for_running_loop();
        if (!b) throw_python();
        py::dict d;
        d["wakeups"] = b->stats().wakeups;
        d["completions"] = b->stats().completions;
        return d;
      },
      "For the running event loop: how often completions from the engine's threads woke it "
      "(`wakeups`) and how many operations it has completed (`completions`).");
  mod.attr("MAX_JSON_DEPTH") = entity::max_json_depth;
  mod.attr("INLINE_STREAK_SECONDS") =
      std::chrono::duration<double>(loop_bridge::inline_streak).count();

  mod.def("open", &open_database, py::arg("target") = ":memory:", py::arg("settings") = py::dict());

  // -- Transaction
  py::class_<py_transaction>(mod, "Transaction")
      .def(
          "execute",
          [](const py_transaction& t, const std::string& sql, py::object args) {
            return tx_query(t, sql, args, std::numeric_limits<std::size_t>::max());
          },
          py::arg("sql"), py::arg("params") = py::none())
      .def(
          "fetch_one",
          [](const py_transaction& t, const std::string& sql, py::object args) -> py::object {
            py::object r = tx_query(t, sql, args, 1);
            py::list rows = r.attr("rows");
            if (rows.empty()) return py::none();
            return rows[0];
          },
          py::arg("sql"), py::arg("params") = py::none())
      .def(
          "fetch_all",
          [](const py_transaction& t, const std::string& sql, py::object args) -> py::object {
            return tx_query(t, sql, args, std::numeric_limits<std::size_t>::max()).attr("rows");
          },
          py::arg("sql"), py::arg("params") = py::none());

  // Writes complete with their group, so that writes started together commit together.
  constexpr auto grouped = loop_bridge::completes::with_its_group;
  py::class_<grouped_op>(mod, "_GroupedOperation")
      .def("awaited", &grouped_op::awaited)
      .def("cancel", &grouped_op::cancel);

  // -- Database
  auto dbc = py::class_<py_database, std::shared_ptr<py_database>>(mod, "Database");
  dbc.def_property_readonly(
         "backend", [](const py_database& d) { return std::string(d.get().backend_name()); })
      .def_property_readonly("closed", [](const py_database& d) { return !d.engine().running(); })
      .def_property_readonly("target", [](const py_database& d) { return d.target; })
      .def("stats",
           [](const py_database& d) { return steal_or_throw(from_stats(d.get().stats())); })
      .def(
          "with_timeout",
          [](const py_database& d, double seconds) {
            if (!(seconds > 0) || !std::isfinite(seconds))
              throw error(errc::invalid_argument,
                          {"a timeout is a positive number of seconds", {}});
            auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::duration<double>(seconds));
            if (ms.count() < 1) ms = std::chrono::milliseconds(1);
            return std::make_shared<py_database>(d.get().with_timeout(ms), d.target);
          },
          py::arg("seconds"))
      .def("memory",
           [](const py_database& d, py::kwargs kw) {
             settings s(kw);
             memory_params p = memory_settings(s);
             s.finish("memory");
             return py_memory(memory(d.get(), std::move(p)));
           })
      .def("vector_store", [](const py_database& d, py::kwargs kw) {
        settings s(kw);
        vector_store_params p = vector_settings(s);
        s.finish("vector_store");
        return py_vectors(vector_store(d.get(), p));
      });

  auto statement = [](std::string sql, py::object args) {
    return std::tuple(std::move(sql), to_params(args.ptr()));
  };
  auto py_result = [](result& r) { return from_result(r); };
  verb<result, grouped>(
      dbc, "execute", statement,
      [](const database& d, diagnostics& diag, auto h, std::string sql, params args) {
        d.async_execute(std::move(sql), std::move(args), diag, std::move(h));
      },
      [](const database& d, std::string sql, params args) {
        return d.execute(std::move(sql), std::move(args));
      },
      py_result, py::arg("sql"), py::arg("params") = py::none());
  verb<std::optional<row>>(
      dbc, "fetch_one", statement,
      [](const database& d, diagnostics& diag, auto h, std::string sql, params args) {
        d.async_fetch_one(std::move(sql), std::move(args), diag, std::move(h));
      },
      [](const database& d, std::string sql, params args) {
        return d.fetch_one(std::move(sql), std::move(args));
      },
      [](std::optional<row>& r) -> PyObject* {
        if (!r) Py_RETURN_NONE;
        return from_row(*r);
      },
      py::arg("sql"), py::arg("params") = py::none());
  verb<database::rows>(
      dbc, "fetch_all", statement,
      [](const database& d, diagnostics& diag, auto h, std::string sql, params args) {
        d.async_fetch_all(std::move(sql), std::move(args), diag, std::move(h));
      },
      [](const database& d, std::string sql, params args) {
        return d.fetch_all(std::move(sql), std::move(args));
      },
      [](database::rows& r) { return from_rows(r); }, py::arg("sql"),
      py::arg("params") = py::none());
  verb<void>(
      dbc, "execute_script", [](std::string sql) { return std::tuple(std::move(sql)); },
      [](const database& d, diagnostics& diag, auto h, std::string sql) {
        d.async_execute_script(std::move(sql), diag, std::move(h));
      },
      [](const database& d, std::string sql) { d.execute_script(std::move(sql)); }, none_result{},
      py::arg("sql"));
  verb<result, grouped>(
      dbc, "execute_many",
      [](std::string sql, py::object seq) {
        std::vector<params> batch;
        if (py::isinstance<py::str>(seq))
          throw error(errc::invalid_argument,
                      {"execute_many takes a sequence of parameter sequences", {}});
        for (py::handle p : seq) batch.push_back(to_params(p.ptr()));
        return std::tuple(std::move(sql), std::move(batch));
      },
      [](const database& d, diagnostics& diag, auto h, std::string sql, std::vector<params> b) {
        d.async_execute_many(std::move(sql), std::move(b), diag, std::move(h));
      },
      [](const database& d, std::string sql, std::vector<params> b) {
        return d.execute_many(std::move(sql), std::move(b));
      },
      py_result, py::arg("sql"), py::arg("seq_of_params"));
  pair(
      dbc, "transaction",
      [](const py_database& d, py::object fn) {
        auto out = std::make_shared<body_outcome>();
        auto op = std::make_shared<pending_op>();
        op->make_error = [out]() -> PyObject* { return out->raised.release(); };
        return start_async<void>(
            [&](diagnostics& diag, auto h) {
              d.get().async_transaction(python_body(fn, out), diag, std::move(h));
            },
            [out]() -> PyObject* {
              if (!out->value) Py_RETURN_NONE;
              return py_ref::borrow(out->value.get()).release();
            },
            loop_bridge::completes::at_once, op);
      },
      [](const py_database& d, py::object fn) -> py::object {
        auto out = std::make_shared<body_outcome>();
        error_code ec;
        diagnostics diag;
        run_sync([&] { d.get().transaction(python_body(fn, out), ec, diag); });
        if (out->raised) {
          PyObject* exc = out->raised.release();
          PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
          Py_DECREF(exc);
          throw_python();
        }
        if (ec) {
          set_error(ec, diag);
          throw_python();
        }
        if (!out->value) return py::none();
        return py::reinterpret_borrow<py::object>(out->value.get());
      },
      py::arg("fn"));
  // health_check's answer is a bool: the awaitable form is written in Python over this one,
  // which raises the reason the engine does not answer.
  dbc.def("_health", [](const py_database& d) {
    return start_async<void>(
        [&](diagnostics&, auto h) { d.get().async_health_check(std::move(h)); }, none_result{});
  });
  dbc.def("health_check_sync",
          [](const py_database& d) { return run_sync([&] { return d.get().health_check(); }); });
  pair(
      dbc, "close",
      [](const py_database& d) {
        // Shutting down waits for the engine's threads: it runs on a thread of its own, and
        // the future completes once every operation in flight has completed or failed.
        return start_async<void>(
            [&](diagnostics&, auto h) {
              auto infra = d.get().infra_ptr();
              std::thread([infra, h = std::move(h)]() mutable {
                infra->shutdown();
                auto ex = asio::get_associated_executor(h);
                asio::dispatch(ex, [h = std::move(h)]() mutable { std::move(h)(error_code{}); });
              }).detach();
            },
            none_result{});
      },
      [](const py_database& d) { run_sync([&] { d.engine().shutdown(); }); });

  // -- Memory
  auto memc = py::class_<py_memory>(mod, "Memory");
  memc.def_property_readonly("prefix", [](const py_memory& x) { return x.get().prefix(); })
      .def(
          "scope",
          [](const py_memory& x, const std::string& name) {
            return py_memory(x.get().scope(name));
          },
          py::arg("name"));
  verb<void, grouped>(
      memc, "store",
      [](std::string key, py::object value, py::object embedding, py::object ttl) {
        json v = to_json(value.ptr(), "the value of key '" + key + "'");
        std::optional<std::vector<float>> e;
        if (!embedding.is_none())
          e = to_floats(embedding.ptr(), "the embedding of key '" + key + "'");
        return std::tuple(std::move(key), std::move(v), std::move(e), to_ttl(ttl));
      },
      [](const memory& m, diagnostics& diag, auto h, std::string key, json v,
         std::optional<std::vector<float>> e, memory::ttl t) {
        with_present(
            [&](auto&&... x) {
              m.async_store(std::move(key), std::move(v), std::move(x)..., diag, std::move(h));
            },
            e, t);
      },
      [](const memory& m, std::string key, json v, std::optional<std::vector<float>> e,
         memory::ttl t) {
        with_present([&](auto&&... x) { m.store(std::move(key), std::move(v), std::move(x)...); },
                     e, t);
      },
      none_result{}, py::arg("key"), py::arg("value"), py::arg("embedding") = py::none(),
      py::kw_only(), py::arg("ttl") = py::none());
  pair(
      memc, "load",
      [](const py_memory& x, std::string key, py::object dflt) {
        auto d = std::make_shared<py_ref>(py_ref::borrow(dflt.ptr()));
        return start_async<std::optional<json>>(
            [&](diagnostics& diag, auto h) {
              x.get().async_load(std::move(key), diag, std::move(h));
            },
            [d](std::optional<json>& v) -> PyObject* {
              if (!v) return py_ref::borrow(d->get()).release();
              return from_json(*v);
            });
      },
      [](const py_memory& x, std::string key, py::object dflt) -> py::object {
        auto v = run_sync([&] { return x.get().load(std::move(key)); });
        if (!v) return dflt;
        return steal_or_throw(from_json(*v));
      },
      py::arg("key"), py::arg("default") = py::none());
  auto one_key = [](std::string key) { return std::tuple(std::move(key)); };
  auto pattern = [](std::string p) { return std::tuple(std::move(p)); };
  auto nothing = [] { return std::tuple<>(); };
  auto as_bool = [](bool& b) { return py_bool(b); };
  auto as_int = [](std::int64_t& n) { return py_int(n); };
  verb<bool, grouped>(
      memc, "delete", one_key,
      [](const memory& m, diagnostics& diag, auto h, std::string key) {
        m.async_erase(std::move(key), diag, std::move(h));
      },
      [](const memory& m, std::string key) { return m.erase(std::move(key)); }, as_bool,
      py::arg("key"));
  verb<bool>(
      memc, "exists", one_key,
      [](const memory& m, diagnostics& diag, auto h, std::string key) {
        m.async_exists(std::move(key), diag, std::move(h));
      },
      [](const memory& m, std::string key) { return m.exists(std::move(key)); }, as_bool,
      py::arg("key"));
  // The time-window keywords of keys() and search().
  auto created_after = py::arg("created_after") = py::none();
  auto created_before = py::arg("created_before") = py::none();
  auto updated_after = py::arg("updated_after") = py::none();
  auto updated_before = py::arg("updated_before") = py::none();
  verb<std::vector<std::string>>(
      memc, "keys",
      [](std::string p, py::object ca, py::object cb, py::object ua, py::object ub) {
        return std::tuple(std::move(p), to_window(ca, cb, ua, ub));
      },
      [](const memory& m, diagnostics& diag, auto h, std::string p, time_window w) {
        m.async_keys(std::move(p), w, diag, std::move(h));
      },
      [](const memory& m, std::string p, time_window w) { return m.keys(std::move(p), w); },
      [](std::vector<std::string>& k) { return from_strings(k); }, py::arg("pattern") = "%",
      py::kw_only(), created_after, created_before, updated_after, updated_before);
  verb<std::optional<memory_item>>(
      memc, "load_item", one_key,
      [](const memory& m, diagnostics& diag, auto h, std::string key) {
        m.async_load_item(std::move(key), diag, std::move(h));
      },
      [](const memory& m, std::string key) { return m.load_item(std::move(key)); },
      [](std::optional<memory_item>& i) { return from_memory_item(i); }, py::arg("key"));
  verb<std::vector<std::string>>(
      memc, "scopes",
      [](std::string prefix, py::object max_depth) {
        std::size_t depth = static_cast<std::size_t>(-1);
        if (!max_depth.is_none()) {
          if (!py::isinstance<py::int_>(max_depth) || py::isinstance<py::bool_>(max_depth) ||
              max_depth.cast<py::int_>() < py::int_(0))
            throw error(errc::invalid_argument,
                        {"max_depth must be an int of 1 or more (None: every level)", {}});
          unsigned long long n = PyLong_AsUnsignedLongLong(max_depth.ptr());
          if (n == static_cast<unsigned long long>(-1) && PyErr_Occurred()) PyErr_Clear();
          depth = static_cast<std::size_t>(n);  // past size_t: every level
        }
        return std::tuple(std::move(prefix), depth);
      },
      [](const memory& m, diagnostics& diag, auto h, std::string prefix, std::size_t depth) {
        m.async_scopes(std::move(prefix), depth, diag, std::move(h));
      },
      [](const memory& m, std::string prefix, std::size_t depth) {
        return m.scopes(std::move(prefix), depth);
      },
      [](std::vector<std::string>& k) { return from_strings(k); }, py::arg("prefix") = "",
      py::arg("max_depth") = py::none());
  verb<std::int64_t, grouped>(
      memc, "sweep", nothing,
      [](const memory& m, diagnostics& diag, auto h) { m.async_sweep(diag, std::move(h)); },
      [](const memory& m) { return m.sweep(); }, as_int);
  verb<std::int64_t, grouped>(
      memc, "clear", pattern,
      [](const memory& m, diagnostics& diag, auto h, std::string p) {
        m.async_clear(std::move(p), diag, std::move(h));
      },
      [](const memory& m, std::string p) { return m.clear(std::move(p)); }, as_int,
      py::arg("pattern") = "%");
  verb<std::int64_t>(
      memc, "size", nothing,
      [](const memory& m, diagnostics& diag, auto h) { m.async_size(diag, std::move(h)); },
      [](const memory& m) { return m.size(); }, as_int);
  verb<memory_stats>(
      memc, "stats", nothing,
      [](const memory& m, diagnostics& diag, auto h) { m.async_stats(diag, std::move(h)); },
      [](const memory& m) { return m.stats(); },
      [](memory_stats& st) { return from_memory_stats(st); });
  verb<void, grouped>(
      memc, "batch_store",
      [](py::object items, py::object ttl) { return std::tuple(to_items(items), to_ttl(ttl)); },
      [](const memory& m, diagnostics& diag, auto h, memory::items v, memory::ttl t) {
        with_present(
            [&](auto&&... x) { m.async_batch_store(std::move(v), x..., diag, std::move(h)); }, t);
      },
      [](const memory& m, memory::items v, memory::ttl t) {
        with_present([&](auto&&... x) { m.batch_store(std::move(v), x...); }, t);
      },
      none_result{}, py::arg("items"), py::kw_only(), py::arg("ttl") = py::none());
  verb<void, grouped>(
      memc, "restore", [](py::object items) { return std::tuple(to_memory_items(items)); },
      [](const memory& m, diagnostics& diag, auto h, std::vector<memory_item> v) {
        m.async_restore(std::move(v), diag, std::move(h));
      },
      [](const memory& m, std::vector<memory_item> v) { m.restore(std::move(v)); }, none_result{},
      py::arg("items"));
  verb<memory::loaded>(
      memc, "batch_load", [](py::object keys) { return std::tuple(to_keys(keys)); },
      [](const memory& m, diagnostics& diag, auto h, std::vector<std::string> k) {
        m.async_batch_load(std::move(k), diag, std::move(h));
      },
      [](const memory& m, std::vector<std::string> k) { return m.batch_load(std::move(k)); },
      [](memory::loaded& l) { return from_loaded(l); }, py::arg("keys"));
  verb<memory::recollection>(
      memc, "recall",
      [](py::object query, std::int64_t k) {
        return std::tuple(to_floats(query.ptr(), "the query"), k);
      },
      [](const memory& m, diagnostics& diag, auto h, std::vector<float> q, std::int64_t k) {
        m.async_recall(std::move(q), k, diag, std::move(h));
      },
      [](const memory& m, std::vector<float> q, std::int64_t k) {
        return m.recall(std::move(q), k);
      },
      [](memory::recollection& r) { return from_recollection(r); }, py::arg("query"),
      py::arg("k") = 5);
  verb<memory::search_results>(
      memc, "search",
      [](py::object filter, std::int64_t limit, std::int64_t offset, py::object text,
         py::object vector, py::object ca, py::object cb, py::object ua, py::object ub) {
        search_query q;
        if (!filter.is_none()) q.filter = to_json(filter.ptr(), "the filter");
        if (!text.is_none()) {
          if (!py::isinstance<py::str>(text))
            throw error(errc::invalid_argument, {"text must be a str (None: no text)", {}});
          q.text = text.cast<std::string>();
        }
        if (!vector.is_none()) q.vector = to_floats(vector.ptr(), "the vector");
        q.times = to_window(ca, cb, ua, ub);
        q.limit = limit;
        q.offset = offset;
        return std::tuple(std::move(q));
      },
      [](const memory& m, diagnostics& diag, auto h, search_query q) {
        m.async_search(std::move(q), diag, std::move(h));
      },
      [](const memory& m, search_query q) { return m.search(std::move(q)); },
      [](memory::search_results& r) { return from_search_results(r); },
      py::arg("filter") = py::none(), py::arg("limit") = 10, py::arg("offset") = 0, py::kw_only(),
      py::arg("text") = py::none(), py::arg("vector") = py::none(), created_after, created_before,
      updated_after, updated_before);

  // -- VectorStore
  auto vsc = py::class_<py_vectors>(mod, "VectorStore");
  auto collection_and_id = [](std::string collection, std::string id) {
    return std::tuple(std::move(collection), std::move(id));
  };
  verb<bool, grouped>(
      vsc, "create_collection",
      [](std::string name, std::int64_t dim, std::string m) {
        return std::tuple(std::move(name), to_dim(dim), to_metric(m));
      },
      [](const vector_store& v, diagnostics& diag, auto h, std::string name, std::size_t dim,
         metric m) { v.async_create_collection(std::move(name), dim, m, diag, std::move(h)); },
      [](const vector_store& v, std::string name, std::size_t dim, metric m) {
        return v.create_collection(std::move(name), dim, m);
      },
      as_bool, py::arg("name"), py::arg("dim"), py::arg("metric") = "cosine");
  verb<bool, grouped>(
      vsc, "drop_collection", one_key,
      [](const vector_store& v, diagnostics& diag, auto h, std::string name) {
        v.async_drop_collection(std::move(name), diag, std::move(h));
      },
      [](const vector_store& v, std::string name) { return v.drop_collection(std::move(name)); },
      as_bool, py::arg("name"));
  verb<std::vector<collection_info>>(
      vsc, "list_collections", nothing,
      [](const vector_store& v, diagnostics& diag, auto h) {
        v.async_list_collections(diag, std::move(h));
      },
      [](const vector_store& v) { return v.list_collections(); },
      [](std::vector<collection_info>& c) { return from_collections(c); });
  verb<void, grouped>(
      vsc, "upsert",
      [](std::string collection, std::string id, py::object vector, py::object metadata) {
        auto v = to_floats(vector.ptr(), "the vector of id '" + id + "'");
        json md = to_metadata(metadata, "the metadata of id '" + id + "'");
        return std::tuple(std::move(collection), std::move(id), std::move(v), std::move(md));
      },
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c, std::string id,
         std::vector<float> v, json md) {
        vs.async_upsert(std::move(c), std::move(id), std::move(v), std::move(md), diag,
                        std::move(h));
      },
      [](const vector_store& vs, std::string c, std::string id, std::vector<float> v, json md) {
        vs.upsert(std::move(c), std::move(id), std::move(v), std::move(md));
      },
      none_result{}, py::arg("collection"), py::arg("id"), py::arg("vector"),
      py::arg("metadata") = py::none());
  verb<void, grouped>(
      vsc, "upsert_batch",
      [](std::string collection, py::object items) {
        return std::tuple(std::move(collection), to_vector_items(items));
      },
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c, vector_store::items b) {
        vs.async_upsert_batch(std::move(c), std::move(b), diag, std::move(h));
      },
      [](const vector_store& vs, std::string c, vector_store::items b) {
        vs.upsert_batch(std::move(c), std::move(b));
      },
      none_result{}, py::arg("collection"), py::arg("items"));
  verb<bool, grouped>(
      vsc, "delete", collection_and_id,
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c, std::string id) {
        vs.async_erase(std::move(c), std::move(id), diag, std::move(h));
      },
      [](const vector_store& vs, std::string c, std::string id) {
        return vs.erase(std::move(c), std::move(id));
      },
      as_bool, py::arg("collection"), py::arg("id"));
  verb<std::optional<vector_item>>(
      vsc, "get", collection_and_id,
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c, std::string id) {
        vs.async_get(std::move(c), std::move(id), diag, std::move(h));
      },
      [](const vector_store& vs, std::string c, std::string id) {
        return vs.get(std::move(c), std::move(id));
      },
      [](std::optional<vector_item>& i) { return from_item(i); }, py::arg("collection"),
      py::arg("id"));
  verb<std::int64_t>(
      vsc, "count", one_key,
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c) {
        vs.async_count(std::move(c), diag, std::move(h));
      },
      [](const vector_store& vs, std::string c) { return vs.count(std::move(c)); }, as_int,
      py::arg("collection"));
  verb<vector_store::matches>(
      vsc, "search",
      [](std::string collection, py::object query, std::int64_t k, py::object filter, bool exact) {
        return std::tuple(std::move(collection), to_floats(query.ptr(), "the query"), k,
                          to_metadata(filter, "the filter"),
                          exact ? search_mode::exact : search_mode::approximate);
      },
      [](const vector_store& vs, diagnostics& diag, auto h, std::string c, std::vector<float> q,
         std::int64_t k, json f, search_mode mode) {
        vs.async_search(std::move(c), std::move(q), k, std::move(f), mode, diag, std::move(h));
      },
      [](const vector_store& vs, std::string c, std::vector<float> q, std::int64_t k, json f,
         search_mode mode) { return vs.search(std::move(c), std::move(q), k, std::move(f), mode); },
      [](vector_store::matches& r) { return from_matches(r); }, py::arg("collection"),
      py::arg("query"), py::arg("k") = 10, py::arg("filter") = py::none(),
      py::arg("exact") = false);
}
