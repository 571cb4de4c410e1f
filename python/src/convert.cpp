#include "convert.hpp"

#include <datetime.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string_view>

namespace entity::python {
namespace {

// The classes of the pure-Python part (strong references kept for the process's life).
struct classes {
  PyObject* error = nullptr;
  std::map<std::string, PyObject*, std::less<>> errors;  // by class name
  PyObject* row = nullptr;                               // the Row base class
  PyObject* result = nullptr;          // Result(rows, rows_affected, last_insert_id)
  PyObject* recalled = nullptr;        // Recalled(key, value, distance)
  PyObject* search_hit = nullptr;      // SearchHit(key, value, score, matched_text, ...)
  PyObject* memory_item = nullptr;     // Item(key, value, created, updated, expires, ttl)
  PyObject* match = nullptr;           // Match(id, distance, metadata)
  PyObject* item = nullptr;            // VectorItem(id, vector, metadata)
  PyObject* info = nullptr;            // CollectionInfo(name, dim, metric, count, indexed)
  PyObject* grouped_future = nullptr;  // _GroupedFuture
  PyObject* row_classes = nullptr;     // dict: tuple of column names -> Row subclass
  PyObject* epoch = nullptr;           // 1970-01-01 00:00 UTC, an aware datetime
  PyObject* first_time = nullptr;      // datetime.min and datetime.max, in UTC
  PyObject* last_time = nullptr;
};
classes& cls() {
  static classes c;
  return c;
}

PyObject* lookup(PyObject* mapping, const char* name) {
  PyObject* o = PyMapping_GetItemString(mapping, name);  // new reference, kept forever
  if (!o) throw error(errc::invalid_argument, {std::string("_register: missing ") + name, {}});
  return o;
}

[[noreturn]] void bad(std::string message) {
  throw error(errc::invalid_argument, {std::move(message), {}});
}

std::string type_name(PyObject* o) { return Py_TYPE(o)->tp_name; }

// A str as UTF-8 (a str holding lone surrogates cannot be encoded: invalid_argument).
std::string utf8(PyObject* s, const std::string& what) {
  Py_ssize_t n = 0;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  if (!p) {
    PyErr_Clear();
    bad(what + ": the string cannot be encoded as UTF-8");
  }
  return std::string(p, static_cast<std::size_t>(n));
}

PyObject* text(std::string_view s) {
  // Text that is not UTF-8 (written by another program) keeps its bytes: they come back as
  // lone surrogates, and encode back to the same bytes with errors="surrogateescape".
  return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "surrogateescape");
}

json to_json_at(PyObject* o, const std::string& what, std::size_t depth);
// dict[key] = val, taking both references (either may be null after a failure): false when
// it could not be done.
bool put(PyObject* dict, PyObject* key, PyObject* val) {
  bool ok = key && val && PyDict_SetItem(dict, key, val) == 0;
  Py_XDECREF(key);
  Py_XDECREF(val);
  return ok;
}

int set_item(PyObject* dict, const char* key, PyObject* v) {
  return put(dict, PyUnicode_InternFromString(key), v) ? 0 : -1;
}

std::string json_key(PyObject* k, const std::string& what) {
  if (PyUnicode_Check(k)) return utf8(k, what);
  // The keys json.dumps accepts besides str, rendered the way it renders them.
  if (k == Py_True) return "true";
  if (k == Py_False) return "false";
  if (k == Py_None) return "null";
  if (PyLong_Check(k) || PyFloat_Check(k)) {
    if (PyFloat_Check(k) && !std::isfinite(PyFloat_AS_DOUBLE(k)))
      bad(what + ": a dict key is NaN or infinite");
    PyObject* r = PyObject_Repr(k);
    if (!r) throw error(errc::invalid_argument, {what + ": a dict key cannot be rendered", {}});
    std::string s = utf8(r, what);
    Py_DECREF(r);
    return s;
  }
  bad(what + ": a dict key of type " + type_name(k) +
      " is not JSON (keys are str, int, float, "
      "bool or None)");
}

json to_json_at(PyObject* o, const std::string& what, std::size_t depth) {
  if (o == Py_None) return nullptr;
  if (o == Py_True) return true;
  if (o == Py_False) return false;
  if (PyUnicode_Check(o)) return utf8(o, what);
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) return static_cast<std::int64_t>(v);
    if (overflow > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(o);
      if (!PyErr_Occurred()) return static_cast<std::uint64_t>(u);
      PyErr_Clear();
    }
    bad(what + ": an integer does not fit in 64 bits");
  }
  if (PyFloat_Check(o)) {
    double d = PyFloat_AS_DOUBLE(o);
    if (!std::isfinite(d)) bad(what + ": NaN and infinity are not JSON");
    return d;
  }
  if (depth >= entity::max_json_depth)
    bad(what + ": nested deeper than " + std::to_string(entity::max_json_depth) + " levels");
  if (PyDict_Check(o)) {
    json j = json::object();
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(o, &pos, &k, &v)) j[json_key(k, what)] = to_json_at(v, what, depth + 1);
    return j;
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    PyObject** items = PySequence_Fast_ITEMS(o);
    json j = json::array();
    j.get_ref<json::array_t&>().reserve(static_cast<std::size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) j.push_back(to_json_at(items[i], what, depth + 1));
    return j;
  }
  bad(what + ": an object of type " + type_name(o) +
      " is not JSON (dict, list, tuple, str, "
      "int, float, bool or None)");
}

