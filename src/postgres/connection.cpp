#include "postgres/connection.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common/sql_lexer.hpp"
#include "postgres/placeholders.hpp"

namespace entity::postgres_detail {
namespace {

// Type OIDs of pg_type that map to something other than text.
constexpr Oid bool_oid = 16;
constexpr Oid bytea_oid = 17;
constexpr Oid int8_oid = 20;
constexpr Oid int2_oid = 21;
constexpr Oid int4_oid = 23;
constexpr Oid oid_oid = 26;
constexpr Oid float4_oid = 700;
constexpr Oid float8_oid = 701;
constexpr Oid numeric_oid = 1700;

std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

std::string format_double(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest text that reads back the same
  return std::string(buf, r.ptr);
}

value convert(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return value(null);
  const char* text = PQgetvalue(r, row, col);
  int length = PQgetlength(r, row, col);
  switch (PQftype(r, col)) {
    case int2_oid:
    case int4_oid:
    case int8_oid:
    case oid_oid:
      return value(static_cast<std::int64_t>(std::strtoll(text, nullptr, 10)));
    case float4_oid:
    case float8_oid:
    case numeric_oid:
      return value(std::strtod(text, nullptr));
    case bool_oid:
      return value(std::int64_t{text[0] == 't' ? 1 : 0});
    case bytea_oid: {
      std::size_t n = 0;
      unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &n);
      if (!bytes) return value(std::string(text, static_cast<std::size_t>(length)));
      blob b(bytes, n);
      PQfreemem(bytes);
      return value(std::move(b));
    }
    default:
      return value(std::string(text, static_cast<std::size_t>(length)));
  }
}

}  // namespace

pg_conn::~pg_conn() {
  if (own_fd >= 0) ::close(own_fd);
  if (sock) {
    boost::system::error_code ignored;
    sock->cancel(ignored);
    sock->release();  // libpq closes the descriptor
  }
  if (cancel) PQfreeCancel(cancel);
  if (pg) PQfinish(pg);
}

bool pg_conn::alive() {
  if (broken || PQstatus(pg) != CONNECTION_OK) return false;
  if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) return false;
  // Anything the server sent while the connection was idle (a terminated backend's FATAL
  // message) is read and dropped here.
  while (!PQisBusy(pg)) {
    PGresult* r = PQgetResult(pg);
    if (!r) break;
    PQclear(r);
  }
  return PQstatus(pg) == CONNECTION_OK;
}

void pg_conn::abandon() noexcept {
  if (own_fd >= 0) ::shutdown(own_fd, SHUT_RDWR);
}

long long statement_timeout_to_set(const pg_conn& c, std::chrono::milliseconds remaining) {
  const long long r = std::max<long long>(1, remaining.count());
  const long long current = c.statement_timeout_ms;
  if (current >= r && current <= r + r / 8 + 100) return 0;
  return r + r / 16 + 50;
}

std::string terminate_backend(const std::string& conninfo, int pid,
                              std::chrono::milliseconds connect_timeout) {
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(connect_timeout).count();
  std::string timeout = std::to_string(seconds < 2 ? 2 : seconds);
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), conninfo.c_str(), nullptr};
  PGconn* pg = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  std::string why;
  if (!pg || PQstatus(pg) != CONNECTION_OK) {
    why = pg ? trimmed(PQerrorMessage(pg)) : std::string("out of memory");
  } else {
    std::string id = std::to_string(pid);
    const char* args[] = {id.c_str()};
    PGresult* r = PQexecParams(pg, "SELECT pg_terminate_backend($1::int)", 1, nullptr, args,
                               nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
      why = trimmed(PQerrorMessage(pg));
    else if (PQntuples(r) != 1 || PQgetvalue(r, 0, 0)[0] != 't')
      why = "the server found no backend " + id;
    PQclear(r);
  }
  if (pg) PQfinish(pg);
  return why;
}

