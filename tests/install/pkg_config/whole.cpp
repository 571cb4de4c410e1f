// A program built with `pkg-config --cflags --libs entity` (the whole library): opens a SQLite
// file through make_infrastructure, which names the PostgreSQL engine too, writes and reads back.
//   whole DB_PATH
#include <entity/entity.hpp>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 1;
  if (!entity::parse_target("postgresql://localhost/x").postgres) return 1;
  std::string url = std::string("sqlite://") + argv[1];
  {
    auto infra = entity::make_infrastructure(url);
    infra->startup();
    entity::memory(entity::database(infra)).store("greeting", {{"text", "hello"}});
    infra->shutdown();
  }
  auto infra = entity::make_infrastructure(url);
  infra->startup();
  entity::database db(infra);
  auto greeting = entity::memory(db).load("greeting");
  bool ok = db.backend_name() == "sqlite" && greeting && (*greeting)["text"] == "hello";
  infra->shutdown();
  if (!ok) {
    std::cerr << "whole consumer: the memory is not back\n";
    return 1;
  }
  std::cout << "whole consumer ok\n";
  return 0;
}
