// entity-db: one error model for every layer.
//
// The currency is boost::system::error_code, so asio handlers take it as is. Codes come from
// three categories: entity's own (errc), SQLite's extended result codes and PostgreSQL's
// SQLSTATE. Portable conditions (condition::busy, ::constraint, ::syntax, ::timeout) let callers
// write checks that hold on every backend:
//
//   if (ec == entity::condition::constraint) { ... }
//
// The text a person needs (the backend's own message, the SQL that failed) travels beside the
// code in `diagnostics`; the sync API throws `entity::error`, which carries both.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <string>
#include <string_view>
#include <type_traits>

namespace entity {

using error_code = boost::system::error_code;

/// entity-db's own error codes. Zero is success and never used.
enum class errc {
  not_started = 1,     ///< an operation before startup()
  shut_down,           ///< an operation after (or cut short by) shutdown()
  query_timeout,       ///< the operation's deadline passed; the statement was interrupted
  pool_exhausted,      ///< no connection became free within acquire_timeout
  invalid_argument,    ///< bad input from the caller (a name, a size, a parameter count)
  decode_error,        ///< stored data could not be decoded (JSON text, a vector blob)
  dimension_mismatch,  ///< a vector of the wrong dimension for its collection
  not_found,           ///< a named thing (a collection) does not exist
  connection_error,    ///< the connection to the server broke or could not be made
  open_failed,         ///< the database could not be opened
  transaction_open,    ///< a statement left a transaction open; it was rolled back
  aborted,             ///< an exception that is not an entity::error ended the operation (one a
                       ///< transaction body threw, or one the library met, like bad_alloc);
                       ///< nothing of it was committed
  cancelled,           ///< the caller cancelled the operation; what it did was rolled back
  rolled_back,         ///< a statement of a transaction failed and the body went on: the
                       ///< server refused to commit, and the transaction was rolled back
  conflict,            ///< what the operation read kept changing under concurrent writers;
                       ///< nothing was changed, and trying again may succeed
  over_budget,         ///< a statement ran past the inline budget on the caller's thread and
                       ///< was interrupted; the engine runs it again on its own thread (a
                       ///< caller never sees this code)
};
// errc::cancelled matches no entity::condition (it is neither a timeout nor a failure of the
// database); like asio's operation_aborted it is equivalent to the generic
// boost::system::errc::operation_canceled, so one check serves both.

const boost::system::error_category& entity_category() noexcept;
/// SQLite's extended result codes; the message is SQLite's sqlite3_errstr().
const boost::system::error_category& sqlite_category() noexcept;
/// PostgreSQL SQLSTATEs, stored as a base-36 integer of the five characters.
const boost::system::error_category& postgres_category() noexcept;

error_code make_error_code(errc e) noexcept;

/// Backend-independent conditions: compare any entity error_code against these.
enum class condition {
  busy = 1,    ///< the database was locked by another connection or process
  constraint,  ///< a UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint failed
  syntax,      ///< the SQL could not be parsed or names something that does not exist
  timeout,     ///< the operation ran out of time (query_timeout, pool_exhausted)
  io,          ///< the storage failed: disk full, read-only file, I/O error, corruption
};

const boost::system::error_category& condition_category() noexcept;
boost::system::error_condition make_error_condition(condition c) noexcept;

/// Converts a SQLite result code to an error_code of sqlite_category().
error_code make_sqlite_error(int extended_code) noexcept;
/// Converts a five-character SQLSTATE ("23505") to an error_code of postgres_category().
error_code make_postgres_error(std::string_view sqlstate) noexcept;
/// The five-character SQLSTATE of a postgres_category() code.
std::string postgres_sqlstate(const error_code& ec);

/// What accompanies an error_code: the backend's own message and the start of the SQL.
struct diagnostics {
  std::string message;  ///< the backend's message, or entity's own explanation
  std::string sql;      ///< the first ~100 characters of the statement, when one was involved

  void clear() {
    message.clear();
    sql.clear();
  }
  /// "message (sql: ...)" or just the message; empty when both are empty.
  std::string to_string() const;
};

/// Keeps at most ~100 characters of `sql` for a diagnostics record.
std::string sql_excerpt(std::string_view sql);

/// The exception the sync API throws: a system_error that keeps the diagnostics.
/// what() reads "<what failed>: <backend message> (sql: ...)".
class error : public boost::system::system_error {
 public:
  error(error_code ec, diagnostics diag);
  const diagnostics& diag() const noexcept { return diag_; }
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  diagnostics diag_;
  std::string what_;
};

/// Throws entity::error when `ec` is set.
void throw_if(const error_code& ec, const diagnostics& diag);

}  // namespace entity

namespace boost::system {
template <>
struct is_error_code_enum<entity::errc> : std::true_type {};
template <>
struct is_error_condition_enum<entity::condition> : std::true_type {};
}  // namespace boost::system
