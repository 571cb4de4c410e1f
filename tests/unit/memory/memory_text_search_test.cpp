// Full-text and hybrid search on every backend: the words of the string leaves, best first; the
// index built by the first text search and kept by every write after it (replace, erase, clear,
// scope clear, another program's writes); the filter honoured before the limit; text and vector
// fused by reciprocal rank.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
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

class MemoryTextSearch : public entity::test::backend_test {
 protected:
  memory make(entity::memory_params p = {}) {
    if (!db_) db_ = open();
    return memory(*db_, std::move(p));
  }
  const entity::database& db() const { return *db_; }
  std::optional<entity::database> db_;

  static search_query text(std::string t, std::int64_t limit = 10, std::int64_t offset = 0) {
    search_query q;
    q.text = std::move(t);
    q.limit = limit;
    q.offset = offset;
    return q;
  }
  static std::set<std::string> set_of(const memory::search_results& hits) {
    std::set<std::string> keys;
    for (const auto& h : hits) keys.insert(h.key);
    return keys;
  }
};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(MemoryTextSearch);

TEST_P(MemoryTextSearch, FindsTheWordsOfStringLeavesBestFirst) {
  memory mem = make();
  mem.batch_store({
      {"coffee", {{"note", "Ada likes coffee"}, {"tags", {"drink", "morning"}}}},
      {"coffee2", {{"note", "coffee coffee coffee, always coffee"}}},
      {"tea", {{"note", "Bob drinks tea"}, {"n", 3}}},
      {"nested", {{"a", {{"b", {{"c", "deep COFFEE inside"}}}}}}},
      {"number", {{"zebrakey", 3}, {"n", 7}}},  // keys are not text, numbers are not text
      {"plain", "a bare string about coffee"},
  });
  auto hits = mem.search(text("coffee"));
  EXPECT_EQ(set_of(hits), (std::set<std::string>{"coffee", "coffee2", "nested", "plain"}));
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].key, "coffee2");  // the most occurrences ranks first
  for (std::size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i - 1].score, hits[i].score);
  for (const auto& h : hits) {
    EXPECT_TRUE(h.matched_text);
    EXPECT_FALSE(h.matched_vector);
    EXPECT_GT(h.score, 0);
  }
  EXPECT_EQ(hits[0].value["note"], "coffee coffee coffee, always coffee");
  // Any of the words; ASCII case ignored; punctuation splits words.
  EXPECT_EQ(set_of(mem.search(text("TEA, morning!"))), (std::set<std::string>{"coffee", "tea"}));
  EXPECT_TRUE(mem.search(text("absent")).empty());
  // A word in an object key only is not indexed.
  EXPECT_TRUE(mem.search(text("zebrakey")).empty());
  EXPECT_TRUE(mem.search(text("7")).empty());
}

TEST_P(MemoryTextSearch, TheIndexFollowsReplaceEraseClearAndScopeClear) {
  memory mem = make();
  mem.store("a", json{{"t", "apple"}});
  mem.scope("s").store("b", json{{"t", "apple"}});
  EXPECT_EQ(keys_of(mem.search(text("apple"))).size(), 2u);  // builds the index
  mem.store("a", json{{"t", "banana"}});                     // replaced
  mem.store("c", json{{"t", "apple pie"}});                  // new after the build
  EXPECT_EQ(set_of(mem.search(text("apple"))), (std::set<std::string>{"c", "s:b"}));
  EXPECT_EQ(keys_of(mem.search(text("banana"))), (std::vector<std::string>{"a"}));
  mem.erase("c");
  EXPECT_EQ(keys_of(mem.search(text("apple"))), (std::vector<std::string>{"s:b"}));
  mem.scope("s").clear();
  EXPECT_TRUE(mem.search(text("apple")).empty());
  mem.batch_store({{"x", json{{"t", "cherry"}}}, {"y", json{{"t", "cherry"}}}});
  EXPECT_EQ(keys_of(mem.search(text("cherry"))).size(), 2u);
  mem.clear("x");
  EXPECT_EQ(keys_of(mem.search(text("cherry"))), (std::vector<std::string>{"y"}));
  mem.clear();
  EXPECT_TRUE(mem.search(text("cherry banana")).empty());
  // A write straight into the seed's table (another program) is indexed by the triggers.
  db().execute("INSERT INTO memory (key, value) VALUES (?, ?)", {"raw", R"({"t": "durian"})"});
  EXPECT_EQ(keys_of(mem.search(text("durian"))), (std::vector<std::string>{"raw"}));
  db().execute("DELETE FROM memory WHERE key = ?", {"raw"});
  EXPECT_TRUE(mem.search(text("durian")).empty());
}

