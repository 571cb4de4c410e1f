// The main of the test programs: gtest's own, and one flag of ours,
// --entity_list_concurrency_tests, which prints the names of the tests defined as concurrency
// tests (concurrency.hpp) instead of running anything.
#include <gtest/gtest.h>

#include <iostream>
#include <string_view>

#include "concurrency.hpp"

int main(int argc, char** argv) {
  bool list = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (entity::test::concurrency::list_flag == argv[i])
      list = true;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = nullptr;
  ::testing::InitGoogleTest(&argc, argv);
  if (list) return entity::test::concurrency::list(std::cout, std::cerr);
  return RUN_ALL_TESTS();
}
