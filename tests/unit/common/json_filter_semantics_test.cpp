// What a compiled JSON filter matches (common/json_filter), the same table of cases on every
// backend: SQLite through its C API on an in-memory database, PostgreSQL through libpq in a
// schema of the test's own (and again in a database whose collation is ICU's en-US, where
// text does not sort by its bytes). Each case is run as
//   SELECT key FROM memory WHERE <filter> ORDER BY key
// and must return exactly its keys; NOT (<filter>) must return every other key and
// (<filter>) IS NULL none: the expression is strictly true or false on every row.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backends.hpp"
#include "common/json_filter.hpp"
#include "postgres/placeholders.hpp"

namespace {

using entity::json;
using entity::test::backend;
using keys = std::vector<std::string>;

// The stored values, as JSON text: the way nlohmann::json writes it (sorted keys, UTF-8 as
// is) and, in k10, as another program may (\u escapes).
struct document {
  const char* key;
  const char* text;
};
const document documents[] = {
    {"k1",
     R"({"active":true,"age":30,"meta":{"level":2,"team":"core"},"name":"alice","score":1,"tags":["admin","dev"]})"},
    {"k2",
     R"({"active":false,"age":25,"meta":{"level":1,"team":"web"},"name":"bob","score":1.0,"tags":["dev"]})"},
    {"k3", R"({"active":null,"age":35.5,"meta":{"level":3},"name":"carol","score":"1","tags":[]})"},
    {"k4",
     R"({"meta":{"level":"2","team":"core"},"name":"dave","score":0,"tags":["ops",1,2.5,true,null]})"},
    {"k5", R"({"age":-4,"meta":null,"name":"Émile","nums":[1,2,3]})"},
    {"k6", R"(42)"},
    {"k7", R"("alice")"},
    {"k8", R"([1,2,3])"},
    {"k9", R"({"0":"zero","1":{"2":"deep"},"a-b":"dash","a_b":"under","list":[{"x":1}]})"},
    {"k10", R"({"bio":"I like \u2603 snow","name":"caf\u00e9"})"},
    {"k11", R"({"age":0,"arr":[[1,2]],"empty":{},"name":"","score":-1.5})"},
    {"k12", R"({"age":1e2,"name":"zed","nums":[1.0,10,100]})"},
    {"k13", R"({"active":"true","age":"30","tags":"admin,dev"})"},
    {"k14", R"({"meta":{"level":2.0,"sub":{"deep":{"x":true}},"team":null},"nullish":null})"},
    {"k15", R"({})"},
};

keys all_keys() {
  keys out;
  for (const document& d : documents) out.push_back(d.key);
  std::sort(out.begin(), out.end());
  return out;
}

// "k1 k2" as sorted keys.
keys only(const std::string& list) {
  keys out;
  std::istringstream in(list);
  for (std::string k; in >> k;) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}
keys none() { return {}; }
keys all_but(const std::string& list) {
  keys excluded = only(list), out;
  for (const std::string& k : all_keys())
    if (!std::binary_search(excluded.begin(), excluded.end(), k)) out.push_back(k);
  return out;
}

struct filter_case {
  const char* filter;
  keys expected;
};

const std::vector<filter_case>& cases() {
  static const std::vector<filter_case> table = {
      // $eq, bare and spelled out: type-strict, numbers by value.
      {R"({"name": "alice"})", only("k1")},  // k7 is "alice" itself: no paths
      {R"({"name": {"$eq": "alice"}})", only("k1")},
      {R"({"score": 1})", only("k1 k2")},  // 1 and 1.0, not "1"
      {R"({"score": 1.0})", only("k1 k2")},
      {R"({"score": "1"})", only("k3")},
      {R"({"active": true})", only("k1")},  // not the string "true"
      {R"({"active": false})", only("k2")},
      {R"({"active": null})", only("k3")},  // present and null, not missing
      {R"({"meta": null})", only("k5")},
      {R"({"meta.level": 2})", only("k1 k14")},  // 2 and 2.0, not "2"
      {R"({"meta.level": "2"})", only("k4")},
      {R"({"meta.team": "core"})", only("k1 k4")},
      {R"({"meta.team": null})", only("k14")},
      {R"({"meta.sub.deep.x": true})", only("k14")},
      {R"({"name": "café"})", only("k10")},  // stored as caf\u00e9
      {R"({"name": "Émile"})", only("k5")},
      {R"({"name": ""})", only("k11")},
      {R"({"age": 100})", only("k12")},  // stored as 1e2
      {R"({"name": "alice", "age": 30})", only("k1")},
      {R"({"name": "alice", "age": 31})", none()},
      // Digits and dashes name keys; they never index an array.
      {R"({"0": "zero"})", only("k9")},
      {R"({"1.2": "deep"})", only("k9")},
      {R"({"a-b": "dash", "a_b": "under"})", only("k9")},
      {R"({"tags.0": "admin"})", none()},
      {R"({"$or": [{"0": 1}, {"nums.0": 1}, {"list.0.x": 1}]})", none()},
      // $ne: true where the path is missing.
      {R"({"name": {"$ne": "alice"}})", all_but("k1")},
      {R"({"active": {"$ne": true}})", all_but("k1")},
      {R"({"score": {"$ne": 1}})", all_but("k1 k2")},
      {R"({"active": {"$ne": null}})", all_but("k3")},
      // Orderings: numbers with numbers, strings with strings in byte order.
      {R"({"age": {"$gt": 25}})", only("k1 k3 k12")},  // not k13's "30"
      {R"({"age": {"$gte": 25}})", only("k1 k2 k3 k12")},
      {R"({"age": {"$lt": 0}})", only("k5")},
      {R"({"age": {"$lte": 0}})", only("k5 k11")},
      {R"({"age": {"$gt": 25, "$lt": 50}})", only("k1 k3")},
      {R"({"age": {"$gt": "25"}})", only("k13")},
      {R"({"age": {"$gte": 2.5e1, "$lte": 1e2}})", only("k1 k2 k3 k12")},
      {R"({"name": {"$gt": "carol"}})", only("k4 k5 k12")},  // "Émile" after "z" in bytes
      {R"({"name": {"$lt": "b"}})", only("k1 k11")},
      {R"({"name": {"$gte": "Z"}})", only("k1 k2 k3 k4 k5 k10 k12")},  // lower case after "Z"
      {R"({"score": {"$lt": 1}})", only("k4 k11")},
      {R"({"score": {"$lte": 1}})", only("k1 k2 k4 k11")},
      {R"({"active": {"$gt": 0}})", none()},  // booleans are not numbers
      {R"({"active": {"$lte": "true"}})", only("k13")},
      {R"({"meta.level": {"$gte": 2}})", only("k1 k3 k14")},
      {R"({"$not": {"age": {"$gt": 25}}})", all_but("k1 k3 k12")},
      // $in / $nin: $eq with any element.
      {R"({"name": {"$in": ["alice", "bob", "nobody"]}})", only("k1 k2")},
      {R"({"score": {"$in": [1, "1"]}})", only("k1 k2 k3")},
      {R"({"active": {"$in": [true, null]}})", only("k1 k3")},
      {R"({"active": {"$in": [1, 0]}})", none()},
      {R"({"meta.level": {"$in": [1, "2", 3]}})", only("k2 k3 k4")},
      {R"({"score": {"$in": []}})", none()},
      {R"({"score": {"$nin": [1, 0]}})", all_but("k1 k2 k4")},
      {R"({"active": {"$nin": []}})", all_keys()},
      {R"({"active": {"$nin": [false, null, "true"]}})", all_but("k2 k3 k13")},
      // $exists: present even when null.
      {R"({"age": {"$exists": true}})", only("k1 k2 k3 k5 k11 k12 k13")},
      {R"({"age": {"$exists": false}})", only("k4 k6 k7 k8 k9 k10 k14 k15")},
      {R"({"active": {"$exists": true}})", only("k1 k2 k3 k13")},
      {R"({"meta.team": {"$exists": true}})", only("k1 k2 k4 k14")},
      {R"({"meta.team.x": {"$exists": true}})", none()},  // a step into a string
      {R"({"nullish": {"$exists": true}})", only("k14")},
      {R"({"empty": {"$exists": true}, "empty.x": {"$exists": false}})", only("k11")},
      // $contains: an element of an array, or a substring of a string.
      {R"({"tags": {"$contains": "dev"}})", only("k1 k2 k13")},
      {R"({"tags": {"$contains": "adm"}})", only("k13")},  // elements are not searched
      {R"({"tags": {"$contains": 1}})", only("k4")},       // not true
      {R"({"tags": {"$contains": true}})", only("k4")},
      {R"({"tags": {"$contains": null}})", only("k4")},
      {R"({"tags": {"$contains": 2.50}})", only("k4")},
      {R"({"nums": {"$contains": 1}})", only("k5 k12")},  // 1 and 1.0
      {R"({"nums": {"$contains": 10.0}})", only("k12")},
      {R"({"nums": {"$contains": "1"}})", none()},
      {R"({"arr": {"$contains": 1}})", none()},  // [[1,2]]: not nested arrays
      {R"({"list": {"$contains": 1}})", none()},
      {R"({"bio": {"$contains": "☃"}})", only("k10")},  // stored as \u2603
      {R"({"name": {"$contains": ""}})", only("k1 k2 k3 k4 k5 k10 k11 k12")},
      {R"({"name": {"$contains": "l"}})", only("k1 k3 k5")},
      {R"({"name": {"$contains": "mil"}})", only("k5")},
      {R"({"meta": {"$contains": "core"}})", none()},  // objects are not searched
      {R"({"age": {"$contains": 30}})", none()},
      // Logic, and its mixing with fields.
      {R"({"$or": [{"name": "alice"}, {"name": "bob"}]})", only("k1 k2")},
      {R"({"$and": [{"meta.team": "core"}, {"score": {"$gte": 0}}]})", only("k1 k4")},
      {R"({"$not": {"name": "alice"}})", all_but("k1")},
      {R"({"$or": [{"age": {"$gt": 30}}, {"age": {"$exists": false}}]})",
       only("k3 k4 k6 k7 k8 k9 k10 k12 k14 k15")},
      {R"({"$not": {"$or": [{"active": true}, {"active": false}]}})", all_but("k1 k2")},
      {R"({"meta.team": "core", "$or": [{"score": 0}, {"name": "alice"}]})", only("k1 k4")},
      {R"({"$and": [{"$or": [{"tags": {"$contains": "dev"}}, {"nums": {"$contains": 2}}]},
                    {"$not": {"active": false}}]})",
       only("k1 k5 k13")},
      {R"({})", all_keys()},
      {R"({"$not": {"$not": {"active": {"$exists": true}}}})", only("k1 k2 k3 k13")},
      // Tautologies and contradictions over missing paths: boolean logic, no NULL.
      {R"({"$or": [{"missing": 1}, {"missing": {"$ne": 1}}]})", all_keys()},
      {R"({"$and": [{"missing": 1}, {"$not": {"missing": 1}}]})", none()},
      {R"({"$not": {"missing.deep": {"$lt": 5}}})", all_keys()},
      {R"({"$or": [{"age": {"$lt": 30}}, {"age": {"$gte": 30}}]})", only("k1 k2 k3 k5 k11 k12")},
  };
  return table;
}

