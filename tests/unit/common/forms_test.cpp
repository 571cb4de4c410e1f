// Every operation of layer 3 has three forms with one implementation beneath: the throwing
// one, the error_code& one and the async one. These tests hold the error_code& forms of the
// memory and the vector store to what the other two do: the same values on success, and on
// failure the code the throwing form throws, its diagnostics, an empty value and nothing
// written. Every backend.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

using entity::diagnostics;
using entity::errc;
using entity::error_code;
using entity::json;
using entity::memory;
using entity::vector_store;

class Forms : public entity::test::backend_test {};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(Forms);

// Calls `f(ec, diag)` with a fresh pair and checks it succeeded; returns its value.
template <class F>
auto ok(F&& f) {
  error_code ec;
  diagnostics diag;
  if constexpr (std::is_void_v<decltype(f(ec, diag))>) {
    f(ec, diag);
    EXPECT_FALSE(ec) << ec.message() << ": " << diag.to_string();
  } else {
    auto v = f(ec, diag);
    EXPECT_FALSE(ec) << ec.message() << ": " << diag.to_string();
    return v;
  }
}

// Calls `f(ec, diag)`, which must fail with `want` and a message; returns the diagnostics.
template <class F>
diagnostics fails_with(errc want, F&& f) {
  error_code ec;
  diagnostics diag;
  f(ec, diag);
  EXPECT_EQ(ec, want) << ec.message();
  EXPECT_FALSE(diag.message.empty());
  return diag;
}

TEST_P(Forms, MemoryErrorCodeFormsReturnWhatTheThrowingFormsReturn) {
  auto db = open();
  memory mem(db);
  ok([&](auto& ec, auto& d) { mem.store("a", json{{"n", 1}}, ec, d); });
  ok([&](auto& ec, auto& d) { mem.store("b", json::array({1, 2}), ec, d); });
  ok([&](auto& ec, auto& d) { mem.scope("s").store("c", "in a scope", ec, d); });

  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.load("a", ec, d); }), json({{"n", 1}}));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.load("missing", ec, d); }), std::nullopt);
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.load("missing", json(7), ec, d); }), json(7));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.load("b", json(7), ec, d); }),
            json::array({1, 2}));
  EXPECT_TRUE(ok([&](auto& ec, auto& d) { return mem.exists("b", ec, d); }));
  EXPECT_FALSE(ok([&](auto& ec, auto& d) { return mem.exists("zz", ec, d); }));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.keys("%", ec, d); }),
            (std::vector<std::string>{"a", "b", "s:c"}));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.scope("s").keys("%", ec, d); }),
            std::vector<std::string>{"c"});
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.size(ec, d); }), 3);
  auto stats = ok([&](auto& ec, auto& d) { return mem.stats(ec, d); });
  EXPECT_EQ(stats.keys, 3);
  EXPECT_EQ(stats.value_bytes, mem.stats().value_bytes);

  ok([&](auto& ec, auto& d) { mem.batch_store({{"x", 1}, {"y", 2}, {"x", 3}}, ec, d); });
  auto loaded = ok([&](auto& ec, auto& d) { return mem.batch_load({"x", "y", "nope"}, ec, d); });
  EXPECT_EQ(loaded, (memory::loaded{{"x", 3}, {"y", 2}}));

  EXPECT_TRUE(ok([&](auto& ec, auto& d) { return mem.erase("x", ec, d); }));
  EXPECT_FALSE(ok([&](auto& ec, auto& d) { return mem.erase("x", ec, d); }));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return mem.clear("s:%", ec, d); }), 1);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"a", "b", "y"}));
}