TEST_P(MemoryTextSearch, ItemsWrittenBeforeTheIndexAreIndexedOnFirstUse) {
  // The Python original's table, with rows and nothing beside it.
  (void)make();
  const entity::database& d = db();
  d.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)");
  d.execute("INSERT INTO memory (key, value) VALUES (?, ?), (?, ?)",
            {"old1", R"({"note": "written long ago"})", "old2", R"("also long")"});
  memory mem = make();
  EXPECT_EQ(set_of(mem.search(text("long"))), (std::set<std::string>{"old1", "old2"}));
}

TEST_P(MemoryTextSearch, TheFilterHoldsBeforeTheLimit) {
  memory mem = make();
  memory::items items;
  // 60 items say "report"; only every 10th is from "ops": a filter that selects 6.
  for (int i = 0; i < 60; ++i)
    items.emplace_back("r" + std::to_string(100 + i),
                       json{{"text", "weekly report"}, {"team", i % 10 == 0 ? "ops" : "dev"}});
  mem.batch_store(items);
  search_query q = text("report", 5);
  q.filter = json{{"team", "ops"}};
  auto hits = mem.search(q);
  ASSERT_EQ(hits.size(), 5u);
  for (const auto& h : hits) EXPECT_EQ(h.value["team"], "ops");
  q.offset = 5;
  EXPECT_EQ(mem.search(q).size(), 1u);
  // Equal scores go by key.
  q = text("report", 3);
  EXPECT_EQ(keys_of(mem.search(q)), (std::vector<std::string>{"r100", "r101", "r102"}));
}

TEST_P(MemoryTextSearch, AScopeSearchesOnlyItsOwnItems) {
  memory mem = make();
  mem.scope("u1").store("k", json{{"t", "secret plan"}});
  mem.scope("u1_").store("k", json{{"t", "secret plan"}});
  mem.scope("u2").store("k", json{{"t", "secret plan"}});
  EXPECT_EQ(keys_of(mem.scope("u1").search(text("secret"))), (std::vector<std::string>{"k"}));
  EXPECT_EQ(mem.search(text("secret")).size(), 3u);
}

TEST_P(MemoryTextSearch, TextFieldsLimitWhatIsIndexed) {
  entity::memory_params p;
  p.text_fields = {"title", "body.text"};
  memory mem = make(p);
  mem.store("a", json{{"title", "alpha"}, {"other", "beta"}, {"body", {{"text", "gamma"}}}});
  EXPECT_EQ(keys_of(mem.search(text("alpha"))), (std::vector<std::string>{"a"}));
  EXPECT_EQ(keys_of(mem.search(text("gamma"))), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(mem.search(text("beta")).empty());
  // Another set of fields rebuilds the index for them.
  memory all = make();
  EXPECT_EQ(keys_of(all.search(text("beta"))), (std::vector<std::string>{"a"}));
}

TEST_P(MemoryTextSearch, TextAndVectorAreFusedByReciprocalRank) {
  memory mem = make();
  mem.store("both", json{{"t", "paris trip"}}, std::vector<float>{1, 0, 0});
  mem.store("text-only", json{{"t", "paris paris paris"}}, std::vector<float>{0, 0, 1});
  mem.store("vector-only", json{{"t", "london"}}, std::vector<float>{0.9f, 0.1f, 0});
  mem.store("neither", json{{"t", "rome"}}, std::vector<float>{0, 1, 0});
  search_query q = text("paris", 3);
  q.vector = {1, 0, 0};
  auto hits = mem.search(q);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].key, "both");
  EXPECT_TRUE(hits[0].matched_text);
  EXPECT_TRUE(hits[0].matched_vector);
  // "both" is 2nd in text and 1st in vector.
  EXPECT_DOUBLE_EQ(hits[0].score, 1 / (memory::rrf_k + 2) + 1 / (memory::rrf_k + 1));
  EXPECT_EQ(set_of(hits), (std::set<std::string>{"both", "text-only", "vector-only"}));
  // Vector only: nearest first, scored by similarity, the filter honoured.
  search_query v;
  v.vector = {1, 0, 0};
  v.limit = 2;
  v.filter = json{{"t", {{"$ne", "paris trip"}}}};
  hits = mem.search(v);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].key, "vector-only");
  EXPECT_TRUE(hits[0].matched_vector);
  EXPECT_FALSE(hits[0].matched_text);
  EXPECT_GT(hits[0].score, hits[1].score);
  EXPECT_NEAR(hits[0].score, 0.9 / std::sqrt(0.82), 1e-4);
  // A vector of another dimension.
  v.vector = {1, 0};
  EXPECT_THROW(mem.search(v), entity::error);
}

