// Python objects <-> the engine's values: JSON values, SQL parameters and rows, vectors, the
// result records, and the exception an error_code becomes. Every function here is called with
// the GIL held. Those returning PyObject* return a new reference, or null with a Python error
// set; those building engine values throw entity::error (invalid_argument) on bad input.
#pragma once

#include <Python.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "entity/error.hpp"
#include "entity/infrastructure.hpp"
#include "entity/json.hpp"
#include "entity/memory.hpp"
#include "entity/value.hpp"
#include "entity/vector_store.hpp"

namespace entity::python {

/// self.name(arg) / self.name(): a new reference, or null with a Python error set. The name is
/// interned once per call site.
#define ENTITY_PY_CALL(self, name, ...)                                                  \
  ([&]() -> PyObject* {                                                                  \
    static PyObject* interned_name = PyUnicode_InternFromString(name);                   \
    return ::entity::python::call_named(self, interned_name __VA_OPT__(, ) __VA_ARGS__); \
  }())
inline PyObject* call_named(PyObject* self, PyObject* name) {
  return PyObject_CallMethodNoArgs(self, name);
}
inline PyObject* call_named(PyObject* self, PyObject* name, PyObject* arg) {
  return PyObject_CallMethodOneArg(self, name, arg);
}

using json = nlohmann::json;

/// The classes the pure-Python part of the package defines, handed over at import time
/// (`_core._register`): the exceptions by name, Row, and the record types.
void register_classes(PyObject* mapping);
/// The future class of writes (entity_db._GroupedFuture, see loop_bridge::completes).
PyObject* grouped_future_class() noexcept;

// ---- errors --------------------------------------------------------------------------------

/// The entity_db exception for `ec` (the class its portable condition names), carrying .code,
/// .message and .sql. A new reference, or null with a Python error set.
PyObject* make_exception(const error_code& ec, const diagnostics& diag);
/// Sets the Python error for `ec` (returns nothing: the caller returns null).
void set_error(const error_code& ec, const diagnostics& diag);

// ---- JSON ----------------------------------------------------------------------------------

/// dict (keys: str, or int/float/bool/None converted as json.dumps does), list, tuple, str,
/// int (64-bit, or unsigned 64-bit), float (finite), bool, None. Anything else, NaN or
/// infinity, or nesting deeper than entity::max_json_depth (the engine's own limit, so that what
/// Python may store is what the engine stores and reads back): invalid_argument naming `what`.
json to_json(PyObject* o, const std::string& what);
PyObject* from_json(const json& j);

// ---- SQL values ----------------------------------------------------------------------------

value to_value(PyObject* o, std::size_t index);
/// A sequence of parameters (None: no parameters).
params to_params(PyObject* seq);
PyObject* from_value(const value& v);
/// One Row (a tuple subclass that also indexes by column name).
PyObject* from_row(const row& r);
PyObject* from_rows(const std::vector<row>& rows);
/// A Result: .rows, .rows_affected, .last_insert_id.
PyObject* from_result(const result& r);

// ---- vectors -------------------------------------------------------------------------------

/// A list/tuple of numbers, or any object with the buffer protocol (a float32 C-contiguous
/// buffer is copied with one memcpy; other numeric formats are converted). `what` names it in
/// errors.
std::vector<float> to_floats(PyObject* o, const std::string& what);

// ---- times and durations -----------------------------------------------------------------

/// A number of seconds (int or float, not bool) or a datetime.timedelta, as seconds; nullopt
/// for any other object.
std::optional<double> to_seconds(PyObject* o);
/// A timezone-aware datetime as an item time (milliseconds since the Unix epoch). A bound
/// finer than a millisecond is rounded so that "strictly after" and "strictly before" compare
/// item times as the datetime itself would: down for an `after` bound, up for a `before` one.
/// A naive datetime, or anything else: invalid_argument naming `what`.
memory_time to_time(PyObject* o, bool round_up, const std::string& what);
/// An item time as a timezone-aware UTC datetime (None for none); a time past the years a
/// datetime holds is the first or last datetime.
PyObject* from_time(const std::optional<memory_time>& t);

// ---- records -------------------------------------------------------------------------------

PyObject* from_stats(const infrastructure_stats& s);
PyObject* from_memory_stats(const memory_stats& s);
PyObject* from_loaded(const memory::loaded& l);
PyObject* from_recollection(const memory::recollection& r);
PyObject* from_search_results(const memory::search_results& r);
/// An Item(key, value, created, updated, expires), or None.
PyObject* from_memory_item(const std::optional<memory_item>& item);
PyObject* from_matches(const vector_store::matches& m);
PyObject* from_item(const std::optional<vector_item>& item);
PyObject* from_collections(const std::vector<collection_info>& c);
PyObject* from_strings(const std::vector<std::string>& s);

}  // namespace entity::python