PyObject* from_json_at(const json& j, std::size_t depth) {
  switch (j.type()) {
    case json::value_t::null:
      Py_RETURN_NONE;
    case json::value_t::boolean:
      return PyBool_FromLong(j.get<bool>() ? 1 : 0);
    case json::value_t::number_integer:
      return PyLong_FromLongLong(j.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return PyLong_FromUnsignedLongLong(j.get<std::uint64_t>());
    case json::value_t::number_float:
      return PyFloat_FromDouble(j.get<double>());
    case json::value_t::string:
      return text(j.get_ref<const std::string&>());
    case json::value_t::binary:
      break;
    case json::value_t::discarded:
      break;
    case json::value_t::array:
    case json::value_t::object: {
      // The engine decodes nothing deeper; this keeps the recursion below bounded regardless.
      if (depth >= entity::max_json_depth) {
        set_error(make_error_code(errc::decode_error),
                  {"a stored value is nested too deeply to be read in Python", {}});
        return nullptr;
      }
      if (j.is_array()) {
        PyObject* list = PyList_New(static_cast<Py_ssize_t>(j.size()));
        if (!list) return nullptr;
        Py_ssize_t i = 0;
        for (const json& e : j) {
          PyObject* item = from_json_at(e, depth + 1);
          if (!item) {
            Py_DECREF(list);
            return nullptr;
          }
          PyList_SET_ITEM(list, i++, item);
        }
        return list;
      }
      PyObject* dict = PyDict_New();
      if (!dict) return nullptr;
      for (auto it = j.begin(); it != j.end(); ++it) {
        PyObject* key = text(it.key());
        if (!put(dict, key, key ? from_json_at(it.value(), depth + 1) : nullptr)) {
          Py_DECREF(dict);
          return nullptr;
        }
      }
      return dict;
    }
  }
  Py_RETURN_NONE;
}

std::string code_name(const error_code& ec) {
  if (ec.category() == entity_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::not_started:
        return "not_started";
      case errc::shut_down:
        return "shut_down";
      case errc::query_timeout:
        return "query_timeout";
      case errc::pool_exhausted:
        return "pool_exhausted";
      case errc::invalid_argument:
        return "invalid_argument";
      case errc::decode_error:
        return "decode_error";
      case errc::dimension_mismatch:
        return "dimension_mismatch";
      case errc::not_found:
        return "not_found";
      case errc::connection_error:
        return "connection_error";
      case errc::open_failed:
        return "open_failed";
      case errc::transaction_open:
        return "transaction_open";
      case errc::aborted:
        return "aborted";
      case errc::cancelled:
        return "cancelled";
      case errc::rolled_back:
        return "rolled_back";
      case errc::conflict:
        return "conflict";
      case errc::over_budget:
        return "over_budget";
      default:
        return "entity:" + std::to_string(ec.value());
    }
  }
  if (ec.category() == postgres_category()) return "postgres:" + postgres_sqlstate(ec);
  return std::string(ec.category().name()) + ":" + std::to_string(ec.value());
}