std::unique_ptr<pg_conn> open_connection(const std::string& conninfo,
                                         std::chrono::milliseconds connect_timeout,
                                         std::size_t statement_cache_size,
                                         statement_counters* counters, boost::asio::io_context& io,
                                         error_code& ec, diagnostics& diag) {
  // libpq's connect_timeout is whole seconds and treats 1 as 2; the caller's URL may override.
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(connect_timeout).count();
  std::string timeout = std::to_string(seconds < 2 ? 2 : seconds);
  const char* keys[] = {"connect_timeout", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), conninfo.c_str(), nullptr};
  auto c = std::make_unique<pg_conn>(statement_cache_size, counters);
  c->pg = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
    ec = make_error_code(errc::connection_error);
    diag.message = "cannot connect to the PostgreSQL server: " +
                   (c->pg ? trimmed(PQerrorMessage(c->pg)) : std::string("out of memory"));
    diag.sql.clear();
    return nullptr;
  }
  if (PQsetnonblocking(c->pg, 1) != 0) {
    ec = make_error_code(errc::connection_error);
    diag.message =
        "cannot put the connection in non-blocking mode: " + trimmed(PQerrorMessage(c->pg));
    return nullptr;
  }
  // The server's notices (NOTICE, WARNING) are not errors; a library must not print them.
  PQsetNoticeProcessor(
      c->pg, [](void*, const char*) {}, nullptr);
  c->cancel = PQgetCancel(c->pg);
  c->backend_pid = PQbackendPID(c->pg);
  c->own_fd = ::fcntl(PQsocket(c->pg), F_DUPFD_CLOEXEC, 0);
  c->sock = std::make_unique<boost::asio::posix::stream_descriptor>(io, PQsocket(c->pg));
  return c;
}

bound_params::bound_params(const params& args) {
  const std::size_t n = args.size();
  text_.resize(n);
  types_.assign(n, 0);  // 0: the server infers the type from the statement
  values_.assign(n, nullptr);
  lengths_.assign(n, 0);
  formats_.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& raw = args[i].raw();
    if (std::holds_alternative<null_t>(raw)) continue;
    if (auto* i64 = std::get_if<std::int64_t>(&raw)) {
      text_[i] = std::to_string(*i64);
    } else if (auto* d = std::get_if<double>(&raw)) {
      text_[i] = format_double(*d);
    } else if (auto* b = std::get_if<blob>(&raw)) {
      types_[i] = bytea_oid;
      formats_[i] = 1;
      lengths_[i] = static_cast<int>(b->bytes.size());
      // A non-null pointer even for an empty blob: null would bind NULL.
      values_[i] = b->bytes.empty() ? "" : reinterpret_cast<const char*>(b->bytes.data());
      continue;
    } else {
      const std::string& s = std::get<std::string>(raw);
      values_[i] = s.c_str();
      lengths_[i] = static_cast<int>(s.size());
      continue;
    }
    values_[i] = text_[i].c_str();
    lengths_[i] = static_cast<int>(text_[i].size());
  }
}

bool send_statement(PGconn* pg, const std::string& sql, const params& args) {
  bound_params b(args);
  return PQsendQueryParams(pg, sql.c_str(), b.count(), b.types(), b.values(), b.lengths(),
                           b.formats(), /*resultFormat=*/0) == 1;
}

bool send_prepared(PGconn* pg, const std::string& name, const params& args) {
  bound_params b(args);
  return PQsendQueryPrepared(pg, name.c_str(), b.count(), b.values(), b.lengths(), b.formats(),
                             /*resultFormat=*/0) == 1;
}

bool cacheable(const pg_conn& c, const translated_sql& translated) {
  return c.statements.enabled() && translated.preparable && translated.parameters > 0;
}

std::string statement_key(const std::string& text, const params& args) {
  std::string key;
  key.reserve(text.size() + 1 + args.size());
  key = text;
  key += '\0';
  for (const value& v : args) key += std::holds_alternative<blob>(v.raw()) ? 'b' : '-';
  return key;
}

