# What the install tests share (cmake -P scripts given SOURCE_DIR, BUILD_DIR and WORK_DIR).

# Installs the build tree into ${WORK_DIR}/prefix, afresh.
function(entity_install)
  file(REMOVE_RECURSE ${WORK_DIR})
  execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix
    RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install failed")
  endif()
endfunction()

# Runs `program` with `args`; fails unless it exits 0 and prints `expected`.
function(entity_run_program program expected)
  execute_process(COMMAND ${program} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expected}")
    message(FATAL_ERROR "${program} failed (exit ${rc})")
  endif()
endfunction()

# Fails when `program` loads libpq (`ldd`: its libraries, those they need included), or, with
# EXPECT_LIBPQ, when it does not.
function(entity_check_libpq program)
  cmake_parse_arguments(arg "EXPECT_LIBPQ" "" "" ${ARGN})
  execute_process(COMMAND ldd ${program} RESULT_VARIABLE rc OUTPUT_VARIABLE libs)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ldd ${program} failed")
  endif()
  if(libs MATCHES "libpq\\.so" AND NOT arg_EXPECT_LIBPQ)
    message(FATAL_ERROR "${program} loads libpq:\n${libs}")
  elseif(NOT libs MATCHES "libpq\\.so" AND arg_EXPECT_LIBPQ)
    message(FATAL_ERROR "${program} does not load libpq:\n${libs}")
  endif()
endfunction()
