/* error.c - error codes, messages and the log helper. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *sbx_strerror(int code)
{
    switch (code) {
    case SBX_OK: return "success";
    case SBX_E_INVAL: return "invalid argument";
    case SBX_E_NOMEM: return "out of memory";
    case SBX_E_IO: return "input/output error";
    case SBX_E_ELF: return "invalid guest ELF file";
    case SBX_E_NOTE: return "malformed version note";
    case SBX_E_VERSION: return "guest version mismatch";
    case SBX_E_NO_NOTE: return "guest has no version note";
    case SBX_E_KVM: return "KVM unavailable or failed";
    case SBX_E_GUEST_ABORT: return "guest aborted";
    case SBX_E_GUEST_FAULT: return "guest CPU exception";
    case SBX_E_TIMEOUT: return "guest call timed out";
    case SBX_E_GUEST_ABI: return "guest broke the ABI";
    case SBX_E_POISONED: return "sandbox is poisoned";
    case SBX_E_NO_FUNC: return "no such guest function";
    case SBX_E_ARGS: return "wrong arguments";
    case SBX_E_HOST_FN: return "host function failed";
    case SBX_E_LIMIT: return "limit exceeded";
    case SBX_E_SNAP_FORMAT: return "not a snapshot of a format this build reads";
    case SBX_E_SNAP_CORRUPT: return "corrupt snapshot";
    case SBX_E_CPU: return "CPU lacks features the snapshot needs";
    case SBX_E_BUSY: return "sandbox is already in a call";
    case SBX_E_UNREACHABLE: return "registry unreachable";
    case SBX_E_NET: return "network transfer failed";
    case SBX_E_AUTH: return "registry authentication failed";
    case SBX_E_NOT_FOUND: return "not found in the registry";
    case SBX_E_DIGEST: return "digest mismatch";
    case SBX_E_REGISTRY: return "bad registry reply or not a snapbox artifact";
    default: return "unknown error";
    }
}

int sbx_fail(struct sbx_diag *diag, int code, const char *fmt, ...)
{
    if (!diag)
        return code;
    diag->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diag->msg, sizeof diag->msg, fmt, ap);
    va_end(ap);
    return code;
}

void sbx_logf(sbx_log_fn log, void *ctx, enum sbx_log_level level, const char *fmt, ...)
{
    if (!log)
        return;
    char msg[SBX_DIAG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log(ctx, level, msg);
}

void sbx_diag_prefix(struct sbx_diag *diag, const char *fmt, ...)
{
    if (!diag)
        return;
    char prefix[SBX_DIAG_MSG_MAX], msg[SBX_DIAG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (snprintf(msg, sizeof msg, "%s: %s", prefix, diag->msg) >= 0)
        memcpy(diag->msg, msg, sizeof msg);
}
