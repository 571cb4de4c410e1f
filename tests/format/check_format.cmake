# Every C++ file of the project is as .clang-format lays it out. Run by ctest (format.check);
# `scripts/format` rewrites the files that are not.
#   cmake -DSOURCE_DIR=... -DCLANG_FORMAT=... -P check_format.cmake
if(NOT CLANG_FORMAT)
  message(FATAL_ERROR
    "clang-format was not found when the build was configured: scripts/install-deps installs "
    "it (Debian's clang-format package); then configure again")
endif()
# Layouts differ between clang-format releases: the project's is that of Debian 12's, 14.
execute_process(COMMAND ${CLANG_FORMAT} --version OUTPUT_VARIABLE version)
if(NOT version MATCHES "version 14\\.")
  message(FATAL_ERROR "${CLANG_FORMAT} is not clang-format 14 (${version}): the layout the "
    "project keeps is clang-format 14's, Debian 12's clang-format package")
endif()
include(${CMAKE_CURRENT_LIST_DIR}/files.cmake)
entity_format_files(files "${SOURCE_DIR}")
list(LENGTH files count)
if(count LESS 50)
  message(FATAL_ERROR "only ${count} C++ files found under ${SOURCE_DIR}: the wrong folder?")
endif()
execute_process(
  COMMAND ${CLANG_FORMAT} --dry-run --Werror --style=file ${files}
  WORKING_DIRECTORY ${SOURCE_DIR}
  RESULT_VARIABLE rc
  ERROR_VARIABLE report)
if(NOT rc EQUAL 0)
  string(REGEX MATCHALL "[^\n]*: error: [^\n]*" problems "${report}")
  set(named "")
  foreach(p IN LISTS problems)
    string(REGEX REPLACE ":[0-9]+:[0-9]+: error:.*" "" f "${p}")
    list(APPEND named "${f}")
  endforeach()
  list(REMOVE_DUPLICATES named)
  list(JOIN named "\n  " listed)
  message(FATAL_ERROR
    "these files are not laid out as .clang-format says (run scripts/format):\n  ${listed}")
endif()
message(STATUS "${count} files laid out as .clang-format says")