// One backend's database holding `documents`, and the query of a compiled filter on it.
class store {
 public:
  virtual ~store() = default;
  /// The keys of the rows where `where` (SQL with `?` placeholders) is true, in key order.
  virtual keys select(const std::string& where, const entity::params& bound) = 0;
};

class sqlite_store : public store {
 public:
  sqlite_store() {
    EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    run("CREATE TABLE memory(key TEXT PRIMARY KEY, value TEXT NOT NULL)", {});
    for (const document& d : documents)
      run("INSERT INTO memory(key, value) VALUES (?, ?)", {d.key, d.text});
  }
  ~sqlite_store() override { sqlite3_close(db_); }

  keys select(const std::string& where, const entity::params& bound) override {
    return run("SELECT key FROM memory WHERE " + where + " ORDER BY key", bound);
  }

 private:
  keys run(const std::string& sql, const entity::params& bound) {
    keys out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sqlite3_errmsg(db_) << " in " << sql;
      return out;
    }
    EXPECT_EQ(sqlite3_bind_parameter_count(stmt), static_cast<int>(bound.size())) << sql;
    for (std::size_t i = 0; i < bound.size(); ++i) {
      const int at = static_cast<int>(i + 1);
      const entity::value& v = bound[i];
      if (v.is_int())
        sqlite3_bind_int64(stmt, at, v.as_int());
      else if (v.is_double())
        sqlite3_bind_double(stmt, at, v.as_double());
      else if (v.is_text())
        sqlite3_bind_text(stmt, at, v.as_text().data(), static_cast<int>(v.as_text().size()),
                          SQLITE_TRANSIENT);
      else
        sqlite3_bind_null(stmt, at);
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
      out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db_) << " in " << sql;
    sqlite3_finalize(stmt);
    return out;
  }

  sqlite3* db_ = nullptr;
};

