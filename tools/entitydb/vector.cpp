// entitydb vector: vector collections from the shell: create one, add vectors one at a time or
// from JSON Lines ({"id": ..., "vector": [...], "metadata": {...}} per line), search them.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>

#include "commands.hpp"
#include "common.hpp"
#include "json_lines.hpp"

namespace entitydb {
namespace {

using entity::json;

// The options of every verb; one verb runs per invocation, so they can share one record.
struct vector_args {
  std::string db;
  std::string name;
  std::size_t dim = 0;
  std::string metric = "cosine";
  std::string id;
  std::string vector;
  std::string metadata;
  std::string file;
  std::int64_t k = 10;
  bool exact = false;
  std::string filter;
  std::size_t max_line_bytes = default_max_line_bytes;
};

std::vector<float> parse_vector(const std::string& text) {
  entity::json_text_problem problem;
  std::optional<json> j = entity::parse_json(text, problem);
  if (!j)
    throw failure(problem.too_deep
                      ? "the vector is " + problem.reason
                      : "the vector is not JSON (write it as [0.1, 0.2, ...]): " + problem.reason);
  return to_floats(*j, "the vector");
}

json parse_object(const std::string& text, std::string_view what) {
  if (text.empty()) return json::object();
  entity::json_text_problem problem;
  std::optional<json> parsed = entity::parse_json(text, problem);
  if (!parsed)
    throw failure(std::string(what) + (problem.too_deep ? " is " : " is not JSON: ") +
                  problem.reason);
  json j = std::move(*parsed);
  if (!j.is_object())
    throw failure(std::string(what) + " must be a JSON object, like '{\"tag\": \"x\"}'");
  return j;
}

// The collection's entry, or a failure naming it.
entity::collection_info collection_named(const entity::vector_store& store,
                                         const std::string& name) {
  if (!entity::vector_store::valid_name(name))
    throw failure("'" + name +
                  "' is not a valid collection name: use 1 to 63 letters, digits or '_', "
                  "not starting with a digit");
  for (auto& c : store.list_collections())
    if (c.name == name) return c;
  throw failure("no vector collection named '" + name + "'");
}

// Reads JSON Lines of {"id": ..., "vector": [...], "metadata": {...}}; any bad line fails
// naming FILE:LINE, so that nothing is stored from a file that is not entirely right. Blank
// lines are skipped.
entity::vector_store::items read_items(const std::string& file, const entity::collection_info& c,
                                       std::size_t max_line_bytes) {
  entity::vector_store::items items;
  for_each_json_line(
      file,
      [&](json& j, const line_failure& bad) { items.push_back(vector_item_of_line(j, bad, c)); },
      max_line_bytes);
  return items;
}

// The shortest text that reads back as the same float.
std::string show(float f) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(f);
}

// A verb of `vector` with the --db every verb takes.
CLI::App* add_verb(CLI::App& vector_cmd, const std::string& name, const std::string& about,
                   vector_args& a) {
  CLI::App* verb = vector_cmd.add_subcommand(name, about);
  add_db_option(*verb, a.db);
  return verb;
}

}  // namespace

