#!/bin/sh
# gen-version.sh VERSION_FILE - print sbx_version.h for a MAJOR.MINOR.PATCH version.
set -eu
v=$(tr -d ' \n' < "$1")
echo "$v" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' || { echo "gen-version.sh: '$v' in $1 is not MAJOR.MINOR.PATCH" >&2; exit 1; }
[ ${#v} -lt 32 ] || { echo "gen-version.sh: version '$v' is too long" >&2; exit 1; }
IFS=. read -r major minor patch <<EOV
$v
EOV
cat <<EOH
/* Generated from VERSION by scripts/gen-version.sh; do not edit. */
#ifndef SBX_VERSION_H
#define SBX_VERSION_H
#define SBX_VERSION_MAJOR $major
#define SBX_VERSION_MINOR $minor
#define SBX_VERSION_PATCH $patch
#define SBX_VERSION_STRING "$v"
#endif
EOH
