#!/bin/sh
# install_check.sh MODE BUILD [SANITIZERS]: installs the build into a fresh temporary prefix,
# moves the whole tree elsewhere (so nothing may point at where it was installed, nor at the
# configure-time prefix), and uses it as an application would, with no file rewritten:
#   pkgconfig     pkg-config alone: the flags name the moved prefix; a program links against the
#                 shared library (with the rpath the README documents) and against the static
#                 one; only tc_ symbols are exported; the installed CLI runs.
#   find_package  a CMake project with find_package(tiercache VERSION) and
#                 CMAKE_PREFIX_PATH: tiercache::tiercache and tiercache::tiercache_static link
#                 and run; a version from another minor is refused.
# Every program runs with an empty environment (env -i), so without LD_LIBRARY_PATH. With
# SANITIZERS (the build's TC_SANITIZE) the programs are built with them too, as a library
# built with them requires.
set -eu
mode=$1; build=$2; san=${3:-}
CFLAGS_SAN=""
if [ -n "$san" ]; then CFLAGS_SAN="-fsanitize=$san"; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install_check ($mode): $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/staged" >/dev/null
mv "$tmp/staged" "$tmp/moved"
P=$tmp/moved
configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")

# The installed descriptions hold neither the staging path nor the configure-time prefix
# (as a whole path: followed by '/', a quote, a space or the end of the line).
re_of() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }
for f in $(find "$P" -name '*.pc' -o -name '*.cmake'); do
    if grep -n -E -e "$(re_of "$tmp/staged")" -e "$(re_of "$configured")(/|\"| |\$)" "$f"; then
        fail "$f names the staging directory or the configure-time prefix $configured"
    fi
done

pc=$(find "$P" -name tiercache.pc)
[ -n "$pc" ] || fail "no tiercache.pc installed"
libdir_of_pc=$(cd "$(dirname "$pc")/.." && pwd)

cat > "$tmp/app.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <tiercache.h>
int main(void) {
    tc_config *cfg; tc_cache *c; char err[TC_ERRBUF_SIZE];
    if (tc_config_new(&cfg) != 0) return 1;
    if (tc_open(cfg, &c, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    tc_config_free(cfg);
    if (tc_set(c, "k", 1, "v", 1, 0) != 0) return 1;
    char buf[8]; size_t len = sizeof buf;
    if (tc_get(c, "k", 1, buf, &len, NULL) != 0 || len != 1 || buf[0] != 'v') return 1;
    tc_close(c);
    puts("ok");
    return 0;
}
C

# Runs a program with an empty environment; it must print "ok" and, when it needs
# libtiercache.so, load the one in the moved prefix.
run_app() {
    out=$(env -i "$1") || fail "$1 failed (exit $?)"
    [ "$out" = ok ] || fail "$1 printed '$out'"
    if readelf -d "$1" | grep -q 'NEEDED.*libtiercache'; then
        env -i LD_TRACE_LOADED_OBJECTS=1 "$1" | grep 'libtiercache' | grep -q "$P/" ||
            fail "$1 does not load libtiercache from $P: $(env -i LD_TRACE_LOADED_OBJECTS=1 "$1" | grep tiercache)"
    fi
}

case $mode in
pkgconfig)
    export PKG_CONFIG_PATH="$(dirname "$pc")"
    flags=$(pkg-config --cflags --libs tiercache)
    case " $flags " in
    *" -I$P/"*" -L$P/"*) ;;
    *) fail "pkg-config --cflags --libs prints '$flags', not paths into $P" ;;
    esac
    incdir=$(pkg-config --variable=includedir tiercache)
    libdir=$(pkg-config --variable=libdir tiercache)
    [ -f "$incdir/tiercache.h" ] || fail "includedir $incdir has no tiercache.h"
    [ -f "$libdir/libtiercache.so" ] || fail "libdir $libdir has no libtiercache.so"
    [ "$(cd "$libdir" && pwd)" = "$libdir_of_pc" ] || fail "libdir $libdir is not where the .pc file lies"

    # shared, with the rpath the README documents for a prefix outside the loader's paths
    cc $CFLAGS_SAN -o "$tmp/app_shared" "$tmp/app.c" $(pkg-config --cflags --libs tiercache) \
        -Wl,-rpath,"$libdir"
    readelf -d "$tmp/app_shared" | grep -q 'NEEDED.*libtiercache\.so' || fail "app_shared is not linked to libtiercache.so"
    run_app "$tmp/app_shared"
    # static: the archive first, then what pkg-config --static says it needs
    cc $CFLAGS_SAN -o "$tmp/app_static" "$tmp/app.c" $(pkg-config --cflags tiercache) \
        "$libdir/libtiercache.a" -Wl,--as-needed $(pkg-config --static --libs tiercache)
    if readelf -d "$tmp/app_static" | grep -q 'NEEDED.*libtiercache'; then fail "app_static needs libtiercache.so"; fi
    run_app "$tmp/app_static"

    # hidden visibility: only tc_ symbols are exported, and no internal tc__ one
    syms=$(nm -D --defined-only "$libdir/libtiercache.so" | awk '{print $3}')
    if echo "$syms" | grep -v '^tc_' | grep -v '^_' | grep .; then fail "unexpected exported symbols"; fi
    if echo "$syms" | grep '^tc__'; then fail "internal tc__ symbols exported"; fi

    # the installed CLI runs from the moved prefix with an empty environment
    v=$(env -i "$P/bin/tiercache" --version) || fail "the installed CLI does not run"
    case $v in *"$(pkg-config --modversion tiercache)"*) ;; *) fail "tiercache --version printed '$v'" ;; esac
    ;;
