// The backends a shared test suite runs on, and a fresh database per test on each.
//
//   class Memory : public entity::test::backend_test {};
//   TEST_P(Memory, StoresThings) { auto db = open(); ... }
//   ENTITY_INSTANTIATE_ON_EVERY_BACKEND(Memory);
//
// SQLite: a database file in a temporary folder of the test's own. PostgreSQL: the server of
// ENTITYDB_PG_URL (scripts/with-postgres starts a throwaway one), in a schema of the test's own,
// so that tests running in parallel on one server (ctest -j, one process per test) never see
// each other's tables. Without ENTITYDB_PG_URL every PostgreSQL test fails and says how to run
// it: a suite that silently skips its server half proves nothing.
//
// PostgreSQL with an ICU collation (`postgresql_icu`, for suites instantiated with
// ENTITY_INSTANTIATE_ON_EVERY_BACKEND_AND_COLLATION): the same server, in a database created
// with ICU's en-US collation, under which text does not sort by its bytes (';' sorts before
// ':'). A server that cannot create such a database fails those tests and says why.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "entity/entity.hpp"
#include "test_support.hpp"

namespace entity::test {

enum class backend { sqlite, postgresql, postgresql_icu };

inline const char* missing_server_message =
    "ENTITYDB_PG_URL is not set: the PostgreSQL tests need a server. Run them through "
    "scripts/with-postgres (e.g. `cd build && ../scripts/with-postgres ctest`), as `make test` "
    "does.";

/// The server the PostgreSQL tests use; empty when none is configured.
inline std::string postgres_base_url() {
  const char* u = std::getenv("ENTITYDB_PG_URL");
  return u ? u : "";
}

inline std::string with_url_option(const std::string& url, const std::string& option) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + option;
}

/// The schema name of the running test: readable, unique per test and per process, at most 63
/// bytes (PostgreSQL's identifier limit).
inline std::string schema_of_current_test() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string full = info ? std::string(info->test_suite_name()) + "_" + info->name() : "none";
  std::string readable;
  for (char c : full.substr(0, 36))
    readable += std::isalnum(static_cast<unsigned char>(c))
                    ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                    : '_';
  return "t_" + readable + "_" + std::to_string(std::hash<std::string>{}(full) % 1000000007) + "_" +
         std::to_string(::getpid());
}

/// `url` (a postgresql:// URL) naming the database `name` instead of its own.
inline std::string with_database(const std::string& url, const std::string& name) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos)
    throw std::runtime_error("ENTITYDB_PG_URL is not a postgresql:// URL: " + url);
  std::size_t query = url.find('?', scheme + 3);
  std::size_t slash = url.find('/', scheme + 3);
  if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
    slash = query == std::string::npos ? url.size() : query;
    return url.substr(0, slash) + "/" + name + url.substr(slash);
  }
  std::size_t end = query == std::string::npos ? url.size() : query;
  return url.substr(0, slash + 1) + name + url.substr(end);
}

/// Runs `sql` on the server of ENTITYDB_PG_URL (in the database of `url`, the server's own
/// when empty) outside any test schema.
inline void postgres_admin(const std::string& sql, const std::string& url = "") {
  postgres_params p;
  p.url = url.empty() ? postgres_base_url() : url;
  p.min_connections = 1;
  p.pool_size = 1;
  auto admin = std::make_shared<postgres_infrastructure>(p);
  admin->startup();
  database(admin).execute_script(sql);
  admin->shutdown();
}

/// The database of the server of ENTITYDB_PG_URL whose collation is ICU's en-US.
inline constexpr const char* icu_database = "entitydb_icu_en_us";

/// The URL of icu_database, created on first use (by whichever test process comes first).
/// Throws std::runtime_error, saying why, when the server cannot make it or it does not
/// collate as en-US does.
inline std::string icu_database_url() {
  const std::string base = postgres_base_url();
  postgres_params p;
  p.url = base;
  p.min_connections = 1;
  p.pool_size = 1;
  auto admin = std::make_shared<postgres_infrastructure>(p);
  admin->startup();
  database db(admin);
  auto exists = [&] {
    return db.fetch_one("SELECT 1 FROM pg_database WHERE datname = ?", {icu_database}).has_value();
  };
  if (!exists()) {
    error_code ec;
    diagnostics diag;
    db.execute_script(std::string("CREATE DATABASE ") + icu_database +
                          " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0",
                      ec, diag);
    // Another test process may have created it meanwhile; anything else is the server's
    // refusal (a build without ICU, a server older than 15).
    if (ec && !exists()) {
      admin->shutdown();
      throw std::runtime_error(
          "the server of ENTITYDB_PG_URL cannot create a database with ICU's en-US collation, "
          "which the PostgreSQL tests of collation-proof SQL need (PostgreSQL 15 or later built "
          "with ICU, as Debian's is): " +
          diag.to_string());
    }
  }
  admin->shutdown();
  std::string url = with_database(base, icu_database);
  p.url = url;
  auto icu = std::make_shared<postgres_infrastructure>(p);
  icu->startup();
  // Under en-US ';' sorts before ':', as bytes it sorts after.
  auto r = database(icu).fetch_one(
      "SELECT d.datlocprovider::text, 'a;' < 'a:' FROM pg_database AS d "
      "WHERE d.datname = current_database()");
  icu->shutdown();
  if (!r || r->get<std::string>(0) != "i" || r->get<std::int64_t>(1) != 1)
    throw std::runtime_error(std::string("the database ") + icu_database +
                             " does not collate as ICU's en-US does (locale provider '" +
                             (r ? r->get<std::string>(0) : std::string("?")) + "')");
  return url;
}