TEST_P(Forms, MemoryErrorCodeFormsReportFailuresAndWriteNothing) {
  auto db = open();
  memory mem(db);
  mem.store("kept", 1);

  // A value that is not JSON text: decode_error naming the key, on load and batch_load.
  db.execute("INSERT INTO memory (key, value) VALUES ('broken', 'not json {')");
  auto diag = fails_with(errc::decode_error, [&](auto& ec, auto& d) {
    EXPECT_EQ(mem.load("broken", ec, d), std::nullopt);
  });
  EXPECT_NE(diag.message.find("broken"), std::string::npos) << diag.message;
  fails_with(errc::decode_error, [&](auto& ec, auto& d) {
    EXPECT_TRUE(mem.batch_load({"kept", "broken"}, ec, d).empty());
  });
  // The default of load(key, default) is not returned for a failure.
  fails_with(errc::decode_error, [&](auto& ec, auto& d) {
    EXPECT_EQ(mem.load("broken", json("default"), ec, d), json());
  });

  // A value that cannot be written as JSON (invalid UTF-8): nothing written.
  fails_with(errc::invalid_argument,
             [&](auto& ec, auto& d) { mem.store("bad", std::string("\xff\xfe"), ec, d); });
  fails_with(errc::invalid_argument, [&](auto& ec, auto& d) {
    mem.batch_store({{"ok1", 1}, {"bad", std::string("\xff")}}, ec, d);
  });
  EXPECT_FALSE(mem.exists("bad"));
  EXPECT_FALSE(mem.exists("ok1"));

  // Embeddings and recall check their vectors before anything runs.
  fails_with(errc::invalid_argument, [&](auto& ec, auto& d) {
    mem.store("e", 1, std::vector<float>{0, 0, 0}, ec, d);
  });
  EXPECT_FALSE(mem.exists("e"));
  fails_with(errc::invalid_argument, [&](auto& ec, auto& d) {
    EXPECT_TRUE(mem.recall({1, 0}, 0, ec, d).empty());
  });
  ok([&](auto& ec, auto& d) { mem.store("e", 1, std::vector<float>{1, 0}, ec, d); });
  fails_with(errc::dimension_mismatch, [&](auto& ec, auto& d) {
    mem.store("f", 2, std::vector<float>{1, 0, 0}, ec, d);
  });
  fails_with(errc::dimension_mismatch, [&](auto& ec, auto& d) {
    EXPECT_TRUE(mem.recall({1, 0, 0}, 1, ec, d).empty());
  });
  auto found = ok([&](auto& ec, auto& d) { return mem.recall({1, 0.1f}, 5, ec, d); });
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].key, "e");
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"broken", "e", "kept"}));
}

TEST_P(Forms, AFailedCallDoesNotLeaveAnEarlierFailureBehind) {
  auto db = open();
  memory mem(db);
  error_code ec;
  diagnostics diag;
  mem.store("bad", std::string("\xff"), ec, diag);
  ASSERT_EQ(ec, errc::invalid_argument);
  // The same pair, reused: success clears the code.
  mem.store("good", 1, ec, diag);
  EXPECT_FALSE(ec);
  EXPECT_EQ(mem.load("good", ec, diag), json(1));
  EXPECT_FALSE(ec);
}

TEST_P(Forms, VectorStoreErrorCodeFormsReturnWhatTheThrowingFormsReturn) {
  auto db = open();
  vector_store vs(db);
  EXPECT_TRUE(ok([&](auto& ec, auto& d) {
    return vs.create_collection("docs", 2, entity::metric::l2, ec, d);
  }));
  EXPECT_FALSE(ok([&](auto& ec, auto& d) {
    return vs.create_collection("docs", 2, entity::metric::l2, ec, d);
  }));
  ok([&](auto& ec, auto& d) {
    vs.upsert("docs", "a", std::vector<float>{0, 0}, json{{"t", 1}}, ec, d);
  });
  ok([&](auto& ec, auto& d) {
    vs.upsert_batch("docs", {{"b", {1, 0}, json::object()}, {"c", {5, 5}, json{{"t", 1}}}}, ec, d);
  });
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return vs.count("docs", ec, d); }), 3);
  auto item = ok([&](auto& ec, auto& d) { return vs.get("docs", "a", ec, d); });
  ASSERT_TRUE(item);
  EXPECT_EQ(item->metadata, json({{"t", 1}}));
  EXPECT_EQ(ok([&](auto& ec, auto& d) { return vs.get("docs", "zz", ec, d); }), std::nullopt);
  auto near = ok([&](auto& ec, auto& d) {
    return vs.search("docs", {0.9f, 0}, 2, json::object(), entity::search_mode::exact, ec, d);
  });
  ASSERT_EQ(near.size(), 2u);
  EXPECT_EQ(near[0].id, "b");
  EXPECT_EQ(near[1].id, "a");
  auto filtered = ok([&](auto& ec, auto& d) {
    return vs.search("docs", {0.9f, 0}, 3, json{{"t", 1}}, entity::search_mode::exact, ec, d);
  });
  ASSERT_EQ(filtered.size(), 2u);
  EXPECT_EQ(filtered[0].id, "a");
  auto list = ok([&](auto& ec, auto& d) { return vs.list_collections(ec, d); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].count, 3);
  ok([&](auto& ec, auto& d) {
    vs.transaction([](entity::session&, entity::vector_writes& w) { w.erase("docs", {"c"}); }, ec,
                   d);
  });
  EXPECT_TRUE(ok([&](auto& ec, auto& d) { return vs.erase("docs", "b", ec, d); }));
  EXPECT_FALSE(ok([&](auto& ec, auto& d) { return vs.erase("docs", "b", ec, d); }));
  EXPECT_EQ(vs.count("docs"), 1);
  EXPECT_TRUE(ok([&](auto& ec, auto& d) { return vs.drop_collection("docs", ec, d); }));
  EXPECT_FALSE(ok([&](auto& ec, auto& d) { return vs.drop_collection("docs", ec, d); }));
}