bool same_parameter_types(const std::vector<params>& batch) {
  auto is_blob = [](const value& v) { return std::holds_alternative<blob>(v.raw()); };
  for (const params& row : batch) {
    if (row.size() != batch.front().size()) return false;
    for (std::size_t i = 0; i < row.size(); ++i)
      if (is_blob(row[i]) != is_blob(batch.front()[i])) return false;
  }
  return true;
}

bool send_prepare_if_new(pg_conn& c, pipeline& p, std::string_view sql, const std::string& text,
                         const params& args, std::string& name) {
  statement_cache::use use = c.statements.lookup(statement_key(text, args));
  name.assign(use.name);
  if (!use.prepare) return true;
  bound_params b(args);
  if (PQsendPrepare(c.pg, name.c_str(), text.c_str(), b.count(), b.types()) != 1) {
    c.statements.prepared(name, false);
    return false;
  }
  p.sent(pipeline_entry::prepare, sql, 0, name);
  return true;
}

bool send_cached(pg_conn& c, pipeline& p, pipeline_entry kind, std::string_view sql,
                 const std::string& text, const params& args, std::size_t max_rows, bool cached) {
  if (!cached) return send_queued(c.pg, p, kind, sql, text, args, max_rows);
  std::string name;
  return send_prepare_if_new(c, p, sql, text, args, name) &&
         send_queued_prepared(c.pg, p, kind, sql, name, args, max_rows);
}

bool send_closing(pg_conn& c, pipeline& p) {
  for (const std::string& name : c.statements.closing()) {
    const std::string sql = "DEALLOCATE " + name;  // our own name: letters, digits, '_'
    if (!send_queued(c.pg, p, pipeline_entry::cleanup, sql) || !send_sync(c.pg, p)) return false;
  }
  c.statements.closed();
  return true;
}

bool stale_statement(const PGresult* r) {
  if (!r) return false;
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (!state) return false;
  // The server's function that raised the error tells these from the same codes raised by
  // the statement's own work (a function it calls); a server that does not say is believed
  // on the code alone.
  const char* where = PQresultErrorField(r, PG_DIAG_SOURCE_FUNCTION);
  if (std::strcmp(state, "26000") == 0)
    return !where || std::strcmp(where, "FetchPreparedStatement") == 0;
  if (std::strcmp(state, "0A000") == 0)
    return !where || std::strcmp(where, "RevalidateCachedQuery") == 0;
  return false;
}

void error_of(PGresult* r, PGconn* pg, std::string_view sql, error_code& ec, diagnostics& diag) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string message;
  if (r) message = trimmed(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
  if (message.empty() && r) message = trimmed(PQresultErrorMessage(r));
  if (message.empty()) message = trimmed(PQerrorMessage(pg));
  if (r) {
    std::string detail = trimmed(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
    if (!detail.empty()) message += " (" + detail + ")";
  }
  // No SQLSTATE: libpq's own failure, which means the connection.
  ec = state && std::strlen(state) == 5 ? make_postgres_error(state)
                                        : make_error_code(errc::connection_error);
  diag.message = std::move(message);
  diag.sql = sql_excerpt(sql);
}

void absorb(PGresult* r, PGconn* pg, std::string_view sql, std::size_t max_rows, result& out,
            error_code& ec, diagnostics& diag) {
  switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK: {
      out.rows_affected += std::strtoll(PQcmdTuples(r), nullptr, 10);
      return;
    }
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE: {
      // SELECT's count is no change; INSERT/UPDATE/DELETE ... RETURNING report their rows.
      if (std::strncmp(PQcmdStatus(r), "SELECT", 6) != 0)
        out.rows_affected += std::strtoll(PQcmdTuples(r), nullptr, 10);
      const int rows = PQntuples(r);
      const int cols = PQnfields(r);
      if (rows == 0 || out.rows.size() >= max_rows) return;
      auto names = std::make_shared<std::vector<std::string>>();
      names->reserve(static_cast<std::size_t>(cols));
      for (int j = 0; j < cols; ++j) names->emplace_back(PQfname(r, j));
      columns shared_names = std::move(names);
      for (int i = 0; i < rows && out.rows.size() < max_rows; ++i) {
        std::vector<value> values;
        values.reserve(static_cast<std::size_t>(cols));
        for (int j = 0; j < cols; ++j) values.push_back(convert(r, i, j));
        out.rows.emplace_back(shared_names, std::move(values));
      }
      return;
    }
    case PGRES_EMPTY_QUERY:
    case PGRES_PIPELINE_SYNC:
    case PGRES_PIPELINE_ABORTED:
    case PGRES_COPY_OUT:
    case PGRES_COPY_IN:
    case PGRES_COPY_BOTH:
    case PGRES_NONFATAL_ERROR:
      return;
    default:
      if (!ec) error_of(r, pg, sql, ec, diag);
      return;
  }
}