// The exception class's name for `ec`: entity's own codes first, then the portable condition.
const char* class_name(const error_code& ec) {
  if (ec.category() == entity_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::not_started:
        return "NotStartedError";
      case errc::shut_down:
        return "ShutDownError";
      case errc::query_timeout:
        return "QueryTimeoutError";
      case errc::pool_exhausted:
        return "PoolExhaustedError";
      case errc::invalid_argument:
        return "InvalidArgumentError";
      case errc::decode_error:
        return "DecodeError";
      case errc::dimension_mismatch:
        return "DimensionMismatchError";
      case errc::not_found:
        return "NotFoundError";
      case errc::connection_error:
        return "DatabaseConnectionError";
      case errc::open_failed:
        return "StorageError";
      default:
        break;
    }
  }
  if (ec == condition::timeout) return "QueryTimeoutError";
  if (ec == condition::busy) return "BusyError";
  if (ec == condition::constraint) return "ConstraintError";
  if (ec == condition::syntax) return "SQLSyntaxError";
  if (ec == condition::io) return "StorageError";
  return "Error";
}

PyObject* make_record(PyObject* type, std::initializer_list<PyObject*> fields) {
  // The fields are new references (any may be null after a failure): the tuple takes them.
  PyObject* args = PyTuple_New(static_cast<Py_ssize_t>(fields.size()));
  Py_ssize_t i = 0;
  bool failed = !args;
  for (PyObject* f : fields) {
    if (!f) failed = true;
    if (args && f)
      PyTuple_SET_ITEM(args, i, f);
    else
      Py_XDECREF(f);
    ++i;
  }
  if (failed) {
    Py_XDECREF(args);
    return nullptr;
  }
  PyObject* r = PyObject_Call(type, args, nullptr);
  Py_DECREF(args);
  return r;
}

template <class T, class F>
PyObject* list_of(const std::vector<T>& v, F&& one) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(v.size()));
  if (!list) return nullptr;
  for (std::size_t i = 0; i < v.size(); ++i) {
    PyObject* o = one(v[i]);
    if (!o) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), o);
  }
  return list;
}

// The Row subclass for one set of column names, made once per distinct set.
PyObject* row_class(const std::vector<std::string>& names) {
  PyObject* key = PyTuple_New(static_cast<Py_ssize_t>(names.size()));
  if (!key) return nullptr;
  for (std::size_t i = 0; i < names.size(); ++i) {
    PyObject* s = text(names[i]);
    if (!s) {
      Py_DECREF(key);
      return nullptr;
    }
    PyTuple_SET_ITEM(key, static_cast<Py_ssize_t>(i), s);
  }
  PyObject* c = PyDict_GetItemWithError(cls().row_classes, key);  // borrowed
  if (c) {
    Py_DECREF(key);
    return c;
  }
  if (PyErr_Occurred()) {
    Py_DECREF(key);
    return nullptr;
  }
  c = ENTITY_PY_CALL(cls().row, "_subclass", key);
  if (!c || PyDict_SetItem(cls().row_classes, key, c) < 0) {
    Py_XDECREF(c);
    Py_DECREF(key);
    return nullptr;
  }
  Py_DECREF(key);
  Py_DECREF(c);  // the dict keeps it
  return c;
}

