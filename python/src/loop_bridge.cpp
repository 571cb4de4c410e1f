#include "loop_bridge.hpp"

#include <pybind11/pybind11.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <unordered_map>

#include "convert.hpp"

namespace entity::python {
namespace py = pybind11;

bool interpreter_finalizing() noexcept { return _Py_IsFinalizing() != 0; }

void py_ref::reset() noexcept {
  PyObject* o = o_;
  o_ = nullptr;
  if (!o) return;
  if (PyGILState_Check()) {
    Py_DECREF(o);
    return;
  }
  if (interpreter_finalizing()) return;  // leaked on purpose: the interpreter is going away
  PyGILState_STATE s = PyGILState_Ensure();
  Py_DECREF(o);
  PyGILState_Release(s);
}

// ---- the bridge -----------------------------------------------------------------------------

namespace {

// Every live bridge, by its loop. Touched with the GIL held only.
std::unordered_map<PyObject*, std::shared_ptr<loop_bridge>>& registry() {
  static auto* r = new std::unordered_map<PyObject*, std::shared_ptr<loop_bridge>>();
  return *r;
}

// The last loop this thread asked for, and its bridge: the common case costs one compare.
thread_local PyObject* cached_loop = nullptr;
thread_local std::weak_ptr<loop_bridge> cached_bridge;

PyObject* get_running_loop_fn() {
  static PyObject* fn = [] {
    py::object asyncio = py::module_::import("asyncio");
    return py::object(asyncio.attr("get_running_loop")).release().ptr();
  }();
  return fn;
}

bool loop_is_closed(PyObject* loop) {
  PyObject* r = ENTITY_PY_CALL(loop, "is_closed");
  if (!r) {
    PyErr_Clear();
    return true;
  }
  bool closed = PyObject_IsTrue(r) == 1;
  Py_DECREF(r);
  return closed;
}

}  // namespace

loop_bridge::loop_bridge(int fd) : fd_(fd), loop_thread_(std::this_thread::get_id()) {}

loop_bridge::~loop_bridge() {
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<loop_bridge> loop_bridge::create(PyObject* loop) {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  // The bridge holds the loop weakly (a weak reference whose callback closes the bridge):
  // pending operations keep the loop alive through their futures, nothing else must.
  std::shared_ptr<loop_bridge> b(new loop_bridge(fd));
  std::weak_ptr<loop_bridge> weak = b;
  py::cpp_function on_gone([weak](py::handle) {
    if (auto s = weak.lock()) s->close(false);  // the loop is being destroyed: do not touch it
  });
  b->loop_weak_ = py_ref::steal(PyWeakref_NewRef(loop, on_gone.ptr()));
  if (!b->loop_weak_) throw py::error_already_set();
  b->loop_raw_ = loop;
  py::cpp_function readable([weak] {
    if (auto s = weak.lock()) s->on_readable();
  });
  py::cpp_function marker([weak] {
    if (auto s = weak.lock()) s->on_turn();
  });
  b->marker_ = py_ref::borrow(marker.ptr());
  py::handle(loop).attr("add_reader")(fd, readable);
  return b;
}

void loop_bridge::post(detail::unique_function<void()> f) {
  bool wake_loop = false;
  {
    std::unique_lock lock(m_);
    if (closed_) {
      lock.unlock();
      return;  // `f` is dropped here: a ticket goes back to the engine's threads
    }
    queue_.push_back(std::move(f));
    if (std::this_thread::get_id() != loop_thread_ && !signalled_) {
      signalled_ = true;
      wake_loop = true;
    }
  }
  if (wake_loop) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
  }
}

void loop_bridge::ensure_turn() {
  if (turn_scheduled_ || !loop_raw_) return;
  PyObject* r = ENTITY_PY_CALL(loop_raw_, "call_soon", marker_.get());
  if (!r) {
    PyErr_Clear();
    return;
  }
  Py_DECREF(r);
  turn_scheduled_ = true;
}

void loop_bridge::on_turn() {
  turn_scheduled_ = false;
  streak_ = false;
  drain();
}

bool loop_bridge::queued() {
  std::lock_guard lock(m_);
  return !queue_.empty();
}

void loop_bridge::drain() {
  if (running_ || !queued()) return;
  {
    py::gil_scoped_release nogil;
    run_queue();
  }
  deliver();
}

void loop_bridge::drain_now_or_next_turn() {
  if (running_ || !queued()) return;
  auto now = std::chrono::steady_clock::now();
  if (!streak_) {
    streak_ = true;
    streak_start_ = now;
    ensure_turn();  // the turn that ends the streak
  } else if (now - streak_start_ >= inline_streak) {
    return ensure_turn();  // the loop's next turn runs it: other tasks go first
  }
  drain();
}

void loop_bridge::started(const std::shared_ptr<pending_op>& op, completes when) {
  if (when == completes::at_once)
    drain_now_or_next_turn();
  else if (queued())
    ensure_turn();  // for a future nobody awaits; an await runs it sooner (awaited())
  if (op->delivered()) return;
  if (pending_.size() >= pending_prune_at_) {
    std::erase_if(pending_, [](const std::weak_ptr<pending_op>& w) { return w.expired(); });
    pending_prune_at_ = std::max<std::size_t>(64, 2 * pending_.size());
  }
  pending_.push_back(op);
  if (when == completes::with_its_group) return;  // its future's cancel() reaches it
  // Still pending: a cancelled future cancels the operation.
  std::weak_ptr<pending_op> weak = op;
  py::cpp_function on_done([weak](py::handle fut) {
    auto o = weak.lock();
    if (!o || o->delivered()) return;
    py::object cancelled = fut.attr("cancelled")();
    if (cancelled.cast<bool>()) o->cancel.emit(boost::asio::cancellation_type::terminal);
  });
  PyObject* r = ENTITY_PY_CALL(op->future.get(), "add_done_callback", on_done.ptr());
  if (!r) throw py::error_already_set();
  Py_DECREF(r);
}

void loop_bridge::awaited(const std::shared_ptr<pending_op>& op) {
  if (!op->delivered()) drain_now_or_next_turn();
}

void loop_bridge::finished(std::shared_ptr<pending_op> op) { done_.push_back(std::move(op)); }

void loop_bridge::run_queue() {
  running_ = true;
  std::vector<detail::unique_function<void()>> batch;
  for (;;) {
    {
      std::lock_guard lock(m_);
      if (queue_.empty()) break;
      batch.swap(queue_);
    }
    for (auto& f : batch) f();
    batch.clear();
  }
  running_ = false;
}

void loop_bridge::deliver() {
  std::vector<std::shared_ptr<pending_op>> ready;
  ready.swap(done_);
  for (auto& op : ready) {
    ++counters_.completions;
    py_ref fut = std::move(op->future);
    PyObject* is_done = ENTITY_PY_CALL(fut.get(), "done");
    bool skip = !is_done || PyObject_IsTrue(is_done) == 1;  // cancelled meanwhile
    Py_XDECREF(is_done);
    if (skip) {
      PyErr_Clear();
      continue;
    }
    PyObject* r = nullptr;
    if (op->ec) {
      PyObject* own = op->make_error ? op->make_error() : nullptr;
      py_ref exc = py_ref::steal(own ? own : make_exception(op->ec, op->diag));
      if (exc) r = ENTITY_PY_CALL(fut.get(), "set_exception", exc.get());
    } else {
      py_ref value = op->make_result ? py_ref::steal(op->make_result()) : py_ref::borrow(Py_None);
      if (value) {
        r = ENTITY_PY_CALL(fut.get(), "set_result", value.get());
      } else {
        // The result could not be built (a value Python cannot hold): the future says why.
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        PyErr_NormalizeException(&type, &val, &tb);
        if (val) r = ENTITY_PY_CALL(fut.get(), "set_exception", val);
        Py_XDECREF(type);
        Py_XDECREF(val);
        Py_XDECREF(tb);
      }
    }
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    op->make_result = nullptr;
    op->make_error = nullptr;
  }
}

void loop_bridge::on_readable() {
  ++counters_.wakeups;
  std::uint64_t count;
  [[maybe_unused]] ssize_t n = ::read(fd_, &count, sizeof count);
  {
    std::lock_guard lock(m_);
    signalled_ = false;
  }
  streak_ = false;
  drain();
}

void loop_bridge::close() { close(true); }

void loop_bridge::close(bool loop_alive) {
  std::vector<detail::unique_function<void()>> dropped;
  {
    std::lock_guard lock(m_);
    if (closed_) return;
    closed_ = true;
    dropped.swap(queue_);
  }
  auto self = shared_from_this();  // keeps *this alive past the registry's erase
  // Nothing will await what is still running: stop it in the engine.
  for (auto& w : pending_)
    if (auto op = w.lock(); op && !op->delivered())
      op->cancel.emit(boost::asio::cancellation_type::terminal);
  pending_.clear();
  {
    // Dropping a ticket hands its request to the engine's threads, which may take a lock the
    // engine holds while it waits for the GIL: drop without it.
    py::gil_scoped_release nogil;
    dropped.clear();
  }
  done_.clear();
  PyObject* key = loop_raw_;
  loop_raw_ = nullptr;
  if (loop_alive && key && !loop_is_closed(key)) {
    PyObject* r = PyObject_CallMethod(key, "remove_reader", "i", fd_);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
  }
  auto it = registry().find(key);
  if (it != registry().end() && it->second.get() == this) registry().erase(it);
}

std::shared_ptr<loop_bridge> bridge_for_running_loop() {
  PyObject* loop = PyObject_CallNoArgs(get_running_loop_fn());
  if (!loop) return nullptr;  // RuntimeError: no running event loop
  Py_DECREF(loop);            // the running loop outlives this call
  if (loop == cached_loop) {
    if (auto b = cached_bridge.lock(); b && !b->is_closed()) return b;
  }
  auto& reg = registry();
  auto it = reg.find(loop);
  std::shared_ptr<loop_bridge> b;
  if (it != reg.end() && !it->second->is_closed()) {
    b = it->second;
  } else {
    // Loops that were closed without being collected leave their bridges behind: sweep them.
    std::vector<std::shared_ptr<loop_bridge>> stale;
    for (auto& [l, br] : reg)
      if (l != loop && loop_is_closed(l)) stale.push_back(br);
    for (auto& s : stale) s->close();
    try {
      b = loop_bridge::create(loop);
    } catch (py::error_already_set& e) {
      e.restore();
      return nullptr;
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      return nullptr;
    }
    reg[loop] = b;
  }
  cached_loop = loop;
  cached_bridge = b;
  return b;
}

void close_all_bridges() {
  std::vector<std::shared_ptr<loop_bridge>> all;
  for (auto& [l, b] : registry()) all.push_back(b);
  for (auto& b : all) b->close();
  registry().clear();
  cached_loop = nullptr;
  cached_bridge.reset();
}

}  // namespace entity::python