bool note_broken(pg_conn& c, error_code& ec, diagnostics& diag) {
  if (!c.broken && PQstatus(c.pg) == CONNECTION_OK) return false;
  c.broken = true;
  std::string why = diag.message.empty() ? trimmed(PQerrorMessage(c.pg)) : diag.message;
  if (!ec || ec.category() == postgres_category() || ec == errc::connection_error) {
    ec = make_error_code(errc::connection_error);
    diag.message =
        "the connection to the PostgreSQL server was lost (the next request gets a "
        "fresh one)" +
        (why.empty() ? std::string() : ": " + why);
  }
  return true;
}

bool refuse_nul(std::string_view sql, const params& args, error_code& ec, diagnostics& diag) {
  std::string what;
  if (std::size_t at = sql.find('\0'); at != std::string_view::npos) {
    what = "the SQL holds a NUL byte (at byte " + std::to_string(at) + ")";
  } else {
    for (std::size_t i = 0; i < args.size(); ++i) {
      const auto* text = std::get_if<std::string>(&args[i].raw());
      if (!text) continue;
      std::size_t nul = text->find('\0');
      if (nul == std::string::npos) continue;
      what = "parameter " + std::to_string(i + 1) + " is text holding a NUL byte (at byte " +
             std::to_string(nul) + ")";
      break;
    }
  }
  if (what.empty()) return false;
  ec = make_error_code(errc::invalid_argument);
  diag.message = what +
                 ": PostgreSQL text cannot hold one (bind bytes as a blob); nothing "
                 "was sent";
  diag.sql = sql_excerpt(sql);
  return true;
}

bool refuse_statement(std::size_t parameters, bool several_statements, const params& args,
                      std::string_view sql, error_code& ec, diagnostics& diag) {
  const std::size_t given = args.size();
  if (refuse_nul(sql, args, ec, diag)) return true;
  if (several_statements) {
    ec = make_error_code(errc::invalid_argument);
    diag.message = "the SQL holds several statements: use execute_script";
  } else if (parameters != given) {
    ec = make_error_code(errc::invalid_argument);
    diag.message = "the statement has " + std::to_string(parameters) + " parameter" +
                   (parameters == 1 ? "" : "s") + " but " + std::to_string(given) +
                   (given == 1 ? " was" : " were") + " given";
  } else {
    return false;
  }
  diag.sql = sql_excerpt(sql);
  return true;
}

bool lost_creation_race(std::string_view sql, const error_code& ec) {
  if (!ec || ec.category() != postgres_category()) return false;
  std::string state = postgres_sqlstate(ec);
  if (state != "23505" && state != "42P07" && state != "42710") return false;
  std::string lower;
  lower.reserve(sql.size());
  for (char c : sql) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t i = lower.find_first_not_of(" \t\r\n");
  return i != std::string::npos && lower.compare(i, 6, "create") == 0 &&
         lower.find("if not exists") != std::string::npos;
}