PyObject* make_row(PyObject* type, const row& r) {
  auto* t = reinterpret_cast<PyTypeObject*>(type);
  Py_ssize_t n = static_cast<Py_ssize_t>(r.size());
  PyObject* o = t->tp_alloc(t, n);
  if (!o) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* v = from_value(r[static_cast<std::size_t>(i)]);
    if (!v) {
      Py_DECREF(o);
      return nullptr;
    }
    PyTuple_SET_ITEM(o, i, v);
  }
  return o;
}

}  // namespace

void register_classes(PyObject* mapping) {
  classes& c = cls();
  c.error = lookup(mapping, "Error");
  for (const char* name : {"Error", "QueryTimeoutError", "PoolExhaustedError", "BusyError",
                           "ConstraintError", "SQLSyntaxError", "NotStartedError", "ShutDownError",
                           "InvalidArgumentError", "DimensionMismatchError", "DecodeError",
                           "NotFoundError", "StorageError", "DatabaseConnectionError"})
    c.errors[name] = lookup(mapping, name);
  c.row = lookup(mapping, "Row");
  c.result = lookup(mapping, "Result");
  c.recalled = lookup(mapping, "Recalled");
  c.search_hit = lookup(mapping, "SearchHit");
  c.memory_item = lookup(mapping, "Item");
  c.match = lookup(mapping, "Match");
  c.item = lookup(mapping, "VectorItem");
  c.info = lookup(mapping, "CollectionInfo");
  c.grouped_future = lookup(mapping, "_GroupedFuture");
  c.row_classes = PyDict_New();
  PyDateTime_IMPORT;
  if (!PyDateTimeAPI) throw error(errc::invalid_argument, {"_register: no datetime module", {}});
  auto utc_datetime = [](int y, int mo, int d, int h, int mi, int s, int us) {
    return PyDateTimeAPI->DateTime_FromDateAndTime(y, mo, d, h, mi, s, us, PyDateTime_TimeZone_UTC,
                                                   PyDateTimeAPI->DateTimeType);
  };
  c.epoch = utc_datetime(1970, 1, 1, 0, 0, 0, 0);
  c.first_time = utc_datetime(1, 1, 1, 0, 0, 0, 0);
  c.last_time = utc_datetime(9999, 12, 31, 23, 59, 59, 999999);
  if (!c.epoch || !c.first_time || !c.last_time)
    throw error(errc::invalid_argument, {"_register: cannot make the epoch", {}});
}

PyObject* grouped_future_class() noexcept { return cls().grouped_future; }

PyObject* make_exception(const error_code& ec, const diagnostics& diag) {
  auto it = cls().errors.find(class_name(ec));
  PyObject* type = it != cls().errors.end() ? it->second : cls().error;
  if (!type) type = PyExc_RuntimeError;
  entity::error e(ec, diag);
  PyObject* exc = PyObject_CallFunction(type, "s", e.what());
  if (!exc) return nullptr;
  PyObject* code = text(code_name(ec));
  PyObject* message = text(diag.message.empty() ? ec.message() : diag.message);
  PyObject* sql = text(diag.sql);
  if (!code || !message || !sql || PyObject_SetAttrString(exc, "code", code) < 0 ||
      PyObject_SetAttrString(exc, "message", message) < 0 ||
      PyObject_SetAttrString(exc, "sql", sql) < 0) {
    Py_XDECREF(code);
    Py_XDECREF(message);
    Py_XDECREF(sql);
    Py_DECREF(exc);
    return nullptr;
  }
  Py_DECREF(code);
  Py_DECREF(message);
  Py_DECREF(sql);
  return exc;
}

void set_error(const error_code& ec, const diagnostics& diag) {
  PyObject* exc = make_exception(ec, diag);
  if (!exc) return;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
  Py_DECREF(exc);
}

json to_json(PyObject* o, const std::string& what) { return to_json_at(o, what, 0); }
PyObject* from_json(const json& j) { return from_json_at(j, 0); }

