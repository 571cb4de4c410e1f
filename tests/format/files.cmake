# The C++ files .clang-format governs: the project's own sources, headers, tests, tools,
# benchmark, examples and Python binding (nothing generated, nothing in a build folder).
function(entity_format_files out root)
  set(globs "")
  foreach(dir include src tests tools bench examples python/src)
    list(APPEND globs "${root}/${dir}/*.cpp" "${root}/${dir}/*.hpp" "${root}/${dir}/*.h")
  endforeach()
  file(GLOB_RECURSE found LIST_DIRECTORIES false ${globs})
  list(SORT found)
  set(${out} ${found} PARENT_SCOPE)
endfunction()
