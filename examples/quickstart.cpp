// A first tour of entity-db: the same memory used from a coroutine and from plain code.
//   quickstart [DB_PATH]       (default ./var/demo.db)
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <entity/entity.hpp>
#include <iostream>

namespace asio = boost::asio;
using namespace std::chrono_literals;

asio::awaitable<void> agent_turn(entity::memory mem) {
  // Async: nothing here blocks the io_context's thread.
  // (g++ 12 cannot keep string literals of a braced list alive across co_await: name them.)
  entity::json task_value = {{"goal", "book a flight"}, {"done", false}};
  co_await mem.async_store("task:1", task_value, asio::use_awaitable);
  auto task = co_await mem.async_load("task:1", asio::use_awaitable);
  std::cout << "async load  task:1 = " << task->dump() << "\n";
  entity::memory::items notes_in = {{"note:a", "likes aisle seats"}, {"note:b", {1, 2, 3}}};
  co_await mem.async_batch_store(std::move(notes_in), asio::use_awaitable);
  std::vector<std::string> wanted = {"note:a", "note:b", "note:missing"};
  auto notes = co_await mem.async_batch_load(std::move(wanted), asio::use_awaitable);
  std::cout << "async batch " << notes.size() << " of 3 keys found\n";
}

int main(int argc, char** argv) {
  entity::sqlite_params params;
  params.path = argc > 1 ? argv[1] : "var/demo.db";
  params.query_timeout = 5s;
  auto infra = std::make_shared<entity::sqlite_infrastructure>(params);
  infra->startup();
  entity::database db(infra);
  entity::memory mem(db);

  asio::io_context io;
  asio::co_spawn(io, agent_turn(mem), asio::detached);
  io.run();

  // Sync: the same memory from code without an event loop.
  mem.store("user:name", "Ada");
  std::cout << "sync load   user:name = " << mem.load("user:name", "?").dump() << "\n";
  auto alice = mem.scope("alice");
  alice.store("mood", "curious");
  std::cout << "scope alice keys: " << alice.keys().size() << ", memory size: " << mem.size()
            << "\n";

  // Layer 2 directly: SQL with bound parameters.
  db.execute("CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, who TEXT)");
  db.execute("INSERT INTO visits (who) VALUES (?)", {"quickstart"});
  auto row = db.fetch_one("SELECT count(*) AS n FROM visits");
  std::cout << "visits so far: " << row->get<std::int64_t>("n") << "\n";

  auto s = db.stats();
  std::cout << "operations " << s.operations << ", errors " << s.errors << ", p50 "
            << s.p50_latency_us << " us\n";
  infra->shutdown();
  return 0;
}
