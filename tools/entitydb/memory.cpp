// entitydb memory: an agent's JSON key/value memory from the shell: items that expire and carry
// their times, scopes, search by filter, words, vector and time, and moving it in and out as
// JSON Lines ({"key": ..., "value": ...} per line).
#include <charconv>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "commands.hpp"
#include "common.hpp"
#include "json_lines.hpp"

namespace entitydb {
namespace {

using entity::json;

// The options of one verb. Each verb needs its own: CLI11 fills every subcommand's --db from
// $ENTITYDB_PATH, run or not, so a shared record would be overwritten.
struct memory_args {
  std::string db;
  std::string scope;
  std::string key;
  std::string value;
  std::string pattern = "%";
  std::string filter = "{}";
  std::int64_t limit = 10;
  std::int64_t offset = 0;
  std::string file;
  std::size_t max_line_bytes = default_max_line_bytes;
  double ttl = 0;  // seconds; 0: none given
  std::string embedding;
  std::string text;
  std::string vector;
  std::string created_after, created_before, updated_after, updated_before;
  bool json = false;
  bool times = false;
  std::string prefix;
  std::size_t max_depth = static_cast<std::size_t>(-1);
};

// Opens the memory --db and --scope name and runs `body` on it.
void with_memory(const memory_args& a, const std::function<void(const entity::memory&)>& body) {
  engine e(a.db);
  entity::memory whole(e.db());
  body(a.scope.empty() ? whole : whole.scope(a.scope));
}

json parse_value(const std::string& key, const std::string& text) {
  entity::json_text_problem problem;
  std::optional<json> j = entity::parse_json(text, problem);
  if (j) return std::move(*j);
  if (problem.too_deep)
    throw failure("the value of key " + entity::printable(key) + " is " + problem.reason);
  throw failure("the value of key " + entity::printable(key) +
                " is not JSON (a string needs quotes: '\"" + text + "\"'): " + problem.reason);
}

// The --ttl given, if any.
std::optional<std::chrono::milliseconds> ttl_of(const memory_args& a) {
  if (a.ttl > 0) return millis_of_seconds(a.ttl);
  return std::nullopt;
}

std::vector<float> parse_vector(const std::string& text, std::string_view what) {
  entity::json_text_problem problem;
  std::optional<json> j = entity::parse_json(text, problem);
  if (!j)
    throw failure(problem.too_deep
                      ? std::string(what) + " is " + problem.reason
                      : std::string(what) +
                            " is not JSON (write it as [0.1, 0.2, ...]): " + problem.reason);
  return to_floats(*j, what);
}

// The time window of --created-after, --created-before, --updated-after and --updated-before.
// A bound finer than a millisecond is rounded outwards, which keeps "strictly after" and
// "strictly before" exact on times that are whole milliseconds.
entity::time_window window_of(const memory_args& a) {
  auto bound = [](const std::string& text, bool before) -> std::optional<entity::memory_time> {
    if (text.empty()) return std::nullopt;
    utc_instant t = parse_utc_time(text).value();  // checked by the option's validator
    return entity::memory_time(std::chrono::milliseconds(t.millis + (before && t.finer ? 1 : 0)));
  };
  entity::time_window w;
  w.created_after = bound(a.created_after, false);
  w.created_before = bound(a.created_before, true);
  w.updated_after = bound(a.updated_after, false);
  w.updated_before = bound(a.updated_before, true);
  return w;
}

void add_window_options(CLI::App& verb, memory_args& a) {
  const std::pair<const char*, std::string*> bounds[] = {{"--created-after", &a.created_after},
                                                         {"--created-before", &a.created_before},
                                                         {"--updated-after", &a.updated_after},
                                                         {"--updated-before", &a.updated_before}};
  for (const auto& [name, field] : bounds) {
    std::string what = std::string(name).substr(2);
    std::string when = what.substr(0, what.find('-'));
    std::string side = what.substr(what.find('-') + 1);
    verb.add_option(name, *field,
                    "only items " + when + " strictly " + side + " TIME (ISO-8601 UTC or ms)")
        ->option_text("TIME")
        ->check(utc_time);
  }
}

// An item time as JSON: ISO-8601 UTC with milliseconds, or null when the item has none.

// A score for people: six significant digits (--json has every digit).
std::string show_score(double score) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, score, std::chars_format::general, 6);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(score);
}

