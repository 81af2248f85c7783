# CMake package for libdcp: find_package(dcp) gives
#   dcp::dcp         the shared library (libdcp.so), and its headers
#   dcp::dcp_static  the static library (libdcp.a); linking it also links
#                    cJSON, xxHash, threads and libdl
#   dcp::headers     the headers only (dcp/dcp.h, dcp/sys/*.h), e.g. for a plugin
# and dcp_PLUGIN_DIR, where the installed storage plugins are.

####### Expanded from @PACKAGE_INIT@ by configure_package_config_file() #######
####### Any changes to this file will be overwritten by the next CMake run ####
####### The input file was dcpConfig.cmake.in                            ########

get_filename_component(PACKAGE_PREFIX_DIR "${CMAKE_CURRENT_LIST_DIR}/../../../" ABSOLUTE)

macro(set_and_check _var _file)
  set(${_var} "${_file}")
  if(NOT EXISTS "${_file}")
    message(FATAL_ERROR "File or directory ${_file} referenced by variable ${_var} does not exist !")
  endif()
endmacro()

macro(check_required_components _NAME)
  foreach(comp ${${_NAME}_FIND_COMPONENTS})
    if(NOT ${_NAME}_${comp}_FOUND)
      if(${_NAME}_FIND_REQUIRED_${comp})
        set(${_NAME}_FOUND FALSE)
      endif()
    endif()
  endforeach()
endmacro()

####################################################################################

include(CMakeFindDependencyMacro)
find_dependency(Threads)

# dcp::dcp_static names cJSON and xxHash as pkg-config targets, as in the
# build of libdcp. They are only needed to link the static library.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  if(NOT TARGET PkgConfig::CJSON)
    pkg_check_modules(CJSON QUIET IMPORTED_TARGET libcjson)
  endif()
  if(NOT TARGET PkgConfig::XXHASH)
    pkg_check_modules(XXHASH QUIET IMPORTED_TARGET libxxhash)
  endif()
endif()

include("${CMAKE_CURRENT_LIST_DIR}/dcpTargets.cmake")

set(dcp_PLUGIN_DIR "${PACKAGE_PREFIX_DIR}/lib/dcp/plugins")
check_required_components(dcp)
