// Concurrency tests: the tests where threads or processes race each other (concurrent callers,
// group commit, the pools, async hand-offs, deadlines and cancels that interrupt from another
// thread, shutdown while work is queued, several processes on one file).
//
// The rule: such a test is defined with ENTITY_CONCURRENT_TEST, ENTITY_CONCURRENT_TEST_F or
// ENTITY_CONCURRENT_TEST_P in place of TEST, TEST_F or TEST_P (same arguments, same test name):
//
//   ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ConcurrentWritersAllLand) { ... }
//   ENTITY_CONCURRENT_TEST_P(Memory, ConcurrentAsyncStoresShareGroupCommits) { ... }
//
// Those tests, and only those, carry the ctest label `concurrency`, the set `make tsan` runs
// under ThreadSanitizer (ctest -L concurrency). Nothing about the test's name decides it: a
// racing test defined with plain TEST escapes ThreadSanitizer whatever it is called.
//
// How: each macro records the test's suite and name here before defining it. The test
// program's main (test_main.cpp) prints the full names of the recorded tests when run with
// --entity_list_concurrency_tests, and concurrency_labels.cmake, which ctest reads after
// gtest_discover_tests has added the program's tests, labels those names. A recorded test that
// ctest does not have fails the reading of the tests, so the two cannot drift apart.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace entity::test::concurrency {

/// The flag test_main.cpp answers with the names of the concurrency tests, one per line.
inline constexpr std::string_view list_flag = "--entity_list_concurrency_tests";

/// One test defined with an ENTITY_CONCURRENT_TEST macro.
struct mark {
  std::string suite;  ///< as written in the macro: the fixture, or the TEST_P suite
  std::string name;   ///< as written in the macro
  bool parameterized = false;
};

inline std::vector<mark>& marks() {
  static std::vector<mark> all;
  return all;
}

/// Records a test (the macros call it during static initialisation); returns true.
inline bool add(const char* suite, const char* name, bool parameterized) {
  marks().push_back({suite, name, parameterized});
  return true;
}

/// The index in marks() of the mark that defined `test`, if one did. A TEST_P test is
/// registered as "Prefix/Suite" . "Name/param" for each instantiation.
inline std::optional<std::size_t> mark_of(const ::testing::TestInfo& test) {
  const std::string_view suite = test.test_suite_name(), name = test.name();
  for (std::size_t i = 0; i < marks().size(); ++i) {
    const mark& m = marks()[i];
    if (!m.parameterized) {
      if (suite == m.suite && name == m.name) return i;
      continue;
    }
    const bool suite_matches = suite == m.suite || suite.ends_with("/" + m.suite);
    if (suite_matches && name.starts_with(m.name + "/")) return i;
  }
  return std::nullopt;
}

/// Prints the full name (Suite.Name, as ctest names the test) of every registered test that
/// a macro defined, one per line. Call after InitGoogleTest, which registers the TEST_P
/// instantiations. Returns 1 (and says which) if a macro's test was never registered, as
/// happens to a TEST_P suite that is not instantiated.
inline int list(std::ostream& out, std::ostream& err) {
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  std::vector<bool> found(marks().size(), false);
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite& suite = *unit.GetTestSuite(i);
    for (int j = 0; j < suite.total_test_count(); ++j) {
      const ::testing::TestInfo& test = *suite.GetTestInfo(j);
      if (auto k = mark_of(test)) {
        found[*k] = true;
        out << test.test_suite_name() << '.' << test.name() << '\n';
      }
    }
  }
  int status = 0;
  for (std::size_t k = 0; k < found.size(); ++k) {
    if (found[k]) continue;
    err << "concurrency test " << marks()[k].suite << '.' << marks()[k].name
        << " is defined but no test of that name was registered\n";
    status = 1;
  }
  return status;
}

}  // namespace entity::test::concurrency

#define ENTITY_CONCURRENCY_MARK_(suite, name, parameterized)                    \
  [[maybe_unused]] static const bool entity_concurrency_mark_##suite##_##name = \
      ::entity::test::concurrency::add(#suite, #name, parameterized);

/// TEST(suite, name), labelled `concurrency`.
#define ENTITY_CONCURRENT_TEST(suite, name) \
  ENTITY_CONCURRENCY_MARK_(suite, name, false) TEST(suite, name)
/// TEST_F(fixture, name), labelled `concurrency`.
#define ENTITY_CONCURRENT_TEST_F(fixture, name) \
  ENTITY_CONCURRENCY_MARK_(fixture, name, false) TEST_F(fixture, name)
/// TEST_P(suite, name), labelled `concurrency` in every instantiation.
#define ENTITY_CONCURRENT_TEST_P(suite, name) \
  ENTITY_CONCURRENCY_MARK_(suite, name, true) TEST_P(suite, name)
