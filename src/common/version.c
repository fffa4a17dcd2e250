/* version.c - the host's version and the guest version policy. */
#include <string.h>

#include "internal.h"
#include "sbx_abi.h"
#include "sbx_version.h"

static const char *policy_name(enum sbx_version_policy p)
{
    return p == SBX_VERSION_RELAXED ? "relaxed" : "exact";
}

void sbx_host_version(struct sbx_version *out)
{
    *out = (struct sbx_version){ .major = SBX_VERSION_MAJOR,
                                 .minor = SBX_VERSION_MINOR,
                                 .patch = SBX_VERSION_PATCH,
                                 .abi = SBX_ABI_VERSION };
    strncpy(out->string, SBX_VERSION_STRING, sizeof out->string - 1);
}

int sbx_version_check(const struct sbx_version *host, const struct sbx_version *guest,
                      enum sbx_version_policy policy, const char *what, struct sbx_diag *diag)
{
    bool ok = guest->abi == host->abi && guest->major == host->major &&
              guest->minor == host->minor;
    if (policy == SBX_VERSION_RELAXED)
        ok = ok && guest->patch >= host->patch;
    else
        ok = ok && guest->patch == host->patch;
    if (ok)
        return 0;
    return sbx_fail(diag, SBX_E_VERSION,
                    "%s: version mismatch: guest built with snapbox %s (%u.%u.%u, abi %u), "
                    "host is snapbox %s (%u.%u.%u, abi %u); policy '%s' requires %s",
                    what, guest->string, guest->major, guest->minor, guest->patch, guest->abi,
                    host->string, host->major, host->minor, host->patch, host->abi,
                    policy_name(policy),
                    policy == SBX_VERSION_RELAXED
                        ? "the same major.minor and abi with guest patch >= host patch"
                        : "the same version and abi; rebuild the guest against this snapbox");
}
