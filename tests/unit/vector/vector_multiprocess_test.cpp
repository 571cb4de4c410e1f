// Two processes, one vector file: a search in one process sees what another process wrote,
// though its index was loaded before the write. The registry's version is the only signal.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace {

using entity::json;
using entity::metric;
using entity::search_mode;
using entity::vector_store;

constexpr std::size_t dim = 16;

using entity::test::random_vector;
using entity::test::started;

entity::vector_store_params small_graph() {
  entity::vector_store_params p;
  p.hnsw_threshold = 50;  // the parent's approximate searches use a graph from the start
  p.hnsw_ef_construction = 64;
  return p;
}

// A child process that waits for the parent's go (a byte on a pipe), runs `body` against its
// own engine on `path`, and exits 0 when it succeeded. Forked before the parent starts any
// thread, so the child inherits no lock another thread held.
class child_process {
 public:
  child_process(std::string path, std::function<void(const vector_store&)> body) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::close(fds[1]);
      char go;
      int status = 3;
      if (::read(fds[0], &go, 1) == 1) status = run(path, body);
      // _exit: the child must not run the parent's atexit handlers or gtest's reporting.
      ::_exit(status);
    }
    ::close(fds[0]);
    go_fd_ = fds[1];
  }
  ~child_process() {
    if (go_fd_ >= 0) ::close(go_fd_);
    if (pid_ > 0 && !waited_) ::waitpid(pid_, nullptr, 0);
  }

  // Lets the child run and waits until it has finished; its exit status.
  int run_to_end() {
    char go = 'g';
    if (::write(go_fd_, &go, 1) != 1) return -1;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    waited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  static int run(const std::string& path, const std::function<void(const vector_store&)>& body) {
    try {
      entity::sqlite_params p;
      p.path = path;
      auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
      infra->startup();
      body(vector_store(entity::database(infra), small_graph()));
      infra->shutdown();
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      return 1;
    } catch (...) {
      return 2;
    }
  }

  pid_t pid_ = -1;
  int go_fd_ = -1;
  bool waited_ = false;
};

ENTITY_CONCURRENT_TEST(VectorMultiprocess, AnotherProcessesWritesAreSeen) {
  entity::test::temp_dir dir;
  const std::string path = dir.file("shared.db");
  std::mt19937 rng(17);
  const std::vector<float> target = random_vector(rng, dim);

  // The child adds a vector equal to `target` and 50 others, and erases "p0".
  child_process child(path, [&](const vector_store& store) {
    std::mt19937 child_rng(99);
    vector_store::items batch;
    batch.push_back({"from_child", target, json{{"by", "child"}}});
    for (int i = 0; i < 50; ++i)
      batch.push_back(
          {"c" + std::to_string(i), random_vector(child_rng, dim), json{{"by", "child"}}});
    store.upsert_batch("shared", std::move(batch));
    if (!store.erase("shared", "p0")) throw std::runtime_error("p0 was not there");
  });

  auto infra = started(path);
  vector_store store(entity::database(infra), small_graph());
  store.create_collection("shared", dim, metric::cosine);
  vector_store::items mine;
  for (int i = 0; i < 100; ++i)
    mine.push_back({"p" + std::to_string(i), random_vector(rng, dim), json{{"by", "parent"}}});
  store.upsert_batch("shared", mine);
  // Load both indexes (the scan's and the graph) before the child writes.
  const std::vector<float>& p0 = mine[0].vector;
  ASSERT_EQ(store.search("shared", p0, 1, {}, search_mode::exact).at(0).id, "p0");
  ASSERT_EQ(store.search("shared", p0, 1, {}, search_mode::approximate).at(0).id, "p0");
  ASSERT_EQ(store.count("shared"), 100);

  ASSERT_EQ(child.run_to_end(), 0);

  EXPECT_EQ(store.count("shared"), 150);
  for (search_mode mode : {search_mode::exact, search_mode::approximate}) {
    auto r = store.search("shared", target, 3, {}, mode);
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(r[0].id, "from_child");
    EXPECT_NEAR(r[0].distance, 0, 1e-5);
    EXPECT_EQ(r[0].metadata, (json{{"by", "child"}}));
    for (const auto& m : store.search("shared", p0, 20, {}, mode)) EXPECT_NE(m.id, "p0");
  }
  json by_child = {{"by", "child"}};
  EXPECT_EQ(store.search("shared", target, 100, by_child, search_mode::exact).size(), 51u);

  // Our own writes after theirs keep the index current without another reload.
  std::vector<float> again = random_vector(rng, dim);
  store.upsert("shared", "after", again);
  EXPECT_EQ(store.search("shared", again, 1, {}, search_mode::approximate).at(0).id, "after");
  EXPECT_EQ(store.count("shared"), 151);
}

ENTITY_CONCURRENT_TEST(VectorMultiprocess, ACollectionDroppedAndCreatedAnewElsewhereIsReloaded) {
  entity::test::temp_dir dir;
  const std::string path = dir.file("recreated.db");
  std::mt19937 rng(23);
  const std::vector<float> v = random_vector(rng, dim);

  child_process child(path, [&](const vector_store& store) {
    store.drop_collection("docs");
    store.create_collection("docs", dim, metric::l2);
    store.upsert("docs", "new", v);
  });

  auto infra = started(path);
  vector_store store(entity::database(infra), small_graph());
  store.create_collection("docs", dim, metric::l2);
  store.upsert("docs", "old", v);
  ASSERT_EQ(store.search("docs", v, 5).at(0).id, "old");

  ASSERT_EQ(child.run_to_end(), 0);

  auto r = store.search("docs", v, 5);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].id, "new");
  EXPECT_EQ(store.count("docs"), 1);
}

}  // namespace