value to_value(PyObject* o, std::size_t index) {
  if (o == Py_None) return null;
  if (o == Py_True) return std::int64_t{1};
  if (o == Py_False) return std::int64_t{0};
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow)
      bad("parameter " + std::to_string(index + 1) + ": the integer does not fit in 64 bits");
    return static_cast<std::int64_t>(v);
  }
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (PyUnicode_Check(o)) return utf8(o, "parameter " + std::to_string(index + 1));
  if (PyBytes_Check(o))
    return blob(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
  if (PyByteArray_Check(o))
    return blob(PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)));
  if (PyMemoryView_Check(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0) {
      PyErr_Clear();
      bad("parameter " + std::to_string(index + 1) + ": the memoryview is not contiguous");
    }
    value v = blob(view.buf, static_cast<std::size_t>(view.len));
    PyBuffer_Release(&view);
    return v;
  }
  bad("parameter " + std::to_string(index + 1) + ": a " + type_name(o) +
      " cannot be bound (None, bool, int, float, str, bytes, bytearray or memoryview)");
}

params to_params(PyObject* seq) {
  params out;
  if (!seq || seq == Py_None) return out;
  if (PyUnicode_Check(seq) || PyBytes_Check(seq) || PyDict_Check(seq))
    bad(std::string("parameters must be a sequence (a tuple or a list), not a ") + type_name(seq));
  PyObject* fast = PySequence_Fast(seq, "parameters must be a sequence");
  if (!fast) {
    PyErr_Clear();
    bad(std::string("parameters must be a sequence (a tuple or a list), not a ") + type_name(seq));
  }
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject** items = PySequence_Fast_ITEMS(fast);
  out.reserve(static_cast<std::size_t>(n));
  try {
    for (Py_ssize_t i = 0; i < n; ++i)
      out.push_back(to_value(items[i], static_cast<std::size_t>(i)));
  } catch (...) {
    Py_DECREF(fast);
    throw;
  }
  Py_DECREF(fast);
  return out;
}

PyObject* from_value(const value& v) {
  switch (v.raw().index()) {
    case 0:
      Py_RETURN_NONE;
    case 1:
      return PyLong_FromLongLong(std::get<std::int64_t>(v.raw()));
    case 2:
      return PyFloat_FromDouble(std::get<double>(v.raw()));
    case 3:
      return text(std::get<std::string>(v.raw()));
    default: {
      const auto& b = std::get<blob>(v.raw()).bytes;
      return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(b.data()),
                                       static_cast<Py_ssize_t>(b.size()));
    }
  }
}

PyObject* from_row(const row& r) {
  PyObject* type = row_class(r.size() ? r.column_names() : std::vector<std::string>{});
  return type ? make_row(type, r) : nullptr;
}

PyObject* from_rows(const std::vector<row>& rows) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(rows.size()));
  if (!list || rows.empty()) return list;
  PyObject* type = row_class(rows.front().column_names());  // one result: one set of names
  if (!type) {
    Py_DECREF(list);
    return nullptr;
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    PyObject* o = make_row(type, rows[i]);
    if (!o) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), o);
  }
  return list;
}

PyObject* from_result(const result& r) {
  return make_record(cls().result, {from_rows(r.rows), PyLong_FromLongLong(r.rows_affected),
                                    PyLong_FromLongLong(r.last_insert_id)});
}

