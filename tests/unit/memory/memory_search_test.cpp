// memory::search on every backend: a filter over the values of one view, in key order, one page
// at a time; malformed queries refused before anything runs. The filter language itself is
// tested on both dialects in tests/unit/common/json_filter_semantics_test.cpp.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>
#include <vector>

#include "backends.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::errc;
using entity::json;
using entity::memory;
using entity::search_query;
using entity::test::keys_of;

class MemorySearch : public entity::test::backend_test {
 protected:
  memory make() {
    memory mem(open());
    mem.batch_store({
        {"ada", {{"name", "Ada"}, {"age", 36}, {"city", "London"}, {"tags", {"math", "code"}}}},
        {"bob", {{"name", "Bob"}, {"age", 17}, {"city", "Oslo"}, {"tags", {"ski"}}}},
        {"cy", {{"name", "Cy"}, {"age", 52}, {"city", "Oslo"}}},
        {"dee", {{"name", "Dee"}, {"age", 29.5}, {"prefs", {{"seat", "aisle"}}}}},
        {"eve", "just a string"},
    });
    // Another scope's items match the same filters and must never be seen from the whole
    // memory's scope views, nor the whole memory's from them.
    mem.scope("other").batch_store({{"ada", {{"city", "Oslo"}, {"age", 99}}}});
    return mem;
  }

  static search_query where(json filter, std::int64_t limit = 10, std::int64_t offset = 0) {
    search_query q;
    q.filter = std::move(filter);
    q.limit = limit;
    q.offset = offset;
    return q;
  }
};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND_AND_COLLATION(MemorySearch);

TEST_P(MemorySearch, AFilterFindsTheItemsWhoseValuesMatchInKeyOrder) {
  memory mem = make();
  auto hits = mem.search(where({{"city", "Oslo"}}));
  ASSERT_EQ(keys_of(hits), (std::vector<std::string>{"bob", "cy", "other:ada"}));
  EXPECT_EQ(hits[0].value["name"], "Bob");  // the whole value comes back
  EXPECT_EQ(keys_of(mem.search(where({{"age", {{"$gte", 29}, {"$lt", 40}}}}))),
            (std::vector<std::string>{"ada", "dee"}));
  EXPECT_EQ(keys_of(mem.search(where({{"tags", {{"$contains", "ski"}}}}))),
            (std::vector<std::string>{"bob"}));
  EXPECT_EQ(keys_of(mem.search(where({{"prefs.seat", "aisle"}}))),
            (std::vector<std::string>{"dee"}));
  EXPECT_EQ(keys_of(mem.search(where({{"$or", {{{"age", {{"$lt", 18}}}}, {{"name", "Cy"}}}}}))),
            (std::vector<std::string>{"bob", "cy"}));
  EXPECT_TRUE(mem.search(where({{"city", "Paris"}})).empty());
}

TEST_P(MemorySearch, AScopeSearchesItsOwnItemsOnly) {
  memory mem = make();
  memory other = mem.scope("other");
  auto hits = other.search(where({{"city", "Oslo"}}));
  ASSERT_EQ(keys_of(hits), (std::vector<std::string>{"ada"}));  // relative to the scope
  EXPECT_EQ(hits[0].value["age"], 99);
  EXPECT_TRUE(mem.scope("nobody").search(where(json::object())).empty());
}

TEST_P(MemorySearch, TheEmptyFilterMatchesEveryItemAndPagesByKey) {
  memory mem = make();
  EXPECT_EQ(keys_of(mem.search(where(json::object()))),
            (std::vector<std::string>{"ada", "bob", "cy", "dee", "eve", "other:ada"}));
  EXPECT_EQ(keys_of(mem.search(search_query{})).size(), 6u);  // the defaults
  EXPECT_EQ(keys_of(mem.search(where(json::object(), 2))),
            (std::vector<std::string>{"ada", "bob"}));
  EXPECT_EQ(keys_of(mem.search(where(json::object(), 2, 2))),
            (std::vector<std::string>{"cy", "dee"}));
  EXPECT_EQ(keys_of(mem.search(where(json::object(), 2, 5))),
            (std::vector<std::string>{"other:ada"}));
  EXPECT_TRUE(mem.search(where(json::object(), 2, 6)).empty());
}