TEST_P(Forms, VectorStoreErrorCodeFormsReportFailuresAndWriteNothing) {
  auto db = open();
  vector_store vs(db);
  fails_with(errc::invalid_argument, [&](auto& ec, auto& d) {
    EXPECT_FALSE(vs.create_collection("no spaces", 2, entity::metric::l2, ec, d));
  });
  fails_with(errc::not_found, [&](auto& ec, auto& d) { EXPECT_EQ(vs.count("nothing", ec, d), 0); });
  vs.create_collection("docs", 2);
  fails_with(errc::dimension_mismatch, [&](auto& ec, auto& d) {
    vs.upsert("docs", "a", std::vector<float>{1, 2, 3}, json::object(), ec, d);
  });
  fails_with(errc::dimension_mismatch, [&](auto& ec, auto& d) {
    EXPECT_TRUE(
        vs.search("docs", {1, 2, 3}, 1, json::object(), entity::search_mode::approximate, ec, d)
            .empty());
  });
  // A body that throws rolls back its own statements and its vector writes.
  auto diag = fails_with(errc::invalid_argument, [&](auto& ec, auto& d) {
    vs.transaction(
        [](entity::session&, entity::vector_writes& w) {
          w.upsert("docs", {{"x", {1, 0}, json::object()}});
          throw entity::error(errc::invalid_argument, {"the body gave up", {}});
        },
        ec, d);
  });
  EXPECT_EQ(diag.message, "the body gave up");
  EXPECT_EQ(vs.count("docs"), 0);
}

// The engine not started yet: every error_code& form reports not_started and returns empty.
TEST(FormsSqlite, EveryMemoryFormReportsAnEngineThatIsNotStarted) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("m.db");
  auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
  memory mem{entity::database(infra)};
  auto not_started = [](auto&& f) {
    error_code ec;
    diagnostics diag;
    f(ec, diag);
    EXPECT_EQ(ec, errc::not_started) << ec.message();
  };
  not_started([&](auto& ec, auto& d) { mem.store("k", 1, ec, d); });
  not_started([&](auto& ec, auto& d) { EXPECT_EQ(mem.load("k", ec, d), std::nullopt); });
  not_started([&](auto& ec, auto& d) { EXPECT_FALSE(mem.exists("k", ec, d)); });
  not_started([&](auto& ec, auto& d) { EXPECT_FALSE(mem.erase("k", ec, d)); });
  not_started([&](auto& ec, auto& d) { EXPECT_TRUE(mem.keys("%", ec, d).empty()); });
  not_started([&](auto& ec, auto& d) { EXPECT_EQ(mem.clear("%", ec, d), 0); });
  not_started([&](auto& ec, auto& d) { EXPECT_EQ(mem.size(ec, d), 0); });
  not_started([&](auto& ec, auto& d) { mem.batch_store({{"k", 1}}, ec, d); });
  not_started([&](auto& ec, auto& d) { EXPECT_TRUE(mem.batch_load({"k"}, ec, d).empty()); });
  not_started([&](auto& ec, auto& d) { EXPECT_TRUE(mem.recall({1, 0}, 1, ec, d).empty()); });
  // Once started, the same memory works: a failed first use leaves no state behind.
  infra->startup();
  error_code ec;
  diagnostics diag;
  mem.store("k", 1, ec, diag);
  EXPECT_FALSE(ec) << diag.to_string();
  EXPECT_EQ(mem.load("k"), json(1));
  infra->shutdown();
}

// The async form of an operation that fails before it reaches the database completes later,
// never inside the call that starts it, with the same code the other forms give.
ENTITY_CONCURRENT_TEST(FormsSqlite, AnAsyncFailureBeforeAnyStatementCompletesOutsideTheCall) {
  entity::test::sqlite_file file("m.db");
  auto& infra = file.infra;
  memory mem{entity::database(infra)};
  std::promise<std::pair<error_code, std::thread::id>> done;
  entity::diagnostics diag;
  mem.async_store("bad", std::string("\xff"), diag, [&](error_code ec) {
    done.set_value({ec, std::this_thread::get_id()});
  });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [ec, thread] = f.get();
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_NE(thread, std::this_thread::get_id());  // a plain callback: not inside the call
  EXPECT_FALSE(diag.message.empty());
  EXPECT_FALSE(mem.exists("bad"));
  infra->shutdown();
}

}  // namespace