std::vector<float> to_floats(PyObject* o, const std::string& what) {
  std::vector<float> out;
  if (PyObject_CheckBuffer(o) && !PyUnicode_Check(o)) {
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
      PyErr_Clear();
      bad(what + ": the buffer is not C-contiguous");
    }
    std::string_view fmt = view.format ? view.format : "B";
    if (!fmt.empty() && (fmt[0] == '<' || fmt[0] == '@' || fmt[0] == '=')) fmt.remove_prefix(1);
    std::size_t n = view.itemsize ? static_cast<std::size_t>(view.len / view.itemsize) : 0;
    bool ok = true;
    if (view.ndim > 1) {
      ok = false;
    } else if (fmt == "f" && view.itemsize == 4) {
      out.resize(n);
      if (n) std::memcpy(out.data(), view.buf, n * sizeof(float));
    } else if (fmt == "d" && view.itemsize == 8) {
      const double* d = static_cast<const double*>(view.buf);
      out.assign(d, d + n);
    } else if (fmt == "e" && view.itemsize == 2) {
      const auto* h = static_cast<const unsigned char*>(view.buf);
      for (std::size_t i = 0; i < n; ++i) {
        double d = PyFloat_Unpack2(reinterpret_cast<const char*>(h + 2 * i), 1);
        out.push_back(static_cast<float>(d));
      }
    } else if (fmt.size() == 1 &&
               std::string_view("bBhHiIlLqQ?").find(fmt[0]) != std::string_view::npos) {
      // Integers of any width and signedness (and bools), as numpy and array.array lay them out.
      const bool is_signed =
          fmt[0] == 'b' || fmt[0] == 'h' || fmt[0] == 'i' || fmt[0] == 'l' || fmt[0] == 'q';
      const auto* base = static_cast<const unsigned char*>(view.buf);
      for (std::size_t i = 0; i < n; ++i) {
        const unsigned char* p = base + i * static_cast<std::size_t>(view.itemsize);
        double d = 0;
        switch (view.itemsize) {
          case 1:
            d = is_signed ? double(*reinterpret_cast<const std::int8_t*>(p)) : double(*p);
            break;
          case 2: {
            std::uint16_t u;
            std::memcpy(&u, p, 2);
            d = is_signed ? double(static_cast<std::int16_t>(u)) : double(u);
            break;
          }
          case 4: {
            std::uint32_t u;
            std::memcpy(&u, p, 4);
            d = is_signed ? double(static_cast<std::int32_t>(u)) : double(u);
            break;
          }
          case 8: {
            std::uint64_t u;
            std::memcpy(&u, p, 8);
            d = is_signed ? double(static_cast<std::int64_t>(u)) : double(u);
            break;
          }
          default:
            ok = false;
        }
        if (!ok) break;
        out.push_back(static_cast<float>(d));
      }
    } else {
      ok = false;
    }
    PyBuffer_Release(&view);
    if (!ok)
      bad(what + ": a buffer of format '" + std::string(fmt) + "' and " +
          std::to_string(view.ndim) + " dimensions is not a vector (use float32)");
    return out;
  }
  if (!PyList_Check(o) && !PyTuple_Check(o))
    bad(what + ": a " + type_name(o) + " is not a vector (a list of numbers or a float32 buffer)");
  Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
  PyObject** items = PySequence_Fast_ITEMS(o);
  out.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* x = items[i];
    if (PyBool_Check(x) || !(PyFloat_Check(x) || PyLong_Check(x)))
      bad(what + ": element " + std::to_string(i) + " is a " + type_name(x) + ", not a number");
    double d = PyFloat_Check(x) ? PyFloat_AS_DOUBLE(x) : PyLong_AsDouble(x);
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      bad(what + ": element " + std::to_string(i) + " is out of range");
    }
    out.push_back(static_cast<float>(d));
  }
  return out;
}

std::optional<double> to_seconds(PyObject* o) {
  if (PyDelta_Check(o))
    return PyDateTime_DELTA_GET_DAYS(o) * 86400.0 + PyDateTime_DELTA_GET_SECONDS(o) +
           PyDateTime_DELTA_GET_MICROSECONDS(o) / 1e6;
  if (PyFloat_Check(o)) return PyFloat_AS_DOUBLE(o);
  if (PyLong_Check(o) && !PyBool_Check(o)) {
    double d = PyLong_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred()) {  // beyond a double: as far as a double goes
      PyErr_Clear();
      PyObject* zero = PyLong_FromLong(0);
      bool positive = zero && PyObject_RichCompareBool(o, zero, Py_GT) == 1;
      Py_XDECREF(zero);
      PyErr_Clear();
      return positive ? std::numeric_limits<double>::infinity()
                      : -std::numeric_limits<double>::infinity();
    }
    return d;
  }
  return std::nullopt;
}

