// `entitydb memory`: every verb through the real binary, scopes, and JSON Lines import/export
// (all or nothing on import, byte-identical round trips), times to live and sweeps, item times,
// scope listing, and search by filter, words, vector and time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "cli_postgres.hpp"
#include "test_support.hpp"

namespace {

using entity::test::command_line;
using entity::test::command_result;
using entity::test::lines_of;
using entity::test::run_command;
using entity::test::shell_quote;
using entity::test::temp_dir;
using nlohmann::json;

command_result entitydb(const std::vector<std::string>& args, const std::string& input = {}) {
  return run_command(command_line(ENTITYDB_BIN, args), input);
}

// True once `done` holds, asking every 50 ms for at most 10 s: a time to live of 0.3 s has run
// out well before, even on a loaded machine, and a passing test does not wait longer than it
// must.
bool eventually(const std::function<bool()>& done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// Each line of `out` parsed as JSON.
std::vector<json> parse_lines(const std::string& out) {
  std::vector<json> parsed;
  for (const std::string& line : lines_of(out)) parsed.push_back(json::parse(line));
  return parsed;
}

// The first field of every line of `out` (fields are separated by tabs).
std::vector<std::string> first_fields(const std::string& out) {
  std::vector<std::string> keys;
  for (const std::string& line : lines_of(out)) keys.push_back(line.substr(0, line.find('\t')));
  return keys;
}

// Milliseconds since the Unix epoch of a time the tool prints, after checking its form:
// 2026-12-01T10:00:00.000Z.
std::int64_t millis_of(const std::string& iso) {
  static const std::regex form(R"((\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z)");
  std::smatch m;
  if (!std::regex_match(iso, m, form)) {
    ADD_FAILURE() << "not an ISO-8601 UTC time with milliseconds: " << iso;
    return 0;
  }
  using namespace std::chrono;
  auto n = [&](int i) { return std::stoi(m[i].str()); };
  const sys_days day{year{n(1)} / month{static_cast<unsigned>(n(2))} /
                     std::chrono::day{static_cast<unsigned>(n(3))}};
  return duration_cast<milliseconds>(
             (day + hours(n(4)) + minutes(n(5)) + seconds(n(6)) + milliseconds(n(7)))
                 .time_since_epoch())
      .count();
}

std::int64_t now_millis() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// A memory file in a fresh folder, driven through `entitydb memory VERB --db FILE ...`.
class CliMemory : public testing::Test {
 protected:
  command_result memory(const std::string& verb, std::vector<std::string> args = {},
                        const std::string& input = {}) {
    return memory_in(db, verb, std::move(args), input);
  }
  command_result memory_in(const std::string& file, const std::string& verb,
                           std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"memory", verb, "--db", file});
    return entitydb(args, input);
  }
  void put(const std::string& key, const std::string& value, std::vector<std::string> extra = {}) {
    extra.push_back(key);
    extra.push_back(value);
    auto r = memory("put", extra);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir.file(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  temp_dir dir;
  std::string db = dir.file("memory.db");
};

TEST_F(CliMemory, PutGetRoundTrip) {
  std::vector<json> values = {
      json{{"goal", "book a flight"}, {"done", false}, {"legs", {1, 2.5, "three"}}},
      json::array(),
      json("text with \"quotes\" and ünïcode"),
      json(-12),
      json(0.1),
      json(true),
      json(nullptr)};
  for (std::size_t i = 0; i < values.size(); ++i) put("k" + std::to_string(i), values[i].dump());
  for (std::size_t i = 0; i < values.size(); ++i) {
    auto r = memory("get", {"k" + std::to_string(i)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, values[i].dump() + "\n");
    EXPECT_EQ(json::parse(r.out), values[i]);
  }
}

TEST_F(CliMemory, PutReplaces) {
  put("k", "1");
  put("k", "{\"v\":2}");
  EXPECT_EQ(memory("get", {"k"}).out, "{\"v\":2}\n");
  EXPECT_EQ(memory("size").out, "1\n");
}

TEST_F(CliMemory, GetOfMissingKeyFails) {
  put("present", "1");
  auto r = memory("get", {"K"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "error: no such key: K\n");
}

TEST_F(CliMemory, InvalidJsonFailsAndStoresNothing) {
  for (std::string bad : {"hello", "{\"a\":", "[1,]", ""}) {
    auto r = memory("put", {"k", bad});
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("JSON"), std::string::npos) << r.err;
  }
  EXPECT_EQ(memory("get", {"k"}).exit_code, 1);
}

TEST_F(CliMemory, DelRemovesAndFailsWhenMissing) {
  put("a", "1");
  put("b", "2");
  auto r = memory("del", {"a"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(memory("get", {"a"}).exit_code, 1);
  EXPECT_EQ(memory("get", {"b"}).out, "2\n");
  r = memory("del", {"a"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: no such key: a\n");
}

TEST_F(CliMemory, KeysAreSortedAndFilteredByPattern) {
  for (std::string k : {"user:2", "task:1", "user:10", "user:1"}) put(k, "0");
  EXPECT_EQ(memory("keys").out, "task:1\nuser:1\nuser:10\nuser:2\n");
  EXPECT_EQ(memory("keys", {"user:1%"}).out, "user:1\nuser:10\n");
  EXPECT_EQ(memory("keys", {"user:_"}).out, "user:1\nuser:2\n");
  auto none = memory("keys", {"nothing%"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_EQ(none.out, "");
}

TEST_F(CliMemory, SearchByFilterPrintsKeyScoreAndValueByKey) {
  put("b", R"({"city": "Oslo", "age": 17})");
  put("a", R"({"city": "Oslo", "age": 36})");
  put("c", R"({"city": "Rome", "age": 52})");
  put("x", R"({"city": "Oslo"})", {"--scope", "other"});
  auto r = memory("search", {"--filter", R"({"city": "Oslo"})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "a\t0\t{\"age\":36,\"city\":\"Oslo\"}\n"
            "b\t0\t{\"age\":17,\"city\":\"Oslo\"}\n"
            "other:x\t0\t{\"city\":\"Oslo\"}\n");
  EXPECT_EQ(memory("search", {"--filter", R"({"age": {"$gte": 30}})", "--limit", "1"}).out,
            "a\t0\t{\"age\":36,\"city\":\"Oslo\"}\n");
  EXPECT_EQ(memory("search", {"--offset", "3"}).out, "other:x\t0\t{\"city\":\"Oslo\"}\n");
  EXPECT_EQ(memory("search", {"--scope", "other"}).out, "x\t0\t{\"city\":\"Oslo\"}\n");
  auto bad = memory("search", {"--filter", R"({"age": {"$regex": "x"}})"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("$regex"), std::string::npos) << bad.err;
  auto not_json = memory("search", {"--filter", "{city"});
  EXPECT_EQ(not_json.exit_code, 1);
  EXPECT_NE(not_json.err.find("the filter"), std::string::npos) << not_json.err;
  EXPECT_NE(memory("search", {"--limit", "0"}).exit_code, 0);
}

// A key with a line break stays on its line in the text form; --json has it exactly.
TEST_F(CliMemory, SearchKeepsOneLinePerItem) {
  put("two\nlines", "1");
  EXPECT_EQ(memory("search").out, "two\\nlines\t0\t1\n");
  auto hits = parse_lines(memory("search", {"--json"}).out);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["key"], "two\nlines");
}

TEST_F(CliMemory, SearchJsonHasKeyValueScoreMatchedAndTimes) {
  const std::int64_t before = now_millis();
  put("a", R"({"note": "aisle seat"})");
  put("b", R"({"note": "window"})");
  const std::int64_t after = now_millis();
  auto r = memory("search", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto hits = parse_lines(r.out);
  ASSERT_EQ(hits.size(), 2u) << r.out;
  EXPECT_EQ(hits[0]["key"], "a");
  EXPECT_EQ(hits[0]["value"], json::parse(R"({"note": "aisle seat"})"));
  EXPECT_EQ(hits[0]["score"], 0);
  EXPECT_EQ(hits[0]["matched"], json::array());
  for (const json& hit : hits) {
    std::vector<std::string> fields;
    for (const auto& [name, field] : hit.items()) fields.push_back(name);
    EXPECT_EQ(fields,
              (std::vector<std::string>{"created", "key", "matched", "score", "updated", "value"}));
    ASSERT_TRUE(hit["created"].is_string()) << hit;
    const std::int64_t created = millis_of(hit["created"]);
    EXPECT_GE(created, before);
    EXPECT_LE(created, after);
    EXPECT_EQ(hit["updated"], hit["created"]);
  }
  // The fields come in a fixed order, key and value first.
  EXPECT_EQ(
      lines_of(r.out)[1].rfind("{\"key\":\"b\",\"value\":{\"note\":\"window\"},\"score\":", 0), 0u)
      << r.out;

  auto text = parse_lines(memory("search", {"--json", "--text", "seat"}).out);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0]["key"], "a");
  EXPECT_EQ(text[0]["matched"], json::array({"text"}));
  EXPECT_GT(text[0]["score"].get<double>(), 0);

  // The lines read back as an import: the same items.
  std::string fresh = dir.file("fresh.db");
  auto imported = memory_in(fresh, "import", {"-"}, r.out);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(imported.out, "2\n");
  EXPECT_EQ(memory_in(fresh, "export", {}).out, memory("export").out);
}

// An item written by a program that records no times (the Python original writes only key and
// value) has none: null in --json, "unknown" in get --times, and no time bound matches it.
TEST_F(CliMemory, ItemsWithoutTimesShowNone) {
  put("timed", "1");
  auto ins = entitydb(
      {"sql", "--db", db, "INSERT INTO memory (key, value) VALUES (?, ?)", "untimed", "2"});
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  auto hits = parse_lines(memory("search", {"--json"}).out);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[1]["key"], "untimed");
  EXPECT_TRUE(hits[1]["created"].is_null()) << hits[1];
  EXPECT_TRUE(hits[1]["updated"].is_null()) << hits[1];
  EXPECT_EQ(memory("get", {"untimed", "--times"}).out,
            "2\ncreated\tunknown\nupdated\tunknown\nexpires\tnever\n");
  EXPECT_EQ(memory("keys", {"--created-after", "0"}).out, "timed\n");
  EXPECT_EQ(memory("keys", {"--created-before", "9999-12-31T23:59:59Z"}).out, "timed\n");
}

TEST_F(CliMemory, SearchByTextFindsTheWords) {
  put("flight", R"({"title": "Flight to Oslo", "note": "aisle seat, please"})");
  put("hotel", R"({"title": "Hotel in Rome", "tags": ["quiet room"]})");
  put("train", R"({"title": "Night train", "note": {"body": "window SEAT"}})");
  put("number", "42");
  put("other", R"({"title": "seat"})", {"--scope", "s"});

  auto r = memory("search", {"--text", "seat"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> keys = first_fields(r.out);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"flight", "s:other", "train"})) << r.out;
  for (const std::string& line : lines_of(r.out)) {
    // KEY<TAB>SCORE<TAB>VALUE: a positive score, the value as JSON.
    const auto tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
    ASSERT_NE(tab2, std::string::npos) << line;
    EXPECT_GT(std::stod(line.substr(tab1 + 1, tab2 - tab1 - 1)), 0) << line;
    EXPECT_NO_THROW(json::parse(line.substr(tab2 + 1))) << line;
  }
  // Any of the words, in any ASCII case; a word inside a list is text too.
  keys = first_fields(memory("search", {"--text", "OSLO rome"}).out);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"flight", "hotel"}));
  EXPECT_EQ(first_fields(memory("search", {"--text", "quiet"}).out),
            (std::vector<std::string>{"hotel"}));
  EXPECT_EQ(memory("search", {"--text", "nowhere"}).out, "");
  // The filter and the scope narrow it.
  EXPECT_EQ(
      first_fields(
          memory("search", {"--text", "seat", "--filter", R"({"title": "Night train"})"}).out),
      (std::vector<std::string>{"train"}));
  EXPECT_EQ(first_fields(memory("search", {"--text", "seat", "--scope", "s"}).out),
            (std::vector<std::string>{"other"}));
  EXPECT_EQ(lines_of(memory("search", {"--text", "seat", "--limit", "2"}).out).size(), 2u);
}

// Once a text search has built the index, every write keeps it: a replaced value is found by
// its new words only, an erased one not at all.
TEST_F(CliMemory, SearchByTextFollowsEveryWriteAfterTheFirstSearch) {
  put("hotel", R"({"title": "Hotel in Rome"})");
  put("gone", R"({"title": "Rome again"})");
  std::vector<std::string> found = first_fields(memory("search", {"--text", "rome"}).out);
  std::sort(found.begin(), found.end());
  EXPECT_EQ(found, (std::vector<std::string>{"gone", "hotel"}));
  put("hotel", R"({"title": "Hostel"})");
  ASSERT_EQ(memory("del", {"gone"}).exit_code, 0);
  put("new", R"({"title": "Rome, at last"})");
  EXPECT_EQ(first_fields(memory("search", {"--text", "rome"}).out),
            (std::vector<std::string>{"new"}));
  EXPECT_EQ(first_fields(memory("search", {"--text", "hostel"}).out),
            (std::vector<std::string>{"hotel"}));
}

TEST_F(CliMemory, SearchByVectorFindsTheNearestEmbeddings) {
  put("east", R"({"dir": "east"})", {"--embedding", "[1, 0, 0]"});
  put("north", R"({"dir": "north"})", {"--embedding", "[0, 1, 0]"});
  put("mostly-east", R"({"dir": "east by north"})", {"--embedding", "[0.9, 0.1, 0]"});
  put("plain", R"({"dir": "none"})");

  auto r = memory("search", {"--vector", "[1, 0, 0]", "--limit", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(first_fields(r.out), (std::vector<std::string>{"east", "mostly-east"})) << r.out;
  auto hits = parse_lines(memory("search", {"--vector", "[1, 0, 0]", "--json"}).out);
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_NEAR(hits[0]["score"].get<double>(), 1.0, 1e-6);  // cosine similarity
  EXPECT_NEAR(hits[2]["score"].get<double>(), 0.0, 1e-6);  // north is orthogonal
  EXPECT_EQ(hits[0]["matched"], json::array({"vector"}));

  // Words and a vector: the union, ranked by reciprocal rank fusion; "east" is found by both.
  hits = parse_lines(memory("search", {"--vector", "[1, 0, 0]", "--text", "east", "--json"}).out);
  ASSERT_GE(hits.size(), 2u);
  EXPECT_EQ(hits[0]["key"], "east");
  EXPECT_EQ(hits[0]["matched"], json::array({"text", "vector"}));
  EXPECT_NEAR(hits[0]["score"].get<double>(), 2.0 / 61, 1e-9);

  auto wrong_dim = memory("search", {"--vector", "[1, 0]"});
  EXPECT_EQ(wrong_dim.exit_code, 1);
  EXPECT_EQ(wrong_dim.err.rfind("error: ", 0), 0u) << wrong_dim.err;
  for (std::string bad : {"[1, 0", "{}", "[]", "[1, \"x\", 0]"}) {
    auto v = memory("search", {"--vector", bad});
    EXPECT_EQ(v.exit_code, 1) << bad;
    EXPECT_EQ(v.err.rfind("error: --vector ", 0), 0u) << v.err;
    auto e = memory("put", {"k", "1", "--embedding", bad});
    EXPECT_EQ(e.exit_code, 1) << bad;
    EXPECT_EQ(e.err.rfind("error: --embedding ", 0), 0u) << e.err;
  }
  EXPECT_EQ(memory("get", {"k"}).exit_code, 1);  // nothing stored
  auto dim = memory("put", {"k", "1", "--embedding", "[1, 2]"});
  EXPECT_EQ(dim.exit_code, 1);
  EXPECT_EQ(memory("get", {"k"}).exit_code, 1);
}

// Item times, read back with get --times, bound search and keys: strictly after, strictly
// before, as ISO-8601 or as milliseconds.
TEST_F(CliMemory, TimeWindowsSelectByCreatedAndUpdated) {
  put("old", "1");
  const std::vector<std::string> old_times = lines_of(memory("get", {"old", "--times"}).out);
  ASSERT_EQ(old_times.size(), 4u);
  EXPECT_EQ(old_times[0], "1");
  EXPECT_EQ(old_times[3], "expires\tnever");
  const std::string t_old = old_times[1].substr(std::string("created\t").size());
  EXPECT_EQ(old_times[2], "updated\t" + t_old);
  const std::int64_t old_ms = millis_of(t_old);
  // The next put starts a process of its own: its time is later than old's.
  ASSERT_TRUE(eventually([&] { return now_millis() > old_ms; }));
  put("new", "2");
  const std::string t_new = lines_of(memory("get", {"new", "--times"}).out).at(1).substr(8);
  const std::int64_t new_ms = millis_of(t_new);
  ASSERT_GT(new_ms, old_ms);

  EXPECT_EQ(memory("keys", {"--created-after", t_old}).out, "new\n");
  EXPECT_EQ(memory("keys", {"--created-after", std::to_string(old_ms - 1)}).out, "new\nold\n");
  EXPECT_EQ(memory("keys", {"--created-before", t_new}).out, "old\n");
  EXPECT_EQ(memory("keys", {"--created-before", std::to_string(old_ms)}).out, "");
  EXPECT_EQ(first_fields(memory("search", {"--created-after", t_old}).out),
            (std::vector<std::string>{"new"}));
  EXPECT_EQ(first_fields(memory("search", {"--created-after", std::to_string(old_ms - 1),
                                           "--created-before", std::to_string(new_ms)})
                             .out),
            (std::vector<std::string>{"old"}));
  // A fraction finer than a millisecond counts: old is before T + 0.0001 ms, not after it.
  const std::string finer = t_old.substr(0, t_old.size() - 1) + "0001Z";
  EXPECT_EQ(memory("keys", {"--created-before", finer}).out, "old\n");
  EXPECT_EQ(memory("keys", {"--created-after", finer}).out, "new\n");
  EXPECT_EQ(
      memory("keys", {"--created-after", t_old.substr(0, 19) + "+00:00", "--created-before", t_new})
          .out,
      std::string(old_ms % 1000 == 0 ? "" : "old\n"));

  // Putting old again updates it and keeps its creation time.
  ASSERT_TRUE(eventually([&] { return now_millis() > new_ms; }));
  put("old", "3");
  const std::vector<std::string> again = lines_of(memory("get", {"old", "--times"}).out);
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[1], "created\t" + t_old);
  EXPECT_GT(millis_of(again[2].substr(8)), new_ms);
  EXPECT_EQ(memory("keys", {"--updated-after", t_new}).out, "old\n");
  EXPECT_EQ(memory("keys", {"--updated-before", again[2].substr(8)}).out, "new\n");
  EXPECT_EQ(memory("search", {"--updated-after", t_new, "--created-after", t_old}).out, "");
}

TEST_F(CliMemory, BadTimesAreRefused) {
  for (std::string bad :
       {"yesterday", "", "2026-12-01", "2026-12-01 10:00:00Z", "2026-12-01T10:00:00",
        "2026-12-01T10:00:00+01:00", "2026-02-30T10:00:00Z", "2026-12-01T24:00:00Z",
        "2026-12-01T10:00:00.Z", "1.5", "1e3", "99999999999999999999", " 12"}) {
    for (std::string option :
         {"--created-after", "--created-before", "--updated-after", "--updated-before"}) {
      auto r = memory("search", {option, bad});
      EXPECT_EQ(r.exit_code, 2) << option << " " << bad;
      EXPECT_NE(r.err.find(option), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("'" + bad + "' is not a time: write ISO-8601 UTC"), std::string::npos)
          << r.err;
      EXPECT_EQ(r.out, "");
    }
    EXPECT_EQ(memory("keys", {"--created-after", bad}).exit_code, 2) << bad;
  }
  for (std::string good :
       {"2026-12-01T10:00:00Z", "2026-12-01T10:00:00.5Z", "2026-12-01T10:00:00.123456789Z",
        "2026-12-01T10:00:00+00:00", "2024-02-29T00:00:00Z", "1796119200000", "0"}) {
    auto r = memory("search", {"--created-after", good});
    EXPECT_EQ(r.exit_code, 0) << good << ": " << r.err;
  }
}

TEST_F(CliMemory, PutWithTtlExpires) {
  put("brief", R"({"note": "soon gone"})", {"--ttl", "0.3"});
  put("longer", "1", {"--ttl", "60"});
  put("forever", "2");
  // Until it runs out the item is there; afterwards no read sees it.
  ASSERT_TRUE(eventually([&] { return memory("get", {"brief"}).exit_code == 1; }));
  auto gone = memory("get", {"brief"});
  EXPECT_EQ(gone.err, "error: no such key: brief\n");
  EXPECT_EQ(memory("get", {"brief", "--times"}).exit_code, 1);
  EXPECT_EQ(memory("keys").out, "forever\nlonger\n");
  EXPECT_EQ(first_fields(memory("search").out), (std::vector<std::string>{"forever", "longer"}));
  EXPECT_EQ(memory("size").out, "2\n");
  EXPECT_EQ(memory("get", {"longer"}).out, "1\n");

  // The time to live counts from the put.
  const std::vector<std::string> t = lines_of(memory("get", {"longer", "--times"}).out);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(millis_of(t[3].substr(8)) - millis_of(t[1].substr(8)), 60'000);
  // Putting the key again without --ttl makes it permanent.
  put("longer", "3");
  EXPECT_EQ(lines_of(memory("get", {"longer", "--times"}).out).at(3), "expires\tnever");
  // Fractions of a millisecond round up, never to no time at all.
  put("tiny", "4", {"--ttl", "0.0001"});
  ASSERT_TRUE(eventually([&] { return memory("get", {"tiny"}).exit_code == 1; }));
  // Text search does not see an expired item either.
  EXPECT_EQ(memory("search", {"--text", "soon"}).out, "");
}

TEST_F(CliMemory, BadTtlIsRefused) {
  for (std::string bad : {"0", "-1", "-0.5", "abc", "nan", "inf", "1s", ""}) {
    for (std::string verb : {"put", "import"}) {
      std::vector<std::string> args = {"--ttl", bad};
      if (verb == "put")
        args.insert(args.end(), {"k", "1"});
      else
        args.push_back("-");
      auto r = memory(verb, args, "{\"key\":\"k\",\"value\":1}\n");
      EXPECT_EQ(r.exit_code, 2) << verb << " --ttl " << bad;
      EXPECT_NE(r.err.find("--ttl: '" + bad + "' is not a positive number of seconds"),
                std::string::npos)
          << r.err;
    }
  }
  // At most 10,000 years: the longest time to live there is.
  auto long_ttl = memory("put", {"--ttl", "1e12", "k", "1"});
  EXPECT_EQ(long_ttl.exit_code, 2);
  EXPECT_NE(long_ttl.err.find("--ttl: '1e12' seconds is longer than the longest time to live, "
                              "10,000 years"),
            std::string::npos)
      << long_ttl.err;
  EXPECT_EQ(memory("size").out, "0\n");
  put("k", "1", {"--ttl", "316224000000"});
  EXPECT_EQ(lines_of(memory("get", {"k", "--times"}).out).at(3).rfind("expires\t+12", 0), 0u);
}

TEST_F(CliMemory, ImportWithTtlExpiresEveryItem) {
  put("kept", "0");
  auto r = memory("import", {"--ttl", "0.3", "-"},
                  "{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\",\"value\":2}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
  ASSERT_TRUE(eventually([&] { return memory("keys").out == "kept\n"; }));
  EXPECT_EQ(memory("size").out, "1\n");
}

// Expired items stay in the table, invisible, until a sweep deletes them; sweep says how many
// it deleted, and a scope sweeps only its own.
TEST_F(CliMemory, SweepDeletesTheExpiredItemsAndCountsThem) {
  for (std::string k : {"a", "b", "c"}) put(k, "1", {"--ttl", "0.3"});
  put("x", "1", {"--ttl", "0.3", "--scope", "s"});
  put("y", "1", {"--ttl", "0.3", "--scope", "s"});
  put("kept", "1");
  put("later", "1", {"--ttl", "600"});
  auto rows = [&] {
    return entitydb({"sql", "--db", db, "--json", "SELECT count(*) AS n FROM memory"}).out;
  };
  EXPECT_EQ(rows(), "{\"n\":7}\n");
  ASSERT_TRUE(eventually([&] { return memory("keys").out == "kept\nlater\n"; }));
  EXPECT_EQ(rows(), "{\"n\":7}\n");  // invisible, not yet deleted

  auto scoped = memory("sweep", {"--scope", "s"});
  ASSERT_EQ(scoped.exit_code, 0) << scoped.err;
  EXPECT_EQ(scoped.out, "2\n");
  EXPECT_EQ(rows(), "{\"n\":5}\n");
  auto r = memory("sweep");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n");
  EXPECT_EQ(rows(), "{\"n\":2}\n");
  EXPECT_EQ(memory("sweep").out, "0\n");
  EXPECT_EQ(memory("keys").out, "kept\nlater\n");
}

TEST_F(CliMemory, ScopesListsEveryScopeThatHoldsItems) {
  for (std::string k : {"user-42:session-7:note", "user-42:session-7:plan", "user-42:prefs",
                        "user-42:session-9:x:y", "user-4:z", "plain", "a:b:c:d"})
    put(k, "0");
  auto r = memory("scopes");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The scope of each key, once: a scope that holds only scopes (user-42:session-9, a:b) is
  // not listed by itself.
  EXPECT_EQ(r.out, "a:b:c\nuser-4\nuser-42\nuser-42:session-7\nuser-42:session-9:x\n");
  EXPECT_EQ(memory("scopes", {"--max-depth", "1"}).out, "a\nuser-4\nuser-42\n");
  EXPECT_EQ(memory("scopes", {"--max-depth", "2"}).out,
            "a:b\nuser-4\nuser-42\nuser-42:session-7\nuser-42:session-9\n");
  // A prefix names whole scopes: user-4 is not a prefix of user-42.
  EXPECT_EQ(memory("scopes", {"user-4"}).out, "user-4\n");
  EXPECT_EQ(memory("scopes", {"user-42"}).out, "user-42\nuser-42:session-7\nuser-42:session-9:x\n");
  EXPECT_EQ(memory("scopes", {"user-42:session-9"}).out, "user-42:session-9:x\n");
  EXPECT_EQ(memory("scopes", {"user-42:session-9", "--max-depth", "2"}).out, "user-42:session-9\n");
  EXPECT_EQ(memory("scopes", {"nobody"}).out, "");
  // Inside a scope, relative to it.
  EXPECT_EQ(memory("scopes", {"--scope", "user-42"}).out, "session-7\nsession-9:x\n");
  EXPECT_EQ(memory("scopes", {"--scope", "user-42", "--max-depth", "1"}).out,
            "session-7\nsession-9\n");
  EXPECT_EQ(memory("scopes", {"--scope", "plain"}).out, "");

  for (std::string bad : {"0", "-1", "x"}) {
    auto b = memory("scopes", {"--max-depth", bad});
    EXPECT_EQ(b.exit_code, 2) << bad;
    EXPECT_NE(b.err.find("--max-depth"), std::string::npos) << b.err;
  }
  auto not_utf8 = memory("scopes", {"user-\xff"});
  EXPECT_EQ(not_utf8.exit_code, 1);
  EXPECT_NE(not_utf8.err.find("UTF-8"), std::string::npos) << not_utf8.err;
}

TEST_F(CliMemory, ClearPrintsCountRemoved) {
  for (std::string k : {"tmp:1", "tmp:2", "keep"}) put(k, "0");
  auto r = memory("clear", {"tmp:%"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
  EXPECT_EQ(memory("keys").out, "keep\n");
  EXPECT_EQ(memory("clear").out, "1\n");
  EXPECT_EQ(memory("size").out, "0\n");
}

TEST_F(CliMemory, SizeCounts) {
  EXPECT_EQ(memory("size").out, "0\n");
  put("a", "1");
  put("b", "1");
  auto r = memory("size");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
}

TEST_F(CliMemory, ScopesIsolate) {
  put("k", "\"in a\"", {"--scope", "a"});
  EXPECT_EQ(memory("get", {"--scope", "a", "k"}).out, "\"in a\"\n");

  auto unscoped = memory("get", {"k"});
  EXPECT_EQ(unscoped.exit_code, 1);
  EXPECT_EQ(unscoped.err, "error: no such key: k\n");
  auto other = memory("get", {"--scope", "b", "k"});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_EQ(other.err, "error: no such key: k\n");

  EXPECT_EQ(memory("keys", {"--scope", "a"}).out, "k\n");
  EXPECT_EQ(memory("keys", {"--scope", "b"}).out, "");
  EXPECT_EQ(memory("size", {"--scope", "b"}).out, "0\n");
  EXPECT_EQ(memory("clear", {"--scope", "b"}).out, "0\n");
  EXPECT_EQ(memory("del", {"--scope", "b", "k"}).exit_code, 1);
  EXPECT_EQ(memory("size", {"--scope", "a"}).out, "1\n");
}

TEST_F(CliMemory, ScopedDelLeavesTheUnscopedKey) {
  put("k", "1");
  put("k", "2", {"--scope", "a"});
  auto r = memory("del", {"--scope", "a", "k"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  auto unscoped = memory("get", {"k"});
  EXPECT_EQ(unscoped.exit_code, 0) << unscoped.err;
  EXPECT_EQ(unscoped.out, "1\n");
  auto scoped = memory("get", {"--scope", "a", "k"});
  EXPECT_EQ(scoped.exit_code, 1);
  EXPECT_EQ(scoped.out, "");
  EXPECT_EQ(scoped.err, "error: no such key: k\n");
}

// A scope's name is matched as it is written: '%' and '_' in it are not LIKE wildcards, so
// scope "a%_b" does not reach into scope "aXYb" (which its name would match as a pattern).
TEST_F(CliMemory, ScopeWithLikeCharactersIsolates) {
  put("k", "1", {"--scope", "a%_b"});
  put("k", "2", {"--scope", "aXYb"});
  put("k2", "3", {"--scope", "aXYb"});

  auto keys = memory("keys", {"--scope", "a%_b"});
  EXPECT_EQ(keys.exit_code, 0) << keys.err;
  EXPECT_EQ(keys.out, "k\n");
  auto size = memory("size", {"--scope", "a%_b"});
  EXPECT_EQ(size.exit_code, 0) << size.err;
  EXPECT_EQ(size.out, "1\n");
  auto cleared = memory("clear", {"--scope", "a%_b"});
  EXPECT_EQ(cleared.exit_code, 0) << cleared.err;
  EXPECT_EQ(cleared.out, "1\n");

  EXPECT_EQ(memory("size", {"--scope", "aXYb"}).out, "2\n");
  auto other = memory("get", {"--scope", "aXYb", "k"});
  EXPECT_EQ(other.exit_code, 0) << other.err;
  EXPECT_EQ(other.out, "2\n");
  EXPECT_EQ(memory("size", {"--scope", "a%_b"}).out, "0\n");
}

TEST_F(CliMemory, ImportStoresEveryLineAndCounts) {
  std::string file = write("in.jsonl",
                           "{\"key\":\"a\",\"value\":{\"x\":1}}\n"
                           "\n"
                           "  \n"
                           "{\"value\":[1,2],\"key\":\"b\"}\r\n"
                           "{\"key\":\"c\",\"value\":null}");  // no final newline
  auto r = memory("import", {file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3\n");
  EXPECT_EQ(memory("get", {"a"}).out, "{\"x\":1}\n");
  EXPECT_EQ(memory("get", {"b"}).out, "[1,2]\n");
  EXPECT_EQ(memory("get", {"c"}).out, "null\n");
}

TEST_F(CliMemory, ImportReadsStandardInput) {
  auto r = memory("import", {"-"}, "{\"key\":\"a\",\"value\":1}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  EXPECT_EQ(memory("get", {"a"}).out, "1\n");
}

TEST_F(CliMemory, ImportWithBadLineStoresNothing) {
  put("earlier", "\"kept\"");
  const std::vector<std::pair<std::string, std::string>> bad_lines = {
      {"{\"key\": \"c\", \"value\": ", "not JSON"},
      {"[\"c\", 3]", "not a JSON object"},
      {"{\"value\": 3}", "no \"key\""},
      {"{\"key\": 3, \"value\": 3}", "\"key\" is not a string"},
      {"{\"key\": \"c\"}", "no \"value\""},
      {"{\"key\": \"c\", \"value\": 1, \"created\": \"yesterday\"}", "\"created\" is not a time"},
      {"{\"key\": \"c\", \"value\": 1, \"expires\": true}", "\"expires\" is not a time"},
      {"{\"key\": \"c\", \"value\": 1, \"ttl\": 0}", "\"ttl\" is not a number of seconds"},
      {"{\"key\": \"c\", \"value\": 1, \"ttl\": \"1h\"}", "\"ttl\" is not a number of seconds"},
  };
  for (const auto& [line, why] : bad_lines) {
    SCOPED_TRACE(line);
    std::string file = write("bad.jsonl",
                             "{\"key\":\"a\",\"value\":1}\n"
                             "{\"key\":\"earlier\",\"value\":\"replaced\"}\n" +
                                 line + "\n{\"key\":\"d\",\"value\":4}\n");
    auto r = memory("import", {file});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("error: " + file + ":3: " + why, 0), 0u) << r.err;
    // Nothing from the file was written, and what was there is intact.
    EXPECT_EQ(memory("keys").out, "earlier\n");
    EXPECT_EQ(memory("get", {"earlier"}).out, "\"kept\"\n");
  }

  std::string fresh = dir.file("fresh.db");
  std::string file = write("bad.jsonl", "{\"key\":\"a\",\"value\":1}\n\nnope\n");
  auto r = memory_in(fresh, "import", {file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: " + file + ":3: not JSON", 0), 0u) << r.err;
  EXPECT_EQ(memory_in(fresh, "size", {}).out, "0\n");
}

// On PostgreSQL, whose text cannot hold a NUL byte, a key with one ("a\u0000b" in JSON) is
// refused: the import fails and writes nothing, instead of cutting the key short at the NUL
// and replacing "a". (On SQLite such a key is a key of its own.)
TEST_F(CliMemory, ImportOfAKeyWithANulByteFailsOnPostgresAndWritesNothing) {
  entity::test::cli_postgres_schema pg(ENTITYDB_BIN);
  ASSERT_TRUE(pg.available()) << entity::test::cli_missing_server_message;
  ASSERT_EQ(memory_in(pg.url(), "put", {"a", "\"original\""}).exit_code, 0);
  std::string file = write("nul.jsonl",
                           "{\"key\":\"fine\",\"value\":1}\n"
                           "{\"key\":\"a\\u0000b\",\"value\":\"evil\"}\n");
  auto r = memory_in(pg.url(), "import", {file});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("NUL"), std::string::npos) << r.err;
  EXPECT_EQ(memory_in(pg.url(), "get", {"a"}).out, "\"original\"\n");
  EXPECT_EQ(memory_in(pg.url(), "keys", {}).out, "a\n");

  // SQLite keeps the byte: the key is distinct from "a".
  put("a", "\"original\"");
  r = memory("import", {file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(memory("get", {"a"}).out, "\"original\"\n");
  EXPECT_EQ(memory("size").out, "3\n");
}

// The verbs of times, expiry, scopes and search on PostgreSQL, as on SQLite.
TEST_F(CliMemory, TtlSweepScopesAndSearchOnPostgres) {
  entity::test::cli_postgres_schema pg(ENTITYDB_BIN);
  ASSERT_TRUE(pg.available()) << entity::test::cli_missing_server_message;
  auto on_pg = [&](const std::string& verb, std::vector<std::string> args) {
    return memory_in(pg.url(), verb, std::move(args));
  };
  const std::int64_t before = now_millis();
  ASSERT_EQ(
      on_pg("put", {"user-1:note", R"({"text": "Aisle seat please"})", "--embedding", "[1, 0]"})
          .exit_code,
      0);
  ASSERT_EQ(on_pg("put", {"user-1:trip:leg", R"({"text": "window seat"})", "--embedding", "[0, 1]"})
                .exit_code,
            0);
  ASSERT_EQ(on_pg("put", {"user-2:brief", R"({"text": "seat"})", "--ttl", "0.3"}).exit_code, 0);
  auto imported = memory_in(pg.url(), "import", {"--ttl", "0.3", "-"},
                            "{\"key\":\"user-3:x\",\"value\":{\"text\":\"seat\"}}\n");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;

  auto scopes = on_pg("scopes", {});
  ASSERT_EQ(scopes.exit_code, 0) << scopes.err;
  // user-2 and user-3 may have expired already: they are listed only while they hold items.
  EXPECT_EQ(scopes.out.rfind("user-1\nuser-1:trip\n", 0), 0u) << scopes.out;
  EXPECT_EQ(on_pg("scopes", {"user-1", "--max-depth", "1"}).out, "user-1\n");

  ASSERT_TRUE(
      eventually([&] { return on_pg("keys", {}).out == "user-1:note\nuser-1:trip:leg\n"; }));
  EXPECT_EQ(on_pg("scopes", {}).out, "user-1\nuser-1:trip\n");
  EXPECT_EQ(on_pg("search", {"--text", "seat"}).out.find("user-2"), std::string::npos);
  auto swept = on_pg("sweep", {});
  ASSERT_EQ(swept.exit_code, 0) << swept.err;
  EXPECT_EQ(swept.out, "2\n");
  EXPECT_EQ(on_pg("sweep", {}).out, "0\n");

  auto text = parse_lines(on_pg("search", {"--text", "AISLE", "--json"}).out);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0]["key"], "user-1:note");
  EXPECT_EQ(text[0]["matched"], json::array({"text"}));
  EXPECT_GT(text[0]["score"].get<double>(), 0);
  EXPECT_GE(millis_of(text[0]["created"]), before);
  EXPECT_LE(millis_of(text[0]["created"]), now_millis());

  ASSERT_EQ(
      on_pg("put", {"user-1:note", R"({"text": "Aisle seat, thanks"})", "--embedding", "[1, 0]"})
          .exit_code,
      0);
  EXPECT_EQ(first_fields(on_pg("search", {"--text", "thanks"}).out),
            (std::vector<std::string>{"user-1:note"}));
  EXPECT_EQ(on_pg("search", {"--text", "please"}).out, "");

  auto both = on_pg("search", {"--scope", "user-1", "--text", "window", "--vector", "[0, 1]"});
  ASSERT_EQ(both.exit_code, 0) << both.err;
  EXPECT_EQ(first_fields(both.out).at(0), "trip:leg") << both.out;
  EXPECT_EQ(first_fields(on_pg("search", {"--created-before", std::to_string(before)}).out),
            std::vector<std::string>{});
  EXPECT_EQ(on_pg("keys", {"--created-after", std::to_string(before - 1)}).out,
            "user-1:note\nuser-1:trip:leg\n");
  auto item = lines_of(on_pg("get", {"user-1:note", "--times"}).out);
  ASSERT_EQ(item.size(), 4u);
  EXPECT_EQ(item[3], "expires\tnever");
}

TEST_F(CliMemory, ImportOfMissingFileFails) {
  auto r = memory("import", {dir.file("absent.jsonl")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: cannot read", 0), 0u) << r.err;
}

TEST_F(CliMemory, ExportImportExportIsIdentical) {
  put("b", "{\"nested\":{\"z\":1,\"a\":[true,null,0.1,1e300,-0.0]}}");
  put("a", "\"ünïcode \\u0001 \\\"q\\\"\"");
  put("c:1", "123456789012345");
  put("note", "\"scoped\"", {"--scope", "s"});
  auto first = memory("export");
  ASSERT_EQ(first.exit_code, 0) << first.err;

  // Sorted by key, one {"key","value"} object per line.
  std::vector<std::string> keys;
  std::istringstream in(first.out);
  for (std::string line; std::getline(in, line);) keys.push_back(json::parse(line).at("key"));
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c:1", "s:note"}));

  // Writing to a FILE gives the same bytes as standard output.
  std::string file = dir.file("export.jsonl");
  ASSERT_EQ(memory("export", {file}).exit_code, 0);
  EXPECT_EQ(slurp(file), first.out);

  std::string fresh = dir.file("fresh.db");
  auto imported = memory_in(fresh, "import", {file});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(imported.out, "4\n");
  auto second = memory_in(fresh, "export", {});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
  EXPECT_EQ(memory_in(fresh, "get", {"--scope", "s", "note"}).out, "\"scoped\"\n");
}

// With --times each line keeps the item's times and expiry, and an import restores them: the
// round trip gives the same bytes. Without it, the lines are what they always were.
TEST_F(CliMemory, ExportWithTimesKeepsThemThroughAnImport) {
  put("plain", "1");
  put("short", "2", {"--ttl", "3600"});
  auto first = memory("export", {"--times"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto lines = parse_lines(first.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines[0]["created"].is_string());
  EXPECT_TRUE(lines[0]["updated"].is_string());
  EXPECT_FALSE(lines[0].contains("expires"));
  EXPECT_TRUE(lines[1]["expires"].is_string());
  EXPECT_EQ(lines[1]["ttl"], 3600.0);
  EXPECT_EQ(memory("export").out,
            "{\"key\":\"plain\",\"value\":1}\n{\"key\":\"short\",\"value\":2}\n");

  std::string fresh = dir.file("fresh.db");
  auto imported = memory_in(fresh, "import", {"-"}, first.out);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(memory_in(fresh, "export", {"--times"}).out, first.out);
  EXPECT_EQ(memory_in(fresh, "get", {"short", "--times"}).out,
            memory("get", {"short", "--times"}).out);
  // --ttl gives every item a new expiry, whatever its line says; its creation stays.
  std::string other = dir.file("other.db");
  ASSERT_EQ(memory_in(other, "import", {"--ttl", "60", "-"}, first.out).exit_code, 0);
  auto relines = parse_lines(memory_in(other, "export", {"--times"}).out);
  ASSERT_EQ(relines.size(), 2u);
  EXPECT_EQ(relines[0]["created"], lines[0]["created"]);
  EXPECT_EQ(relines[0]["ttl"], 60.0);
  EXPECT_EQ(relines[1]["ttl"], 60.0);
}

TEST_F(CliMemory, ScopedExportImportsIntoScope) {
  put("x", "1", {"--scope", "s"});
  put("y", "2");
  auto out = memory("export", {"--scope", "s"});
  ASSERT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "{\"key\":\"x\",\"value\":1}\n");

  std::string fresh = dir.file("fresh.db");
  ASSERT_EQ(memory_in(fresh, "import", {"--scope", "t", "-"}, out.out).exit_code, 0);
  EXPECT_EQ(memory_in(fresh, "keys", {}).out, "t:x\n");
}

TEST_F(CliMemory, DatabaseFromEnvironment) {
  std::string env_db = dir.file("env.db");
  auto r = run_command("ENTITYDB_PATH=" + shell_quote(env_db) + " " + shell_quote(ENTITYDB_BIN) +
                       " memory put k 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(memory_in(env_db, "get", {"k"}).out, "1\n");
  // Every verb honours --db over the environment.
  r = run_command("ENTITYDB_PATH=" + shell_quote(env_db) + " " + shell_quote(ENTITYDB_BIN) +
                  " memory size --db " + shell_quote(db));
  EXPECT_EQ(r.out, "0\n");
}

TEST_F(CliMemory, GarbageDatabaseCannotBeOpened) {
  std::string garbage = write("garbage.db", std::string(4096, 'g'));
  auto r = memory_in(garbage, "size", {});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: cannot open", 0), 0u) << r.err;
}

TEST_F(CliMemory, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"memory"},
           {"memory", "frob"},
           {"memory", "get", "--db", db},
           {"memory", "put", "--db", db, "k"},
           {"memory", "get", "--db", db, "--scope", "", "k"},
           {"memory", "import", "--db", db},
           {"memory", "scopes", "--db", db, "a", "b"},
           {"memory", "sweep", "--db", db, "extra"},
       }) {
    auto r = entitydb(args);
    EXPECT_EQ(r.exit_code, 2) << testing::PrintToString(args) << "\n" << r.err;
  }
}

TEST_F(CliMemory, HelpDescribesEveryVerb) {
  auto r = entitydb({"memory", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (std::string verb : {"put", "get", "del", "keys", "search", "scopes", "sweep", "clear",
                           "size", "import", "export"})
    EXPECT_NE(r.out.find("  " + verb + " "), std::string::npos) << verb;
  const std::vector<std::pair<std::string, std::vector<std::string>>> options = {
      {"put", {"--scope", "--db", "--ttl SECONDS", "--embedding JSON_ARRAY"}},
      {"get", {"--times", "expires"}},
      {"keys",
       {"--created-after TIME", "--created-before TIME", "--updated-after TIME",
        "--updated-before TIME"}},
      {"search",
       {"--filter", "--text WORDS", "--vector JSON_ARRAY", "--limit", "--offset",
        "--created-after TIME", "--created-before TIME", "--updated-after TIME",
        "--updated-before TIME", "--json", "KEY<TAB>SCORE<TAB>VALUE-JSON", "ISO-8601"}},
      {"scopes", {"PREFIX", "--max-depth N", "--scope"}},
      {"sweep", {"--scope", "--db"}},
      {"import", {"--ttl SECONDS", "--max-line-bytes"}},
  };
  for (const auto& [verb, expected] : options) {
    r = entitydb({"memory", verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb;
    for (const std::string& text : expected)
      EXPECT_NE(r.out.find(text), std::string::npos) << verb << ": " << text << "\n" << r.out;
  }
}

}  // namespace