bool pipelinable(std::string_view sql) {
  // The first keyword outside parentheses after a WITH's common table expressions is its main
  // statement; a RETURNING anywhere (in a CTE too) yields rows.
  detail::sql_lexer lexer(sql, sql_dialect::postgresql);
  detail::sql_token t;
  int depth = 0;
  bool with = false, insert = false, first = true;
  while (lexer.next(t)) {
    if (t.blank()) continue;
    if (t.kind == detail::sql_token_kind::punctuation) {
      if (t.text == "(") ++depth;
      if (t.text == ")") --depth;
    }
    if (t.kind != detail::sql_token_kind::word) {
      first = false;
      continue;
    }
    if (t.is_word("returning")) return false;
    if (first) {
      with = t.is_word("with");
      insert = t.is_word("insert");
      first = false;
      if (!with && !insert) return false;
      continue;
    }
    if (with && !insert && depth == 0) {
      for (std::string_view other : {"select", "update", "delete", "merge", "values", "table"})
        if (t.is_word(other)) return false;
      insert = t.is_word("insert");
    }
  }
  return insert;
}

// ---- blocking_session ------------------------------------------------------------------------

namespace {
// Marks the connection as waiting for the server for the life of the object: a deadline's
// guard on another thread may then end the wait (see pg_conn::abandon).
struct blocking_call {
  explicit blocking_call(pg_conn* c) : c_(c) { c_->in_blocking_call.store(true); }
  ~blocking_call() { c_->in_blocking_call.store(false); }
  blocking_call(const blocking_call&) = delete;
  blocking_call& operator=(const blocking_call&) = delete;
  pg_conn* c_;
};
}  // namespace

blocking_session::blocking_session(pg_conn* c, bool pipeline_inserts, std::size_t chunk,
                                   std::function<void()> on_pipeline_batch)
    : c_(c),
      pipeline_inserts_(pipeline_inserts),
      chunk_(chunk ? chunk : 1),
      on_pipeline_batch_(std::move(on_pipeline_batch)),
      queued_(c->pg) {}

blocking_session::~blocking_session() {
  if (queued_.empty()) return;
  // Abandoned statements (the body threw): read their results so that the connection is idle.
  try {
    flush();
  } catch (...) {
  }
}

result blocking_session::query(std::string_view sql, const params& args, std::size_t max_rows) {
  // The cancel request reaches only the statement that is running: one cancelled between
  // statements stops at the next.
  if (cancel_ && cancel_->requested())
    throw error(errc::cancelled,
                {"the caller cancelled the transaction before this statement", sql_excerpt(sql)});
  translated_sql translated = translate(sql);
  {
    error_code ec;
    diagnostics diag;
    if (refuse_statement(translated.parameters, translated.several_statements, args, sql, ec, diag))
      throw error(ec, diag);
  }
  const std::string& text = translated.text;
  const bool cached = cacheable(*c_, translated);
  if (pipeline_inserts_ && pipelinable(sql)) {
    bool sent = !queued_.empty() || PQenterPipelineMode(c_->pg) == 1;
    if (sent) {
      blocking_call waiting(c_);
      sent = send_cached(*c_, queued_, pipeline_entry::statement, sql, text, args, 0, cached);
    }
    if (!sent) {
      error_code ec;
      diagnostics diag;
      error_of(nullptr, c_->pg, sql, ec, diag);
      note_broken(*c_, ec, diag);
      throw error(ec, diag);
    }
    if (queued_.size() >= chunk_) flush();
    return {};
  }
  flush();
  for (int attempt = 0;; ++attempt) {
    result out;
    error_code ec;
    diagnostics diag;
    // A stale statement failed before it ran: run again, it cannot do anything twice. Inside
    // a transaction block the failure aborted the transaction, so there it is the caller's.
    const bool idle = PQtransactionStatus(c_->pg) == PQTRANS_IDLE;
    bool stale = false;
    bound_params b(args);
    const std::string key = cached ? statement_key(text, args) : std::string();
    if ((cached && !c_->statements.holds(key)) || (idle && !c_->statements.closing().empty())) {
      stale = run_pipelined(sql, text, args, max_rows, cached, idle, out, ec, diag);
    } else {
      PGresult* r;
      std::string name;
      {
        blocking_call waiting(c_);
        if (cached) {
          name = c_->statements.lookup(key).name;
          r = PQexecPrepared(c_->pg, name.c_str(), b.count(), b.values(), b.lengths(), b.formats(),
                             0);
        } else {
          r = PQexecParams(c_->pg, text.c_str(), b.count(), b.types(), b.values(), b.lengths(),
                           b.formats(), 0);
        }
      }
      if (!r) {
        error_of(nullptr, c_->pg, sql, ec, diag);
      } else {
        if (cached && stale_statement(r)) {
          stale = true;
          c_->statements.forget(name);
        }
        absorb(r, c_->pg, sql, max_rows, out, ec, diag);
        PQclear(r);
      }
    }
    note_broken(*c_, ec, diag);
    if (!ec) return out;
    if (stale && idle && attempt == 0 && !c_->broken) continue;
    throw error(ec, diag);
  }
}