memory_time to_time(PyObject* o, bool round_up, const std::string& what) {
  if (!PyDateTime_Check(o))
    bad(what + ": a " + type_name(o) + " is not a datetime (give a timezone-aware datetime)");
  PyObject* offset = ENTITY_PY_CALL(o, "utcoffset");
  if (!offset) {
    PyErr_Clear();
    bad(what + ": the datetime's utcoffset() failed");
  }
  bool naive = offset == Py_None;
  Py_DECREF(offset);
  if (naive)
    bad(what + ": a naive datetime names no instant (give it a tzinfo: datetime.timezone.utc)");
  PyObject* delta = PyNumber_Subtract(o, cls().epoch);
  if (!delta || !PyDelta_Check(delta)) {
    PyErr_Clear();
    Py_XDECREF(delta);
    bad(what + ": the datetime cannot be compared with the epoch");
  }
  std::int64_t days = PyDateTime_DELTA_GET_DAYS(delta);
  std::int64_t secs = PyDateTime_DELTA_GET_SECONDS(delta);
  std::int64_t us = PyDateTime_DELTA_GET_MICROSECONDS(delta);  // 0 to 999999
  Py_DECREF(delta);
  std::int64_t ms = (days * 86400 + secs) * 1000 + (round_up ? (us + 999) / 1000 : us / 1000);
  return memory_time(std::chrono::milliseconds(ms));
}

PyObject* from_time(const std::optional<memory_time>& t) {
  if (!t) Py_RETURN_NONE;
  constexpr std::int64_t ms_per_day = 86'400'000;
  // The days a datetime holds around the epoch: 0001-01-01 is 719162 days before it, 9999-12-31
  // 2932896 days after it.
  constexpr std::int64_t first_day = -719'162, last_day = 2'932'896;
  std::int64_t ms = t->time_since_epoch().count();
  std::int64_t days = ms / ms_per_day, rest = ms % ms_per_day;
  if (rest < 0) {
    rest += ms_per_day;
    --days;
  }
  if (days < first_day || days > last_day) {
    PyObject* bound = days < first_day ? cls().first_time : cls().last_time;
    Py_INCREF(bound);
    return bound;
  }
  PyObject* delta = PyDelta_FromDSU(static_cast<int>(days), static_cast<int>(rest / 1000),
                                    static_cast<int>(rest % 1000) * 1000);
  if (!delta) return nullptr;
  PyObject* r = PyNumber_Add(cls().epoch, delta);
  Py_DECREF(delta);
  return r;
}

PyObject* from_stats(const infrastructure_stats& s) {
  PyObject* d = PyDict_New();
  if (!d) return nullptr;
  auto u = [](std::uint64_t v) { return PyLong_FromUnsignedLongLong(v); };
  if (set_item(d, "pool_size", u(s.pool_size)) < 0 ||
      set_item(d, "open_connections", u(s.open_connections)) < 0 ||
      set_item(d, "idle_connections", u(s.idle_connections)) < 0 ||
      set_item(d, "busy_connections", u(s.busy_connections)) < 0 ||
      set_item(d, "queued_operations", u(s.queued_operations)) < 0 ||
      set_item(d, "operations", u(s.operations)) < 0 || set_item(d, "errors", u(s.errors)) < 0 ||
      set_item(d, "timeouts", u(s.timeouts)) < 0 ||
      set_item(d, "group_commits", u(s.group_commits)) < 0 ||
      set_item(d, "grouped_operations", u(s.grouped_operations)) < 0 ||
      set_item(d, "mean_group_size", PyFloat_FromDouble(s.mean_group_size)) < 0 ||
      set_item(d, "pipeline_batches", u(s.pipeline_batches)) < 0 ||
      set_item(d, "inline_operations", u(s.inline_operations)) < 0 ||
      set_item(d, "statement_cache_hits", u(s.statement_cache_hits)) < 0 ||
      set_item(d, "statement_cache_misses", u(s.statement_cache_misses)) < 0 ||
      set_item(d, "p50_latency_us", PyFloat_FromDouble(s.p50_latency_us)) < 0 ||
      set_item(d, "p99_latency_us", PyFloat_FromDouble(s.p99_latency_us)) < 0) {
    Py_DECREF(d);
    return nullptr;
  }
  return d;
}