find_package)
    version=$(sed -n 's/^Version: //p' "$pc")
    minor=${version%.*}
    mkdir "$tmp/consumer"
    cp "$tmp/app.c" "$tmp/consumer/app.c"
    cat > "$tmp/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(tiercache 999.0 QUIET)
if(tiercache_FOUND)
  message(FATAL_ERROR "find_package(tiercache 999.0) accepted version \${tiercache_VERSION}")
endif()
find_package(tiercache $minor REQUIRED)
if(NOT tiercache_VERSION STREQUAL "$version")
  message(FATAL_ERROR "found version \${tiercache_VERSION}, installed $version")
endif()
message(STATUS "tiercache_DIR=\${tiercache_DIR}")
add_executable(app_shared app.c)
target_link_libraries(app_shared PRIVATE tiercache::tiercache)
add_executable(app_static app.c)
target_link_libraries(app_static PRIVATE tiercache::tiercache_static)
CMAKE
    cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$P" \
        -DCMAKE_C_FLAGS="$CFLAGS_SAN" -DCMAKE_EXE_LINKER_FLAGS="$CFLAGS_SAN" > "$tmp/configure.log" 2>&1 ||
        { cat "$tmp/configure.log" >&2; fail "the consumer project does not configure"; }
    grep -q "tiercache_DIR=$P/" "$tmp/configure.log" || fail "find_package did not find the package in $P: $(grep tiercache_DIR "$tmp/configure.log")"
    cmake --build "$tmp/consumer/build" > "$tmp/build.log" 2>&1 ||
        { cat "$tmp/build.log" >&2; fail "the consumer project does not build"; }
    readelf -d "$tmp/consumer/build/app_shared" | grep -q 'NEEDED.*libtiercache\.so' ||
        fail "tiercache::tiercache did not link libtiercache.so"
    if readelf -d "$tmp/consumer/build/app_static" | grep -q 'NEEDED.*libtiercache'; then
        fail "tiercache::tiercache_static linked libtiercache.so"
    fi
    run_app "$tmp/consumer/build/app_shared"
    run_app "$tmp/consumer/build/app_static"
    ;;
*) fail "unknown mode (pkgconfig or find_package)" ;;
esac
echo "install_check ($mode): ok"
