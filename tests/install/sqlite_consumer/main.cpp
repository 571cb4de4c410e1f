// A program on SQLite alone, knowing entity-db only through its installed package (CMake's
// entity::core or pkg-config's entity-core): writes through every layer into a file, closes it,
// opens it again and reads everything back.
//   sqlite_consumer DB_PATH
#include <entity/database.hpp>
#include <entity/memory.hpp>
#include <entity/sqlite.hpp>
#include <entity/vector_store.hpp>
#include <iostream>
#include <string>
#include <vector>

namespace {

int fail(const std::string& what) {
  std::cerr << "sqlite consumer: " << what << "\n";
  return 1;
}

std::shared_ptr<entity::sqlite_infrastructure> open(const std::string& path) {
  entity::sqlite_params p;
  p.path = path;
  auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
  infra->startup();
  return infra;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: sqlite_consumer DB_PATH");
  entity::engine_target where = entity::parse_target(std::string("sqlite:") + argv[1]);
  if (where.postgres || where.location != argv[1]) return fail("parse_target");
  const std::vector<float> vec = {0.25f, 0.5f, 1.0f};
  {
    auto infra = open(where.location);
    entity::database db(infra);
    db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)");
    db.execute("DELETE FROM notes");
    db.execute("INSERT INTO notes (id, body) VALUES (?, ?)", {7, "written"});
    entity::memory mem(db);
    mem.store("greeting", {{"text", "hello"}});
    entity::vector_store vs(db);
    vs.create_collection("docs", vec.size());
    vs.upsert("docs", "a", vec, {{"tag", "first"}});
    infra->shutdown();
  }
  auto infra = open(where.location);
  entity::database db(infra);
  if (db.backend_name() != "sqlite") return fail("backend " + std::string(db.backend_name()));
  auto row = db.fetch_one("SELECT body FROM notes WHERE id = ?", {7});
  if (!row || row->get<std::string>("body") != "written") return fail("the row is not back");
  auto greeting = entity::memory(db).load("greeting");
  if (!greeting || (*greeting)["text"] != "hello") return fail("the memory is not back");
  auto item = entity::vector_store(db).get("docs", "a");
  if (!item || item->vector != vec || item->metadata["tag"] != "first")
    return fail("the vector is not back");
  infra->shutdown();
  std::cout << "sqlite consumer ok\n";
  return 0;
}