bool blocking_session::run_pipelined(std::string_view sql, const std::string& text,
                                     const params& args, std::size_t max_rows, bool cached,
                                     bool idle, result& res, error_code& ec, diagnostics& diag) {
  pipeline p(c_->pg);
  outcome out;
  {
    blocking_call waiting(c_);
    // In blocking mode each sync point flushes what was sent before it. The DEALLOCATEs due
    // go first; the one the statement's own prepare gives up after it.
    bool ok = PQenterPipelineMode(c_->pg) == 1 && (!idle || send_closing(*c_, p)) &&
              send_cached(*c_, p, pipeline_entry::statement, sql, text, args, max_rows, cached) &&
              send_sync(c_->pg, p) && (!idle || send_closing(*c_, p));
    if (ok) {
      while (p.awaiting()) p.take(PQgetResult(c_->pg), out);
    } else {
      // Half a pipeline may have gone: the connection is not trusted again.
      error_of(nullptr, c_->pg, sql, out.ec, out.diag);
      c_->broken = true;
    }
    if (!c_->broken && !p.failed() && PQexitPipelineMode(c_->pg) != 1) c_->broken = true;
  }
  if (p.failed()) c_->broken = true;
  const bool stale = p.saw_stale();
  p.settle(c_->statements);
  res = std::move(out.res);
  ec = out.ec;
  diag = std::move(out.diag);
  return stale;
}

void blocking_session::flush() {
  if (queued_.empty()) return;
  outcome out;
  {
    blocking_call waiting(c_);
    if (send_sync(c_->pg, queued_)) {
      while (queued_.awaiting()) queued_.take(PQgetResult(c_->pg), out);
      if (on_pipeline_batch_) on_pipeline_batch_();
    } else {
      queued_.lost(out);
    }
    PQexitPipelineMode(c_->pg);
  }
  // A stale statement here aborted the transaction: it is forgotten, and the error is the
  // body's (see run_transaction).
  queued_.settle(c_->statements);
  if (queued_.failed()) c_->broken = true;
  note_broken(*c_, out.ec, out.diag);
  if (out.ec) throw error(out.ec, out.diag);
}

void blocking_session::command(const char* sql, error_code& ec, diagnostics& diag) {
  PGresult* r;
  {
    blocking_call waiting(c_);
    r = PQexec(c_->pg, sql);
  }
  result ignored;
  if (!r) {
    error_of(nullptr, c_->pg, sql, ec, diag);
  } else {
    absorb(r, c_->pg, sql, 0, ignored, ec, diag);
    PQclear(r);
  }
  note_broken(*c_, ec, diag);
}

}  // namespace entity::postgres_detail
