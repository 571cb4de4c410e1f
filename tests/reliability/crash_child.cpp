// The process the crash test kills: stores keys from several threads and prints each key on
// stdout only after its store has returned (that is, after the commit that holds it).
//   entity_crash_child DB_PATH normal|durable FIRST_KEY
#include <cstdio>
#include <entity/entity.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: entity_crash_child DB_PATH normal|durable FIRST_KEY\n");
    return 2;
  }
  entity::sqlite_params p;
  p.path = argv[1];
  if (std::string(argv[2]) == "durable") p.synchronous = entity::synchronous_mode::full;
  long first = std::stol(argv[3]);
  auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
  infra->startup();
  entity::memory mem{entity::database(infra)};
  std::mutex out;
  std::vector<std::thread> writers;
  // Four writers so that stores ride group commits, the path most worth killing mid-way.
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (long i = first + t;; i += 4) {
        std::string key = "k" + std::to_string(i);
        mem.store(key, {{"i", i}, {"pad", std::string(200, 'x')}});
        std::lock_guard lk(out);
        std::fprintf(stdout, "%s\n", key.c_str());
        std::fflush(stdout);
      }
    });
  }
  for (auto& w : writers) w.join();
}
