# Every dependency is a Debian package installed by scripts/install_deps.sh.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(PkgConfig REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Protobuf REQUIRED)
find_package(Boost 1.74 REQUIRED)
find_package(OpenSSL REQUIRED)  # SHA-256 of API keys, constant-time compare
find_package(prometheus-cpp CONFIG REQUIRED)  # /metrics: the registry and the text format

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(OPENBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas /usr/include REQUIRED)
add_library(tandem_openblas INTERFACE)
target_link_libraries(tandem_openblas INTERFACE ${BLAS_LIBRARIES})
target_include_directories(tandem_openblas INTERFACE ${OPENBLAS_INCLUDE_DIR})

pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx)
pkg_check_modules(CAIRO REQUIRED IMPORTED_TARGET cairo)  # tandem bench plot

if(TANDEM_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
