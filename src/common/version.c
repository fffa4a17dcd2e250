/* version.c - the host's version and the one guest version policy, used for
 * guest ELF files and for the guest recorded in a snapshot alike. */
#include <string.h>

#include "internal.h"
#include "sbx_version.h"

static const char *policy_name(enum sbx_version_policy p)
{
    switch (p) {
    case SBX_VERSION_EXACT: return "exact";
    case SBX_VERSION_RELAXED: return "relaxed";
    case SBX_VERSION_ABI: return "abi";
    }
    return "unknown";
}

static const char *policy_rule(enum sbx_version_policy p)
{
    switch (p) {
    case SBX_VERSION_EXACT: return "the same major.minor.patch and abi";
    case SBX_VERSION_RELAXED: return "the same major.minor and abi with guest patch >= host patch";
    case SBX_VERSION_ABI: return "the same abi";
    }
    return "a known policy";
}

void sbx_host_version(struct sbx_version *out)
{
    *out = (struct sbx_version){ .major = SBX_VERSION_MAJOR,
                                 .minor = SBX_VERSION_MINOR,
                                 .patch = SBX_VERSION_PATCH,
                                 .abi = SBX_ABI_VERSION };
    strncpy(out->string, SBX_VERSION_STRING, sizeof out->string - 1);
}

static bool acceptable(const struct sbx_version *host, const struct sbx_version *guest,
                       enum sbx_version_policy policy)
{
    bool same_minor = guest->major == host->major && guest->minor == host->minor;
    if (guest->abi != host->abi)
        return false;
    switch (policy) {
    case SBX_VERSION_EXACT: return same_minor && guest->patch == host->patch;
    case SBX_VERSION_RELAXED: return same_minor && guest->patch >= host->patch;
    case SBX_VERSION_ABI: return true;
    }
    return false;
}

int sbx_version_verdict(const struct sbx_version *host, const struct sbx_version *guest,
                        enum sbx_version_policy policy, enum sbx_version_subject subject,
                        const char *what, struct sbx_diag *diag)
{
    if (policy != SBX_VERSION_EXACT && policy != SBX_VERSION_RELAXED && policy != SBX_VERSION_ABI)
        return sbx_fail(diag, SBX_E_INVAL, "%s: unknown version policy %d", what, (int)policy);
    if (acceptable(host, guest, policy))
        return 0;
    /* A guest ELF can be rebuilt; a snapshot's guest is frozen in it, so the
     * file itself has to be made again from a guest built for this host. */
    bool snap = subject == SBX_VERSION_OF_SNAPSHOT;
    return sbx_fail(diag, SBX_E_VERSION,
                    "%s: version mismatch: %s built with snapbox %s (%u.%u.%u, abi %u), host is "
                    "snapbox %s (%u.%u.%u, abi %u); policy '%s' requires %s: %s",
                    what, snap ? "the snapshot's guest was" : "guest", guest->string,
                    guest->major, guest->minor, guest->patch, guest->abi, host->string,
                    host->major, host->minor, host->patch, host->abi, policy_name(policy),
                    policy_rule(policy),
                    snap ? "recreate the snapshot (snapbox create) with a guest built for this "
                           "snapbox"
                         : "rebuild the guest against this snapbox");
}

int sbx_version_check(const struct sbx_version *host, const struct sbx_version *guest,
                      enum sbx_version_policy policy, const char *what, struct sbx_diag *diag)
{
    return sbx_version_verdict(host, guest, policy, SBX_VERSION_OF_ELF, what, diag);
}
