# Read by ctest with the test list, after gtest_discover_tests has added the tests of a program:
# gives the label `concurrency` to each test the program says was defined with
# ENTITY_CONCURRENT_TEST, _F or _P (the rule is in concurrency.hpp). The includer sets
# ENTITY_TEST_PROGRAM (the program) and ENTITY_TEST_LIST (the name of the variable in which
# gtest_discover_tests lists the tests it added from it).
cmake_policy(VERSION 3.25)

if(NOT EXISTS "${ENTITY_TEST_PROGRAM}")
  return()  # not built: gtest_discover_tests has added <program>_NOT_BUILT in its place
endif()

execute_process(
  COMMAND "${ENTITY_TEST_PROGRAM}" --entity_list_concurrency_tests
  OUTPUT_VARIABLE listed
  ERROR_VARIABLE errors
  RESULT_VARIABLE result
  TIMEOUT 60)
if(NOT result EQUAL 0)
  message(FATAL_ERROR
    "${ENTITY_TEST_PROGRAM} --entity_list_concurrency_tests failed (${result}):\n${errors}")
endif()

string(REPLACE "\n" ";" listed "${listed}")
foreach(name IN LISTS listed)
  if(name STREQUAL "")
    continue()
  endif()
  if(NOT name IN_LIST ${ENTITY_TEST_LIST})
    message(FATAL_ERROR "${name} is a concurrency test, but ctest has no test of that name")
  endif()
  set_tests_properties("${name}" PROPERTIES LABELS concurrency)
endforeach()