PyObject* from_memory_stats(const memory_stats& s) {
  PyObject* d = PyDict_New();
  if (!d) return nullptr;
  if (set_item(d, "keys", PyLong_FromLongLong(s.keys)) < 0 ||
      set_item(d, "value_bytes", PyLong_FromLongLong(s.value_bytes)) < 0 ||
      set_item(d, "engine", from_stats(s.engine)) < 0) {
    Py_DECREF(d);
    return nullptr;
  }
  return d;
}

PyObject* from_loaded(const memory::loaded& l) {
  PyObject* d = PyDict_New();
  if (!d) return nullptr;
  for (const auto& [k, v] : l) {
    PyObject* key = text(k);
    if (!put(d, key, key ? from_json(v) : nullptr)) {
      Py_DECREF(d);
      return nullptr;
    }
  }
  return d;
}

PyObject* from_recollection(const memory::recollection& r) {
  return list_of(r, [](const recalled& x) {
    return make_record(cls().recalled,
                       {text(x.key), from_json(x.value), PyFloat_FromDouble(x.distance)});
  });
}

PyObject* from_search_results(const memory::search_results& r) {
  return list_of(r, [](const search_hit& x) {
    return make_record(
        cls().search_hit,
        {text(x.key), from_json(x.value), PyFloat_FromDouble(x.score),
         PyBool_FromLong(x.matched_text ? 1 : 0), PyBool_FromLong(x.matched_vector ? 1 : 0),
         from_time(x.created), from_time(x.updated)});
  });
}

PyObject* from_memory_item(const std::optional<memory_item>& item) {
  if (!item) Py_RETURN_NONE;
  PyObject* ttl = Py_None;
  if (item->ttl) {
    const std::int64_t ms = item->ttl->count();  // above zero, at most 10,000 years
    ttl =
        PyDelta_FromDSU(static_cast<int>(ms / 86'400'000), static_cast<int>(ms % 86'400'000 / 1000),
                        static_cast<int>(ms % 1000) * 1000);
  } else {
    Py_INCREF(ttl);
  }
  return make_record(cls().memory_item,
                     {text(item->key), from_json(item->value), from_time(item->created),
                      from_time(item->updated), from_time(item->expires), ttl});
}

PyObject* from_matches(const vector_store::matches& m) {
  return list_of(m, [](const vector_match& x) {
    return make_record(cls().match,
                       {text(x.id), PyFloat_FromDouble(x.distance), from_json(x.metadata)});
  });
}

PyObject* from_item(const std::optional<vector_item>& item) {
  if (!item) Py_RETURN_NONE;
  PyObject* vec = list_of(item->vector, [](float f) { return PyFloat_FromDouble(f); });
  return make_record(cls().item, {text(item->id), vec, from_json(item->metadata)});
}

PyObject* from_collections(const std::vector<collection_info>& c) {
  return list_of(c, [](const collection_info& x) {
    return make_record(cls().info,
                       {text(x.name), PyLong_FromSize_t(x.dim), text(to_string(x.metric)),
                        PyLong_FromLongLong(x.count), PyBool_FromLong(x.indexed ? 1 : 0)});
  });
}

PyObject* from_strings(const std::vector<std::string>& s) {
  return list_of(s, [](const std::string& x) { return text(x); });
}

}  // namespace entity::python