// One hit of `search --json`: the line `export` writes for the item (`import` reads it back),
// then how it ranked and when it was written.
std::string hit_line(const entity::search_hit& hit) {
  auto more = nlohmann::ordered_json::object();
  more["score"] = hit.score;
  auto& matched = more["matched"] = nlohmann::ordered_json::array();
  if (hit.matched_text) matched.push_back("text");
  if (hit.matched_vector) matched.push_back("vector");
  more["created"] = time_json(hit.created);
  more["updated"] = time_json(hit.updated);
  return memory_line(hit.key, hit.value, more);
}

// Reads JSON Lines of {"key": ..., "value": ...} (and times); any bad line fails naming
// FILE:LINE, so that nothing is stored from a file that is not entirely right. Blank lines are
// skipped.
std::vector<entity::memory_item> read_items(const std::string& file, std::size_t max_line_bytes) {
  std::vector<entity::memory_item> items;
  for_each_json_line(
      file, [&](json& j, const line_failure& bad) { items.push_back(memory_item_of_line(j, bad)); },
      max_line_bytes);
  return items;
}

// Every item of the memory as JSON Lines, sorted by key, in the form read_items reads, with
// each item's times when `times`. Stops at the first item that cannot be exported unchanged (a
// value that does not decode, a key that is not UTF-8), naming it: a backup with a hole would
// look whole.
std::string export_lines(const entity::memory& mem, bool times) {
  std::vector<std::string> keys = mem.keys();
  std::string out;
  if (times) {
    for (const std::string& key : keys) {
      std::optional<entity::memory_item> item = mem.load_item(key);
      if (item) out += memory_item_line(*item) + "\n";  // else erased meanwhile, or expired
    }
    return out;
  }
  entity::memory::loaded values = mem.batch_load(keys);
  for (const std::string& key : keys) {
    auto v = values.find(key);
    if (v == values.end()) continue;  // erased by someone else between the two reads
    out += memory_line(key, v->second) + "\n";
  }
  return out;
}

const CLI::Validator non_empty(
    [](std::string& text) {
      return text.empty() ? std::string("a scope name must not be empty") : "";
    },
    "");

// A verb of `memory` with the --db and --scope every verb takes.
CLI::App* add_verb(CLI::App& memory_cmd, const std::string& name, const std::string& about,
                   memory_args& a) {
  CLI::App* verb = memory_cmd.add_subcommand(name, about);
  add_db_option(*verb, a.db);
  verb->add_option("--scope", a.scope,
                   "work inside scope NAME: its keys live under 'NAME:', isolated from others")
      ->option_text("NAME")
      ->check(non_empty);
  return verb;
}

// --ttl SECONDS of the verbs that store: above zero, at most 10,000 years.
void add_ttl_option(CLI::App& verb, memory_args& a) {
  const CLI::Validator at_most_the_longest(
      [](std::string& text) -> std::string {
        if (std::stod(text) <= longest_ttl_seconds) return {};
        return "'" + text + "' seconds is longer than the longest time to live, 10,000 years";
      },
      "");
  verb.add_option("--ttl", a.ttl, "the items expire after SECONDS (fractions allowed)")
      ->option_text("SECONDS")
      ->check(positive_seconds)
      ->check(at_most_the_longest);
}

}  // namespace