class postgres_store : public store {
 public:
  explicit postgres_store(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      ADD_FAILURE() << "cannot connect: " << PQerrorMessage(conn_);
      return;
    }
    // Keys compare by their bytes, as the memory's own table declares them.
    run("CREATE TABLE memory(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL)", {});
    for (const document& d : documents)
      run("INSERT INTO memory(key, value) VALUES (?, ?)", {d.key, d.text});
  }
  ~postgres_store() override { PQfinish(conn_); }

  keys select(const std::string& where, const entity::params& bound) override {
    return run("SELECT key FROM memory WHERE " + where + " ORDER BY key", bound);
  }

 private:
  keys run(const std::string& sql, const entity::params& bound) {
    keys out;
    if (PQstatus(conn_) != CONNECTION_OK) {
      ADD_FAILURE() << "no connection";
      return out;
    }
    const entity::postgres_detail::translated_sql t = entity::postgres_detail::translate(sql);
    EXPECT_EQ(t.parameters, bound.size()) << sql;
    std::vector<std::string> texts;
    for (const entity::value& v : bound) {
      // The compiler binds text alone on PostgreSQL; the SQL casts it.
      EXPECT_TRUE(v.is_text()) << v.to_string() << " in " << sql;
      texts.push_back(v.is_text() ? v.as_text() : v.to_string());
    }
    std::vector<const char*> values;
    for (const std::string& s : texts) values.push_back(s.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> r(
        PQexecParams(conn_, t.text.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                     nullptr, nullptr, 0),
        &PQclear);
    const ExecStatusType status = PQresultStatus(r.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << PQresultErrorMessage(r.get()) << " in " << t.text;
      return out;
    }
    for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(PQgetvalue(r.get(), i, 0));
    return out;
  }

  PGconn* conn_;
};

