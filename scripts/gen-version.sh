#!/bin/sh
# gen-version.sh VERSION_FILE - print snapbox_version.h for a MAJOR.MINOR.PATCH version.
# The header is installed with snapbox.h; the library's internal sbx_version.h
# includes it.
set -eu
v=$(tr -d ' \n' < "$1")
echo "$v" | grep -Eq '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$' ||
    { echo "gen-version.sh: '$v' in $1 is not MAJOR.MINOR.PATCH (decimal, no leading zeros)" >&2; exit 1; }
[ ${#v} -lt 32 ] || { echo "gen-version.sh: version '$v' is too long" >&2; exit 1; }
IFS=. read -r major minor patch <<EOV
$v
EOV
if [ "$minor" -ge 100 ] || [ "$patch" -ge 100 ]; then
    echo "gen-version.sh: '$v': MINOR and PATCH must be below 100 (SBX_VERSION_NUMBER)" >&2
    exit 1
fi
cat <<EOH
/* snapbox_version.h - the version of this snapbox (major.minor.patch).
 * Generated from VERSION by scripts/gen-version.sh; do not edit.
 * Compare SBX_VERSION_NUMBER (major * 10000 + minor * 100 + patch) at compile
 * time with sbx_version_number() at run time. */
#ifndef SNAPBOX_VERSION_H
#define SNAPBOX_VERSION_H
#define SBX_VERSION_MAJOR $major
#define SBX_VERSION_MINOR $minor
#define SBX_VERSION_PATCH $patch
#define SBX_VERSION_STRING "$v"
#define SBX_VERSION_NUMBER (SBX_VERSION_MAJOR * 10000 + SBX_VERSION_MINOR * 100 + SBX_VERSION_PATCH)
#endif
EOH
