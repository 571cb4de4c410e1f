# pkg-config files for the installed package, beside the CMake one:
#   entity-core.pc  entity::core, the SQLite-only part: -lentity_core
#   entity.pc       entity::db, the whole library (entity-core and the PostgreSQL engine)
# `pkg-config --cflags --libs entity-core` (or entity) is all a program needs.
#
# Relocatable: prefix is found from the file's own place (${pcfiledir}), so a package installed
# with `cmake --install --prefix DIR` anywhere is right.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(ENTITY_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(ENTITY_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
file(RELATIVE_PATH ENTITY_PC_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig"
  "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" ENTITY_PC_PREFIX "${ENTITY_PC_PREFIX}")

# Boost ships no .pc file: its headers' folder is named here when the compiler does not search
# it already.
set(ENTITY_PC_CFLAGS "")
get_target_property(boost_includes Boost::headers INTERFACE_INCLUDE_DIRECTORIES)
foreach(dir IN LISTS boost_includes)
  if(dir AND NOT dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    string(APPEND ENTITY_PC_CFLAGS " -I${dir}")
  endif()
endforeach()
# An instrumented build's archives need the sanitizer's runtime wherever they are linked.
set(ENTITY_PC_LIBS "")
if(ENTITY_SANITIZE)
  set(ENTITY_PC_LIBS " -fsanitize=${ENTITY_SANITIZE}")
endif()

foreach(pc entity-core entity)
  configure_file(${CMAKE_CURRENT_LIST_DIR}/${pc}.pc.in ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
