# Dependencies of the WebAssembly build (included by the top-level CMakeLists.txt under
# emcmake). Eigen and nlohmann-json are header-only: their Debian headers are used as they
# are, through a folder that holds only them, so the host's /usr/include (glibc's headers)
# never comes before Emscripten's own libc headers.
set(LV_HOST_EIGEN_DIR /usr/include/eigen3 CACHE PATH "Folder holding Eigen/ (Debian's libeigen3-dev)")
set(LV_HOST_JSON_DIR /usr/include CACHE PATH "Folder holding nlohmann/json.hpp (Debian's nlohmann-json3-dev)")
if(NOT EXISTS ${LV_HOST_EIGEN_DIR}/Eigen/Core)
  message(FATAL_ERROR "Eigen not found in ${LV_HOST_EIGEN_DIR} (apt-get install libeigen3-dev)")
endif()
if(NOT EXISTS ${LV_HOST_JSON_DIR}/nlohmann/json.hpp)
  message(FATAL_ERROR "nlohmann/json.hpp not found in ${LV_HOST_JSON_DIR} (apt-get install nlohmann-json3-dev)")
endif()
set(lv_host_include ${CMAKE_BINARY_DIR}/host-include)
file(MAKE_DIRECTORY ${lv_host_include})
file(CREATE_LINK ${LV_HOST_EIGEN_DIR}/Eigen ${lv_host_include}/Eigen SYMBOLIC)
file(CREATE_LINK ${LV_HOST_JSON_DIR}/nlohmann ${lv_host_include}/nlohmann SYMBOLIC)

add_library(Eigen3::Eigen INTERFACE IMPORTED)
set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${lv_host_include})
add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES ${lv_host_include})
# The page runs the pipelines with one thread (threads = 1 never starts a std::thread), so
# the module needs neither SharedArrayBuffer nor cross-origin isolation headers.
add_library(Threads::Threads INTERFACE IMPORTED)

# C++20 library pieces the libc++ of emscripten 3.1.6 lacks (std::bit_cast, std::vector's <=>).
add_compile_options(-include ${CMAKE_CURRENT_LIST_DIR}/compat/lv_wasm_compat.h)