void add_vector_command(CLI::App& app) {
  auto a = std::make_shared<vector_args>();
  CLI::App* cmd = app.add_subcommand("vector", "Store and search vector collections");
  cmd->require_subcommand(1);
  cmd->footer(
      "Vectors are JSON arrays of numbers, stored as float32; metadata is a JSON object.\n"
      "Distances, smaller is nearer: cosine 1 - cos(a, b); l2 the squared Euclidean distance;\n"
      "ip the negated inner product.\n"
      "Exit status: 0 success, 1 the operation failed, 2 a usage error.");

  CLI::App* create = add_verb(*cmd, "create", "Create a collection of vectors of --dim floats", *a);
  create
      ->add_option("NAME", a->name,
                   "the collection: letters, digits, '_'; not starting with a digit")
      ->required();
  create->add_option("--dim", a->dim, "the dimension of every vector")
      ->required()
      ->check(CLI::Range(std::size_t{1}, entity::vector_store::max_dim));
  create->add_option("--metric", a->metric, "cosine, l2 or ip (inner product)")
      ->check(CLI::IsMember({"cosine", "l2", "ip", "inner_product"}))
      ->capture_default_str();
  create->footer(
      "Creating a collection that exists with the same dimension and metric does nothing.");
  on_run(*create, [a] {
    engine e(a->db);
    entity::vector_store store(e.db());
    store.create_collection(a->name, a->dim, entity::parse_metric(a->metric).value());
  });

  CLI::App* add = add_verb(*cmd, "add", "Store one vector under ID (replacing any it had)", *a);
  add->add_option("NAME", a->name, "the collection")->required();
  add->add_option("ID", a->id, "the vector's id")->required();
  add->add_option("JSON_ARRAY", a->vector, "the vector: '[0.1, 0.2, ...]'")->required();
  add->add_option("--metadata", a->metadata, "a JSON object stored with the vector");
  on_run(*add, [a] {
    std::vector<float> v = parse_vector(a->vector);
    json meta = parse_object(a->metadata, "--metadata");
    engine e(a->db);
    entity::vector_store store(e.db());
    store.upsert(a->name, a->id, std::move(v), std::move(meta));
  });

  CLI::App* import = add_verb(*cmd, "import", "Store every vector of a JSON Lines file", *a);
  import->add_option("NAME", a->name, "the collection")->required();
  import
      ->add_option("FILE", a->file,
                   "JSON Lines, one {\"id\": ..., \"vector\": [...], \"metadata\": {...}} per "
                   "line; - for stdin")
      ->required();
  add_max_line_bytes_option(*import, a->max_line_bytes);
  import->footer(
      "All vectors are stored in one transaction: a bad line (not JSON, longer than\n"
      "--max-line-bytes, no string \"id\", a \"vector\" that is not an array of numbers or has\n"
      "the wrong dimension, \"metadata\" that is not an object) fails with\n"
      "'error: FILE:LINE: why' and stores nothing. Blank lines are skipped; an id given twice\n"
      "keeps its last vector. Prints how many were stored.");
  on_run(*import, [a] {
    engine e(a->db);
    entity::vector_store store(e.db());
    entity::collection_info c = collection_named(store, a->name);
    entity::vector_store::items items = read_items(a->file, c, a->max_line_bytes);
    std::size_t n = items.size();
    store.upsert_batch(a->name, std::move(items));
    std::cout << n << "\n";
  });

  CLI::App* search = add_verb(*cmd, "search", "Print the vectors nearest to a query", *a);
  search->add_option("NAME", a->name, "the collection")->required();
  search->add_option("JSON_ARRAY", a->vector, "the query vector: '[0.1, 0.2, ...]'")->required();
  search->add_option("-k", a->k, "how many results")->capture_default_str();
  search->add_flag("--exact", a->exact, "scan every vector instead of searching the HNSW graph");
  search->add_option("--filter", a->filter,
                     "a JSON object: only vectors whose metadata has each of its keys with an "
                     "equal value");
  search->footer(
      "Prints one line per result, nearest first: ID<TAB>DISTANCE<TAB>METADATA-JSON.\n"
      "Without --exact, collections of more than 1,000 vectors are searched approximately.");
  on_run(*search, [a] {
    std::vector<float> q = parse_vector(a->vector);
    json filter = parse_object(a->filter, "--filter");
    engine e(a->db);
    entity::vector_store store(e.db());
    auto mode = a->exact ? entity::search_mode::exact : entity::search_mode::approximate;
    for (const entity::vector_match& m : store.search(a->name, q, a->k, std::move(filter), mode))
      std::cout << m.id << '\t' << show(m.distance) << '\t' << dump_json(m.metadata) << '\n';
  });

  CLI::App* list =
      add_verb(*cmd, "list", "List the collections: NAME<TAB>DIM<TAB>METRIC<TAB>COUNT", *a);
  on_run(*list, [a] {
    engine e(a->db);
    entity::vector_store store(e.db());
    for (const auto& c : store.list_collections())
      std::cout << c.name << '\t' << c.dim << '\t' << entity::to_string(c.metric) << '\t' << c.count
                << '\n';
  });

  CLI::App* drop = add_verb(*cmd, "drop", "Remove a collection and all its vectors", *a);
  drop->add_option("NAME", a->name, "the collection")->required();
  drop->footer("A missing collection prints 'error: no vector collection named NAME' and exits 1.");
  on_run(*drop, [a] {
    engine e(a->db);
    entity::vector_store store(e.db());
    if (!store.drop_collection(a->name))
      throw failure("no vector collection named '" + a->name + "'");
  });
}

}  // namespace entitydb