/// Creates a fresh, empty schema for the running test; returns a URL whose connections use it
/// (`extra_option`, like "application_name=x", is added to the URL). `server` is the
/// database's URL, ENTITYDB_PG_URL's when empty.
inline std::string postgres_schema_url(const std::string& schema,
                                       const std::string& extra_option = "",
                                       const std::string& server = "") {
  postgres_admin("DROP SCHEMA IF EXISTS " + schema + " CASCADE; CREATE SCHEMA " + schema, server);
  std::string url = with_url_option(server.empty() ? postgres_base_url() : server,
                                    "options=-csearch_path%3D" + schema);
  if (!extra_option.empty()) url = with_url_option(url, extra_option);
  return url;
}

/// What a test may change about the engine it opens.
struct open_options {
  std::size_t pool_size = 5;
  std::optional<std::chrono::milliseconds> acquire_timeout;
};

/// A fixture parametrised by backend: open() gives a started engine on a database of this
/// test's own; every engine opened is shut down and the database removed after the test.
class backend_test : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    if (GetParam() != backend::sqlite) {
      if (postgres_base_url().empty()) GTEST_FAIL() << missing_server_message;
      if (GetParam() == backend::postgresql_icu) {
        try {
          server_ = icu_database_url();
        } catch (const std::exception& e) {
          GTEST_FAIL() << e.what();
        }
      }
      schema_ = schema_of_current_test();
      url_ = postgres_schema_url(schema_, "", server_);
    } else {
      dir_.emplace();
      url_ = dir_->file("test.db");
    }
  }

  void TearDown() override {
    for (auto& infra : opened_) infra->shutdown();
    opened_.clear();
    if (!schema_.empty()) {
      try {
        postgres_admin("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE", server_);
      } catch (const std::exception&) {
        // The server is thrown away after the run; a schema left behind harms nobody.
      }
    }
  }

  bool on_sqlite() const { return GetParam() == backend::sqlite; }
  bool on_postgres() const { return GetParam() != backend::sqlite; }
  /// PostgreSQL in a database whose collation is ICU's en-US, not bytewise.
  bool on_icu_collation() const { return GetParam() == backend::postgresql_icu; }

  /// An engine on this test's database, not started yet.
  std::shared_ptr<infrastructure> make_engine(const open_options& o = {}) {
    std::shared_ptr<infrastructure> infra;
    if (on_postgres()) {
      postgres_params p;
      p.url = url_;
      p.pool_size = o.pool_size;
      if (o.acquire_timeout) p.acquire_timeout = *o.acquire_timeout;
      infra = std::make_shared<postgres_infrastructure>(p);
    } else {
      sqlite_params p;
      p.path = url_;
      p.pool_size = o.pool_size;
      if (o.acquire_timeout) p.acquire_timeout = *o.acquire_timeout;
      infra = std::make_shared<sqlite_infrastructure>(p);
    }
    opened_.push_back(infra);
    return infra;
  }

  /// A started engine on this test's database. Opened again, it sees the same data.
  std::shared_ptr<infrastructure> open_engine(const open_options& o = {}) {
    auto infra = make_engine(o);
    infra->startup();
    return infra;
  }

  database open(const open_options& o = {}) { return database(open_engine(o)); }

  /// What the backend calls itself (infrastructure::backend_name).
  std::string backend_name() const { return on_postgres() ? "postgres" : "sqlite"; }
  /// The category of the backend's own error codes.
  const boost::system::error_category& backend_category() const {
    return on_postgres() ? postgres_category() : sqlite_category();
  }
  /// Column types that differ in spelling.
  std::string blob_type() const { return on_postgres() ? "BYTEA" : "BLOB"; }
  /// An integer key the database numbers itself when an INSERT leaves it out.
  std::string auto_key() const {
    return on_postgres() ? "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
                         : "INTEGER PRIMARY KEY";
  }

 private:
  std::optional<temp_dir> dir_;
  std::string url_;
  std::string server_;  // the PostgreSQL database's URL when it is not ENTITYDB_PG_URL's
  std::string schema_;
  std::vector<std::shared_ptr<infrastructure>> opened_;
};

inline std::string backend_label(const ::testing::TestParamInfo<backend>& info) {
  switch (info.param) {
    case backend::postgresql:
      return "postgresql";
    case backend::postgresql_icu:
      return "postgresql_icu";
    default:
      return "sqlite";
  }
}

}  // namespace entity::test

/// Runs every TEST_P of `suite` once on SQLite and once on PostgreSQL.
#define ENTITY_INSTANTIATE_ON_EVERY_BACKEND(suite)                                             \
  INSTANTIATE_TEST_SUITE_P(                                                                    \
      Backends, suite,                                                                         \
      ::testing::Values(::entity::test::backend::sqlite, ::entity::test::backend::postgresql), \
      ::entity::test::backend_label)

/// The same, and once more on PostgreSQL in a database whose collation is ICU's en-US: for
/// suites whose SQL compares or orders text and must not depend on the database's collation.
#define ENTITY_INSTANTIATE_ON_EVERY_BACKEND_AND_COLLATION(suite)                              \
  INSTANTIATE_TEST_SUITE_P(                                                                   \
      Backends, suite,                                                                        \
      ::testing::Values(::entity::test::backend::sqlite, ::entity::test::backend::postgresql, \
                        ::entity::test::backend::postgresql_icu),                             \
      ::entity::test::backend_label)
