# Installs entity-db into a scratch prefix, then compiles and links two programs with nothing
# but `pkg-config --cflags --libs` and runs them:
#   entity-core  sqlite_consumer/main.cpp, SQLite only: no libpq on its command line nor loaded
#   entity       pkg_config/whole.cpp, the whole library (make_infrastructure, both engines)
# Given SOURCE_DIR, BUILD_DIR, WORK_DIR, CXX (the compiler) and LIBDIR (CMAKE_INSTALL_LIBDIR).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
find_program(PKG_CONFIG pkg-config REQUIRED)
entity_install()
set(ENV{PKG_CONFIG_PATH} ${WORK_DIR}/prefix/${LIBDIR}/pkgconfig)

function(build_with_pkg_config package source program)
  execute_process(COMMAND ${PKG_CONFIG} --cflags --libs ${package}
    RESULT_VARIABLE rc OUTPUT_VARIABLE flags ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags --libs ${package} failed: ${err}")
  endif()
  message("pkg-config --cflags --libs ${package}: ${flags}")
  if(package STREQUAL "entity-core" AND flags MATCHES "-lpq|postgres")
    message(FATAL_ERROR "${package} names PostgreSQL: ${flags}")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  execute_process(COMMAND ${CXX} -O1 ${source} ${flags} -o ${program} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "compiling ${source} with ${package}'s flags failed")
  endif()
endfunction()

build_with_pkg_config(entity-core ${SOURCE_DIR}/tests/install/sqlite_consumer/main.cpp
  ${WORK_DIR}/sqlite_consumer)
entity_check_libpq(${WORK_DIR}/sqlite_consumer)
entity_run_program(${WORK_DIR}/sqlite_consumer "sqlite consumer ok" ${WORK_DIR}/data/core.db)

build_with_pkg_config(entity ${SOURCE_DIR}/tests/install/pkg_config/whole.cpp ${WORK_DIR}/whole)
entity_check_libpq(${WORK_DIR}/whole EXPECT_LIBPQ)
entity_run_program(${WORK_DIR}/whole "whole consumer ok" ${WORK_DIR}/data/whole.db)
