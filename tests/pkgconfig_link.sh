#!/bin/sh
# pkgconfig_link.sh BUILD SRC [SANITIZERS]: installs the library into a temporary prefix and
# builds a small program against it with pkg-config alone, static and shared, as an application
# would (with the sanitizers the library was built with, if any).
set -eu
build=$1; src=$2; san=${3:-}
CC="cc"
if [ -n "$san" ]; then CC="cc -fsanitize=$san"; fi
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
# the .pc file was configured for the build's prefix: point it at the temporary one
pc="$prefix/lib/pkgconfig/tiercache.pc"
[ -f "$pc" ] || pc=$(find "$prefix" -name tiercache.pc | head -n 1)
sed -i "s|^prefix=.*|prefix=$prefix|" "$pc"
export PKG_CONFIG_PATH=$(dirname "$pc")
cat > "$prefix/app.c" <<'C'
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
$CC -o "$prefix/app_shared" "$prefix/app.c" $(pkg-config --cflags --libs tiercache)
LD_LIBRARY_PATH=$(dirname "$pc")/.. "$prefix/app_shared" | grep -qx ok
$CC -o "$prefix/app_static" "$prefix/app.c" $(pkg-config --cflags tiercache) \
   "$(dirname "$pc")/../libtiercache.a" $(pkg-config --static --libs-only-l tiercache | sed 's/-ltiercache//')
"$prefix/app_static" | grep -qx ok
# hidden visibility: only tc_ symbols are exported
if nm -D --defined-only "$(dirname "$pc")/../libtiercache.so" | awk '{print $3}' | grep -v '^tc_' | grep -v '^_' | grep .; then
    echo "unexpected exported symbols" >&2; exit 1
fi
if nm -D --defined-only "$(dirname "$pc")/../libtiercache.so" | awk '{print $3}' | grep '^tc__'; then
    echo "internal tc__ symbols exported" >&2; exit 1
fi
echo "pkg-config link: ok"
