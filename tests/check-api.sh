#!/bin/sh
# check-api.sh [BUILD] - the library's public surface, checked as a user sees it:
#  1. include/snapbox.h alone compiles as C11 and as C++17 (-Wall -Wextra
#     -Werror -pedantic), and it does not pull in the guest ABI (sbx_abi.h);
#  2. SBX_OPTS is ISO C11, and a C++ program fills a sized struct the
#     documented C++ way;
#  3. BUILD/libsnapbox.so exports exactly the symbols in tests/abi/snapbox.sym,
#     so an accidental export or removal fails here. After a deliberate
#     change, regenerate the list:
#       nm -D --defined-only BUILD/libsnapbox.so | awk '{print $3}' | sed 's/@.*//' \
#           | sort -u > tests/abi/snapbox.sym
set -eu
build=${1:-build}
CC=${CC:-gcc}
CXX=${CXX:-g++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

printf '#include "snapbox.h"\n' > "$tmp/only.c"
cp "$tmp/only.c" "$tmp/only.cpp"
$CC -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -fsyntax-only "$tmp/only.c"
$CXX -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -fsyntax-only "$tmp/only.cpp"
echo "check-api: snapbox.h compiles alone as C11 and C++17"
printf '#include "snapbox_oci.h"\nint oci_use(void);\nint oci_use(void) { SBX_OPTS(sbx_oci_opts, o, .insecure = true); return (int)o.sz; }\n' > "$tmp/oci.c"
$CC -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -fsyntax-only "$tmp/oci.c"
printf '#include "snapbox_oci.h"\n' > "$tmp/oci.cpp"
$CXX -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -fsyntax-only "$tmp/oci.cpp"
if $CC -std=c11 -Iinclude -I"$build/gen" -E "$tmp/only.c" | grep -q 'sbx_oci'; then
    echo "check-api: snapbox.h pulls in snapbox_oci.h" >&2
    exit 1
fi
echo "check-api: snapbox_oci.h compiles alone as C11 and C++17; snapbox.h stays independent of it"

if $CC -std=c11 -Iinclude -I"$build/gen" -E "$tmp/only.c" | grep -q 'sbx_abi'; then
    echo "check-api: snapbox.h pulls in the guest ABI (sbx_abi.h)" >&2
    exit 1
fi

cat > "$tmp/use.c" <<'C'
#include "snapbox.h"
int use(void);
int use(void)
{
    SBX_OPTS(sbx_snapshot_info, info);
    SBX_OPTS(sbx_config, cfg, .deadline_ms = 100, .mem_size = SBX_DEFAULT_MEM_SIZE);
    return (int)(info.sz + cfg.sz);
}
C
$CC -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -c -o "$tmp/use.o" "$tmp/use.c"
echo "check-api: SBX_OPTS, with and without fields, is ISO C11 (-pedantic)"

cat > "$tmp/use.cpp" <<'CXX'
#include "snapbox.h"
int main()
{
    sbx_config cfg{};
    cfg.sz = sizeof cfg;
    cfg.deadline_ms = 100;
    sbx_func_info fi{};
    fi.sz = sizeof fi;
    return (int)(cfg.deadline_ms + fi.nargs) - 100;
}
CXX
$CXX -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -I"$build/gen" -c -o "$tmp/use.o" "$tmp/use.cpp"
echo "check-api: a C++ program fills sized structs"

nm -D --defined-only "$build/libsnapbox.so" | awk '{print $3}' | sed 's/@.*//' | sort -u \
    > "$tmp/exported.sym"
if ! diff -u tests/abi/snapbox.sym "$tmp/exported.sym"; then
    echo "check-api: libsnapbox.so's exports differ from tests/abi/snapbox.sym (- missing, + extra)" >&2
    exit 1
fi
echo "check-api: libsnapbox.so exports the $(wc -l < tests/abi/snapbox.sym) symbols of tests/abi/snapbox.sym"