// The filter applies before the limit: a filter that matches at least `limit` items always
// yields `limit` of them, however many items it does not match come first.
TEST_P(MemorySearch, AFilterMatchingAtLeastLimitItemsYieldsLimit) {
  memory mem(open());
  memory::items items;
  for (int i = 0; i < 300; ++i)
    items.emplace_back(entity::test::numbered_key(i), json{{"even", i % 2 == 0}, {"i", i}});
  mem.batch_store(std::move(items));
  auto hits = mem.search(where({{"even", false}, {"i", {{"$gte", 250}}}}, 20));
  ASSERT_EQ(hits.size(), 20u);
  for (std::size_t n = 0; n < hits.size(); ++n)
    EXPECT_EQ(hits[n].value["i"], 251 + 2 * static_cast<int>(n));
}

TEST_P(MemorySearch, AMalformedQueryIsRefusedNamingWhatIsWrong) {
  memory mem = make();
  auto refused = [&](const search_query& q) {
    entity::error_code ec;
    entity::diagnostics diag;
    auto hits = mem.search(q, ec, diag);
    EXPECT_TRUE(hits.empty());
    EXPECT_EQ(ec, errc::invalid_argument) << diag.message;
    return diag.message;
  };
  EXPECT_NE(refused(where({{"age", {{"$regex", "x"}}}})).find("$regex"), std::string::npos);
  EXPECT_NE(refused(where({{"$or", json::array()}})).find("$or"), std::string::npos);
  EXPECT_NE(refused(where({{"a'); DROP TABLE memory; --", 1}})).find("path"), std::string::npos);
  EXPECT_NE(refused(where(json::array())).find("filter"), std::string::npos);
  EXPECT_NE(refused(where(json::object(), 0)).find("limit"), std::string::npos);
  EXPECT_NE(refused(where(json::object(), memory::max_search_limit + 1)).find("limit"),
            std::string::npos);
  EXPECT_NE(refused(where(json::object(), 10, -1)).find("offset"), std::string::npos);
  EXPECT_EQ(mem.size(), 6);  // nothing was touched
  EXPECT_THROW(mem.search(where({{"age", {{"$in", 3}}}})), entity::error);
}

TEST_P(MemorySearch, TheAsyncFormFindsTheSameAndRefusesTheSame) {
  memory mem = make();
  asio::io_context io;
  auto found = mem.async_search(where({{"city", "Oslo"}}), asio::use_future);
  auto bad = mem.async_search(where({{"city", {{"$nope", 1}}}}), asio::use_future);
  io.run();
  EXPECT_EQ(keys_of(found.get()), (std::vector<std::string>{"bob", "cy", "other:ada"}));
  try {
    bad.get();
    ADD_FAILURE() << "a malformed filter was not refused";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
}

TEST_P(MemorySearch, AValueThatIsNotJsonFailsNamingItsKey) {
  auto db = open();
  memory mem(db);
  mem.store("fine", {{"a", 1}});
  db.execute("INSERT INTO memory (key, value) VALUES (?, ?)", {"broken", "{not json"});
  entity::error_code ec;
  entity::diagnostics diag;
  // Whichever reads it first, the backend's JSON functions or the decoder, the search fails
  // and says so: no item is silently skipped.
  auto hits = mem.search(where(json::object()), ec, diag);
  EXPECT_TRUE(ec) << "a value that is not JSON went unnoticed";
  EXPECT_TRUE(hits.empty());
  // No filter reads the values in SQL: the decoder meets it, and names the key.
  EXPECT_EQ(ec, errc::decode_error) << diag.message;
  EXPECT_NE(diag.message.find("broken"), std::string::npos) << diag.message;
  // A filter reads it in SQL: the backend's JSON functions refuse it.
  EXPECT_TRUE(mem.search(where({{"a", 1}}), ec, diag).empty());
  EXPECT_TRUE(ec) << "a value that is not JSON went unnoticed";
}

}  // namespace