TEST_P(MemoryTextSearch, AVectorSearchWithoutEmbeddingsFindsNothing) {
  memory mem = make();
  mem.store("a", json{{"t", "x"}});
  search_query q;
  q.vector = {1, 2};
  EXPECT_TRUE(mem.search(q).empty());
  q.text = "x";
  EXPECT_EQ(keys_of(mem.search(q)), (std::vector<std::string>{"a"}));
}

TEST_P(MemoryTextSearch, BadTextIsRefusedAndQuotesAreJustCharacters) {
  memory mem = make();
  mem.store("a", json{{"t", "it's \"quoted\" OR NOT"}});
  EXPECT_EQ(keys_of(mem.search(text("quoted"))), (std::vector<std::string>{"a"}));
  // Operators of the backends' query languages are words or separators here.
  EXPECT_EQ(keys_of(mem.search(text("\" OR a) | !b & NEAR(c"))), (std::vector<std::string>{"a"}));
  try {
    mem.search(text("!!! ,,,"));
    ADD_FAILURE() << "a text without words was accepted";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
  EXPECT_EQ(mem.size(), 1);
}

TEST_P(MemoryTextSearch, TheAsyncFormSearchesText) {
  memory mem = make();
  mem.store("a", json{{"t", "hello world"}});
  auto f = mem.async_search(text("world"), asio::use_future);
  EXPECT_EQ(keys_of(f.get()), (std::vector<std::string>{"a"}));
}

// Property: over random documents of a small vocabulary, a text search (with and without a
// filter, a page at a time) finds exactly the items that hold any of the words, as counted
// here; scores never increase down the list.
TEST_P(MemoryTextSearch, FindsWhatABruteForceCountFinds) {
  memory mem = make();
  const std::vector<std::string> vocabulary = {"alpha",   "Bravo", "charlie", "delta", "echo",
                                               "foxtrot", "golf",  "hotel",   "india", "juliet"};
  std::mt19937 rng(20261201);
  auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  struct doc {
    std::set<std::string> words;  // lowered
    int group;
  };
  std::map<std::string, doc> docs;
  memory::items items;
  for (int i = 0; i < 200; ++i) {
    std::string key = "d" + std::to_string(1000 + i);
    doc d{{}, static_cast<int>(pick(3))};
    json parts = json::array();
    const std::size_t n = 1 + pick(4);
    for (std::size_t j = 0; j < n; ++j) {
      std::string w = vocabulary[pick(vocabulary.size())];
      std::string lowered = w;
      for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      d.words.insert(lowered);
      parts.push_back(w + (j % 2 ? "," : "!"));
    }
    items.emplace_back(key, json{{"parts", parts}, {"group", d.group}});
    docs.emplace(key, std::move(d));
  }
  mem.batch_store(items);
  for (int round = 0; round < 25; ++round) {
    std::vector<std::string> query_words;
    const std::size_t n = 1 + pick(2);
    for (std::size_t j = 0; j < n; ++j) query_words.push_back(vocabulary[pick(vocabulary.size())]);
    const int group = static_cast<int>(pick(4));  // 3: no filter
    std::set<std::string> expected;
    for (const auto& [key, d] : docs) {
      if (group < 3 && d.group != group) continue;
      for (std::string w : query_words) {
        for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (d.words.count(w)) expected.insert(key);
      }
    }
    std::string q_text;
    for (const auto& w : query_words) q_text += w + " ";
    std::set<std::string> found;
    double last = std::numeric_limits<double>::infinity();
    for (std::int64_t offset = 0;; offset += 7) {
      search_query q = text(q_text, 7, offset);
      if (group < 3) q.filter = json{{"group", group}};
      auto page = mem.search(q);
      for (const auto& h : page) {
        EXPECT_TRUE(found.insert(h.key).second) << "twice: " << h.key;
        EXPECT_LE(h.score, last + 1e-12);
        last = h.score;
      }
      if (page.size() < 7) break;
    }
    EXPECT_EQ(found, expected) << "query '" << q_text << "', group " << group;
  }
}

}  // namespace