void add_memory_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("memory", "Read and write an agent's JSON key/value memory");
  cmd->require_subcommand(1);
  cmd->footer(
      "Values are JSON. Keys of a --scope live under 'NAME:' in the same table, invisible to\n"
      "other scopes. PATTERNs are SQL LIKE patterns: '%' any run, '_' one character.\n"
      "Exit status: 0 success, 1 the operation failed (a missing key, invalid JSON, a bad\n"
      "import line), 2 a usage error.");

  {
    auto a = std::make_shared<memory_args>();
    CLI::App* put = add_verb(*cmd, "put", "Store JSON under KEY (replacing any value)", *a);
    put->add_option("KEY", a->key, "the key")->required();
    put->add_option("JSON", a->value, "the value as JSON text: 42, true, '\"text\"', '{\"a\":1}'")
        ->required();
    add_ttl_option(*put, *a);
    put->add_option("--embedding", a->embedding,
                    "store this embedding with the value, for 'search --vector': '[0.1, ...]'")
        ->option_text("JSON_ARRAY");
    put->footer(
        "Text that is not valid JSON is an error (exit 1); a JSON string needs its quotes.\n"
        "With --ttl the item expires SECONDS after the put: no read sees it from then on, and\n"
        "'sweep' deletes it. Putting the key again replaces its time to live (without --ttl:\n"
        "none). Every embedding of a memory has the dimension of the first one stored.");
    on_run(*put, [a] {
      json value = parse_value(a->key, a->value);
      std::optional<std::vector<float>> embedding;
      if (!a->embedding.empty()) embedding = parse_vector(a->embedding, "--embedding");
      const auto ttl = ttl_of(*a);
      with_memory(*a, [&](const entity::memory& mem) {
        if (embedding && ttl)
          mem.store(a->key, std::move(value), std::move(*embedding), *ttl);
        else if (embedding)
          mem.store(a->key, std::move(value), std::move(*embedding));
        else if (ttl)
          mem.store(a->key, std::move(value), *ttl);
        else
          mem.store(a->key, std::move(value));
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* get = add_verb(*cmd, "get", "Print the JSON stored under KEY", *a);
    get->add_option("KEY", a->key, "the key")->required();
    get->add_flag("--times", a->times,
                  "after the value, print its created, updated and expires times, one a line");
    get->footer(
        "A missing (or expired) key prints 'error: no such key: KEY' and exits 1.\n"
        "--times prints 'created<TAB>TIME', 'updated<TAB>TIME' and 'expires<TAB>TIME' after the\n"
        "value, in ISO-8601 UTC to the millisecond; 'expires<TAB>never' without a time to live,\n"
        "'unknown' for an item written by a program that records no times.");
    on_run(*get, [a] {
      with_memory(*a, [&](const entity::memory& mem) {
        if (!a->times) {
          std::optional<json> v = mem.load(a->key);
          if (!v) throw failure("no such key: " + a->key);
          std::cout << dump_json(*v) << "\n";
          return;
        }
        std::optional<entity::memory_item> item = mem.load_item(a->key);
        if (!item) throw failure("no such key: " + a->key);
        auto show = [](const std::optional<entity::memory_time>& t, const char* none) {
          return t ? format_utc_time(t->time_since_epoch().count()) : std::string(none);
        };
        std::cout << dump_json(item->value) << "\n"
                  << "created\t" << show(item->created, "unknown") << "\n"
                  << "updated\t" << show(item->updated, "unknown") << "\n"
                  << "expires\t" << show(item->expires, "never") << "\n";
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* del = add_verb(*cmd, "del", "Remove KEY", *a);
    del->add_option("KEY", a->key, "the key")->required();
    del->footer("A missing key prints 'error: no such key: KEY' and exits 1.");
    on_run(*del, [a] {
      with_memory(*a, [&](const entity::memory& mem) {
        if (!mem.erase(a->key)) throw failure("no such key: " + a->key);
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* keys =
        add_verb(*cmd, "keys", "List the keys matching PATTERN, one per line, sorted", *a);
    keys->add_option("PATTERN", a->pattern, "a LIKE pattern")->capture_default_str();
    add_window_options(*keys, *a);
    keys->footer(
        "TIME is ISO-8601 UTC (2026-12-01T10:00:00Z, a fraction of a second allowed) or\n"
        "milliseconds since the Unix epoch. Items written by a program that records no times\n"
        "match no time bound.");
    on_run(*keys, [a] {
      const entity::time_window window = window_of(*a);
      with_memory(*a, [&](const entity::memory& mem) {
        for (const std::string& k : mem.keys(a->pattern, window)) std::cout << k << "\n";
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* search = add_verb(
        *cmd, "search", "Print the items that match a filter, words or a vector, best first", *a);
    search->add_option("--filter", a->filter, "a JSON filter on the value")->capture_default_str();
    search
        ->add_option("--text", a->text,
                     "full-text: items whose text holds any of these words, best first")
        ->option_text("WORDS");
    search
        ->add_option("--vector", a->vector,
                     "semantic: items whose embeddings are nearest to this one: '[0.1, ...]'")
        ->option_text("JSON_ARRAY");
    search->add_option("--limit", a->limit, "at most this many items")
        ->capture_default_str()
        ->check(CLI::Range(std::int64_t{1}, entity::memory::max_search_limit));
    search->add_option("--offset", a->offset, "items skipped first")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    add_window_options(*search, *a);
    search->add_flag("--json", a->json, "print one JSON object per item instead of a line of text");
    search->footer(
        "The filter is JSON in the language of mem0 and MongoDB: '{\"city\": \"Oslo\"}',\n"
        "'{\"age\": {\"$gte\": 18}}', '{\"$or\": [{\"tags\": {\"$contains\": \"x\"}}, ...]}'"
        " with\n$eq $ne $gt $gte $lt $lte $in $nin $exists $contains and $and $or $not on dotted\n"
        "paths of plain names (see the README); a malformed filter is an error naming what is\n"
        "wrong and where. Words are runs of letters and digits, in any ASCII case; --vector finds\n"
        "the embeddings 'put --embedding' stored. Filter only: items in key order, score 0.\n"
        "Text only: by text relevance; vector only: by cosine similarity; both: by reciprocal\n"
        "rank fusion. Higher scores are better. TIME is ISO-8601 UTC (2026-12-01T10:00:00Z, a\n"
        "fraction of a second allowed) or milliseconds since the Unix epoch.\n"
        "Prints one line per item: KEY<TAB>SCORE<TAB>VALUE-JSON. With --json, one object per\n"
        "line: {\"key\", \"value\", \"score\", \"matched\": [\"text\", \"vector\"], \"created\",\n"
        "\"updated\"}, times as ISO-8601 UTC or null; 'import' reads these lines back.");
    on_run(*search, [a] {
      entity::search_query q;
      q.filter = entity::parse_json(a->filter, "the filter");
      q.text = a->text;
      if (!a->vector.empty()) q.vector = parse_vector(a->vector, "--vector");
      q.times = window_of(*a);
      q.limit = a->limit;
      q.offset = a->offset;
      with_memory(*a, [&](const entity::memory& mem) {
        for (const entity::search_hit& hit : mem.search(std::move(q))) {
          if (a->json)
            std::cout << hit_line(hit) << "\n";
          else
            std::cout << on_one_line(hit.key) << '\t' << show_score(hit.score) << '\t'
                      << dump_json(hit.value) << "\n";
        }
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* scopes =
        add_verb(*cmd, "scopes", "List the scopes that hold items, one per line, sorted", *a);
    scopes->add_option("PREFIX", a->prefix,
                       "only this scope and the scopes inside it: 'user-42', 'user-42:session-7'");
    scopes->add_option("--max-depth", a->max_depth, "cut every scope to its first N names")
        ->option_text("N")
        ->check(CLI::PositiveNumber);
    scopes->footer(
        "The scope of a key is everything before its last ':' (\"a:b\" for the key \"a:b:note\");\n"
        "keys without a ':' are in no scope. A PREFIX matches whole names: 'user-4' is not a\n"
        "prefix of 'user-42'. With --scope, the scopes inside that one, named relative to it.");
    on_run(*scopes, [a] {
      with_memory(*a, [&](const entity::memory& mem) {
        for (const std::string& s : mem.scopes(a->prefix, a->max_depth)) std::cout << s << "\n";
      });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* sweep = add_verb(
        *cmd, "sweep", "Delete the items whose time to live has run out; print how many", *a);
    sweep->footer(
        "Expired items are invisible to every read already; sweeping frees their room. With\n"
        "--scope, only that scope's items.");
    on_run(*sweep, [a] {
      with_memory(*a, [&](const entity::memory& mem) { std::cout << mem.sweep() << "\n"; });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* clear =
        add_verb(*cmd, "clear", "Remove the keys matching PATTERN; print how many", *a);
    clear->add_option("PATTERN", a->pattern, "a LIKE pattern")->capture_default_str();
    on_run(*clear, [a] {
      with_memory(*a,
                  [&](const entity::memory& mem) { std::cout << mem.clear(a->pattern) << "\n"; });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* size = add_verb(*cmd, "size", "Print how many keys there are", *a);
    on_run(*size, [a] {
      with_memory(*a, [&](const entity::memory& mem) { std::cout << mem.size() << "\n"; });
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* import = add_verb(*cmd, "import", "Store every item of a JSON Lines file", *a);
    import
        ->add_option("FILE", a->file,
                     "JSON Lines, one {\"key\": ..., \"value\": ...} per line; - for stdin")
        ->required();
    add_max_line_bytes_option(*import, a->max_line_bytes);
    add_ttl_option(*import, *a);
    import->footer(
        "All items are stored in one transaction: a bad line (not JSON, nested deeper than 512\n"
        "levels, longer than --max-line-bytes, not an object, no string \"key\", no \"value\")\n"
        "fails with 'error: FILE:LINE: why' and stores nothing. Blank lines are skipped; a key\n"
        "given twice keeps its last value. Prints how many were stored. The times a line of\n"
        "'export --times' holds (\"created\", \"updated\", \"expires\", \"ttl\") are restored; a\n"
        "time a line does not hold is what 'put' would give. With --ttl every item stored\n"
        "expires SECONDS after the import, whatever its line says.");
    on_run(*import, [a] {
      std::vector<entity::memory_item> items = read_items(a->file, a->max_line_bytes);
      std::size_t n = items.size();
      if (const auto ttl = ttl_of(*a))
        for (entity::memory_item& item : items) {
          item.ttl = *ttl;
          item.expires.reset();
        }
      with_memory(*a, [&](const entity::memory& mem) { mem.restore(std::move(items)); });
      std::cout << n << "\n";
    });
  }
  {
    auto a = std::make_shared<memory_args>();
    CLI::App* exp = add_verb(*cmd, "export", "Write every item as JSON Lines, sorted by key", *a);
    exp->add_option("FILE", a->file, "where to write; standard output when not given");
    exp->add_flag("--times", a->times,
                  "with each item's created and updated times, and its expiry and ttl when it "
                  "has one");
    exp->footer(
        "The output is what 'import' reads: export, import and export again give the same bytes.\n"
        "With --times each line also holds \"created\" and \"updated\" (null when unknown) and,\n"
        "for an item that expires, \"expires\" and \"ttl\" (seconds): import restores them.\n"
        "FILE is written whole or not at all (through a temporary file renamed over it); it may\n"
        "not be the database or its -wal/-shm file. An item that cannot be exported unchanged (a\n"
        "stored value that is not JSON or is nested deeper than 512 levels, a key that is not\n"
        "UTF-8) stops the export with an error naming its key: nothing is written.");
    on_run(*exp, [a] {
      if (!a->file.empty()) refuse_database_file(a->db, a->file);
      with_memory(*a, [&](const entity::memory& mem) {
        std::string text = export_lines(mem, a->times);
        if (a->file.empty()) {
          std::cout << text;
          return;
        }
        // Again with the database open: its -wal and -shm files exist now.
        refuse_database_file(a->db, a->file);
        replace_file(a->file, text);
      });
    });
  }
}

}  // namespace entitydb
