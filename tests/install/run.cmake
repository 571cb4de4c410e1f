# Installs entity-db into a scratch prefix, then builds and runs a consumer project that finds
# it with find_package(entity): proves the exported package is complete.
#   -DCONSUMER=NAME  the project in tests/install/NAME, its program NAME, run with a database
#                    file path (default: consumer, on entity::db)
#   -DNO_POSTGRES=ON the consumer is configured with PostgreSQL unfindable
#                    (CMAKE_DISABLE_FIND_PACKAGE_PostgreSQL), so a package that required it would
#                    fail; its link line and its program are checked to name no libpq
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
if(NOT CONSUMER)
  set(CONSUMER consumer)
endif()
entity_install()

set(configure_args)
if(NO_POSTGRES)
  list(APPEND configure_args -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=TRUE)
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/${CONSUMER}
  -B ${WORK_DIR}/build -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release
  ${configure_args}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${WORK_DIR}/build RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer failed")
endif()
set(program ${WORK_DIR}/build/${CONSUMER})

if(NO_POSTGRES)
  # The link line (Makefile generators write it down) names neither libpq nor the engine on it.
  set(link_txt ${WORK_DIR}/build/CMakeFiles/${CONSUMER}.dir/link.txt)
  if(EXISTS ${link_txt})
    file(READ ${link_txt} link_line)
    message("link line: ${link_line}")
    if(link_line MATCHES "libpq|-lpq|entity_postgres|libentity_db")
      message(FATAL_ERROR "the consumer's link line names PostgreSQL: ${link_line}")
    endif()
  endif()
  entity_check_libpq(${program})
  # The control: the same prefix, asked for the part that does need PostgreSQL, fails to
  # configure, so the consumer above did show that its part does not.
  file(WRITE ${WORK_DIR}/needs_postgres/CMakeLists.txt
    "cmake_minimum_required(VERSION 3.25)\nproject(needs_postgres LANGUAGES CXX)\n"
    "find_package(entity REQUIRED COMPONENTS db)\n")
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${WORK_DIR}/needs_postgres
    -B ${WORK_DIR}/needs_postgres/build -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix
    -DCMAKE_DISABLE_FIND_PACKAGE_PostgreSQL=TRUE
    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc EQUAL 0)
    message(FATAL_ERROR "find_package(entity COMPONENTS db) succeeded without PostgreSQL")
  endif()
endif()

entity_run_program(${program} "consumer ok" ${WORK_DIR}/data/consumer.db)
