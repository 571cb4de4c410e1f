# Prints the files .clang-format governs, one per line (scripts/format reads them).
#   cmake -DROOT=... -P list_files.cmake
include(${CMAKE_CURRENT_LIST_DIR}/files.cmake)
entity_format_files(files "${ROOT}")
foreach(f IN LISTS files)
  message("${f}")
endforeach()
