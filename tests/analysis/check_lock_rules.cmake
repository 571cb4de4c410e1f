# The lock annotations are checked: a guarded member touched without its mutex fails clang's
# analysis, and the same code with the lock compiles (so the failure is the analysis's).
#   cmake -DCLANGXX=... -DSOURCE_DIR=... -P check_lock_rules.cmake
if(NOT CLANGXX)
  message(FATAL_ERROR "clang++ was not found when the build was configured: scripts/install-deps "
    "installs it (Debian's clang package); then configure again")
endif()
set(flags -std=c++20 -fsyntax-only -Wthread-safety -Werror=thread-safety
  -I${SOURCE_DIR}/src ${SOURCE_DIR}/tests/analysis/lock_rules.cpp)
execute_process(COMMAND ${CLANGXX} ${flags} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the locked form does not compile:\n${err}")
endif()
execute_process(COMMAND ${CLANGXX} ${flags} -DENTITY_FORGET_THE_LOCK
  RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "requires holding mutex 'mu_'")
  message(FATAL_ERROR "a member written without its mutex was not refused:\n${err}")
endif()
message(STATUS "the analysis refuses a guarded member written without its mutex")