class JsonFilterSemantics : public ::testing::TestWithParam<backend> {
 protected:
  void SetUp() override {
    if (GetParam() == backend::sqlite) {
      store_ = std::make_unique<sqlite_store>();
      return;
    }
    if (entity::test::postgres_base_url().empty())
      GTEST_FAIL() << entity::test::missing_server_message;
    try {
      if (GetParam() == backend::postgresql_icu) server_ = entity::test::icu_database_url();
      schema_ = entity::test::schema_of_current_test();
      store_ =
          std::make_unique<postgres_store>(entity::test::postgres_schema_url(schema_, "", server_));
    } catch (const std::exception& e) {
      GTEST_FAIL() << e.what();
    }
  }

  void TearDown() override {
    store_.reset();
    if (!schema_.empty()) {
      try {
        entity::test::postgres_admin("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE", server_);
      } catch (const std::exception&) {
        // The server is thrown away after the run.
      }
    }
  }

  entity::sql_dialect dialect() const {
    return GetParam() == backend::sqlite ? entity::sql_dialect::sqlite
                                         : entity::sql_dialect::postgresql;
  }

  std::unique_ptr<store> store_;

 private:
  std::string server_;
  std::string schema_;
};

TEST_P(JsonFilterSemantics, EveryFilterMatchesExactlyItsKeys) {
  ASSERT_GE(cases().size(), 60u);
  for (const filter_case& c : cases()) {
    SCOPED_TRACE(c.filter);
    auto compiled = entity::detail::compile_json_filter(json::parse(c.filter), dialect(), "value");
    EXPECT_EQ(store_->select(compiled.sql, compiled.bound), c.expected) << compiled.sql;
    const keys every = all_keys();
    keys rest;
    std::set_difference(every.begin(), every.end(), c.expected.begin(), c.expected.end(),
                        std::back_inserter(rest));
    EXPECT_EQ(store_->select("NOT (" + compiled.sql + ")", compiled.bound), rest);
    EXPECT_EQ(store_->select("(" + compiled.sql + ") IS NULL", compiled.bound), none());
  }
}

INSTANTIATE_TEST_SUITE_P(JsonFilter, JsonFilterSemantics,
                         ::testing::Values(backend::sqlite, backend::postgresql,
                                           backend::postgresql_icu),
                         entity::test::backend_label);

}  // namespace
