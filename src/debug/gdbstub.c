/* gdbstub.c - a GDB remote serial protocol stub for one sandbox
 * (sbx_config.gdb_addr): gdb connects over TCP on a loopback address and
 * drives the vCPU through the run loop (src/vcpu/run.c), which hands it
 * every KVM_EXIT_DEBUG.
 *
 * Software breakpoints are int3 bytes written through sbx_mem_at, present
 * in guest memory only while the guest runs: at every stop and at the end
 * of every run they are lifted out again, so gdb's memory reads, snapshots
 * and the host see the guest's own bytes. KVM normally intercepts their
 * #BP; where the CPU delivers it to the guest instead (nested under QEMU's
 * TCG, whose SVM takes INT3 for a software interrupt), the #BP stub of the
 * guest's IDT, replaced for as long as the breakpoints are in, saves %rax
 * first, so sbx_gdb_guest_trap can undo the exception as if KVM had
 * intercepted it. The deadline does not apply
 * while a session is attached (run.c). No interrupt (Ctrl-C) while the
 * guest runs: the stub reads the socket only when the guest is stopped. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "debug/debug.h"

#define PKT_MAX 4096u    /* payload bytes of a packet, both ways (PacketSize) */
#define TARGET_XML_MAX 8192u /* bytes of target.xml at most */
#define MAX_SW_BP 64u    /* software breakpoints at once */
#define MAX_RESEND 8     /* NAKs of one packet before the session is given up */
#define INT3 0xcc
#define SIGTRAP_ 5       /* GDB's signal numbers */
#define RFLAGS_TF (1ull << 8)

enum session { WAITING, ATTACHED, DONE };

struct sw_bp {
    uint64_t addr;
    uint8_t orig;
};

struct sbx_gdb {
    char addr[64];           /* as the user gave it, for messages */
    int listen_fd, fd;
    enum session state;
    bool resumed;            /* gdb waits for a stop reply */
    bool step;
    bool inserted;           /* the software breakpoints are in memory */
    size_t nsw;
    struct sw_bp sw[MAX_SW_BP];
    struct sbx_hw_bp hw[SBX_HW_BREAKPOINTS];
    /* the IDT's own exception stubs, while ours (that save %rax) are in */
    uint8_t stubs[SBX_FAULT_VECTORS * SBX_FAULT_STUB_SIZE];
    bool fault_shown;        /* the guest stopped at an exception: the next one is fatal */
    uint8_t rbuf[1024];
    size_t rlen, rpos;
    char pkt[PKT_MAX + 1];
    char out[2 * PKT_MAX + 8];
    char xml[TARGET_XML_MAX]; /* target.xml */
};

/* The registers gdb gets, in the order of the 'g' packet: gdb's numbering
 * of x86-64 (its 64bit-core.xml, then 64bit-sse.xml from xmm0 on). */
static const struct reg {
    const char *name;
    unsigned bits;
    const char *type;
} regs[] = {
    { "rax", 64, "int64" }, { "rbx", 64, "int64" }, { "rcx", 64, "int64" },
    { "rdx", 64, "int64" }, { "rsi", 64, "int64" }, { "rdi", 64, "int64" },
    { "rbp", 64, "data_ptr" }, { "rsp", 64, "data_ptr" }, { "r8", 64, "int64" },
    { "r9", 64, "int64" }, { "r10", 64, "int64" }, { "r11", 64, "int64" },
    { "r12", 64, "int64" }, { "r13", 64, "int64" }, { "r14", 64, "int64" },
    { "r15", 64, "int64" }, { "rip", 64, "code_ptr" }, { "eflags", 32, "i386_eflags" },
    { "cs", 32, "int32" }, { "ss", 32, "int32" }, { "ds", 32, "int32" },
    { "es", 32, "int32" }, { "fs", 32, "int32" }, { "gs", 32, "int32" },
    { "st0", 80, "i387_ext" }, { "st1", 80, "i387_ext" }, { "st2", 80, "i387_ext" },
    { "st3", 80, "i387_ext" }, { "st4", 80, "i387_ext" }, { "st5", 80, "i387_ext" },
    { "st6", 80, "i387_ext" }, { "st7", 80, "i387_ext" }, { "fctrl", 32, "int" },
    { "fstat", 32, "int" }, { "ftag", 32, "int" }, { "fiseg", 32, "int" },
    { "fioff", 32, "int" }, { "foseg", 32, "int" }, { "fooff", 32, "int" },
    { "fop", 32, "int" },
    { "xmm0", 128, "vec128" }, { "xmm1", 128, "vec128" }, { "xmm2", 128, "vec128" },
    { "xmm3", 128, "vec128" }, { "xmm4", 128, "vec128" }, { "xmm5", 128, "vec128" },
    { "xmm6", 128, "vec128" }, { "xmm7", 128, "vec128" }, { "xmm8", 128, "vec128" },
    { "xmm9", 128, "vec128" }, { "xmm10", 128, "vec128" }, { "xmm11", 128, "vec128" },
    { "xmm12", 128, "vec128" }, { "xmm13", 128, "vec128" }, { "xmm14", 128, "vec128" },
    { "xmm15", 128, "vec128" }, { "mxcsr", 32, "int" },
};
#define NREGS (sizeof regs / sizeof regs[0])
#define FIRST_SSE_REG 40u /* xmm0: the sse feature begins */

/* target.xml: the types the table names, then its registers. */
static const char xml_head[] =
    "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
    "<target version=\"1.0\"><architecture>i386:x86-64</architecture>"
    "<feature name=\"org.gnu.gdb.i386.core\">"
    "<flags id=\"i386_eflags\" size=\"4\"><field name=\"CF\" start=\"0\" end=\"0\"/>"
    "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"ZF\" start=\"6\" end=\"6\"/>"
    "<field name=\"SF\" start=\"7\" end=\"7\"/><field name=\"TF\" start=\"8\" end=\"8\"/>"
    "<field name=\"IF\" start=\"9\" end=\"9\"/><field name=\"OF\" start=\"11\" end=\"11\"/>"
    "</flags>";
static const char xml_sse[] =
    "</feature><feature name=\"org.gnu.gdb.i386.sse\">"
    "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
    "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
    "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
    "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
    "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
    "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
    "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/>"
    "<field name=\"v2_double\" type=\"v2d\"/><field name=\"v16_int8\" type=\"v16i8\"/>"
    "<field name=\"v8_int16\" type=\"v8i16\"/><field name=\"v4_int32\" type=\"v4i32\"/>"
    "<field name=\"v2_int64\" type=\"v2i64\"/><field name=\"uint128\" type=\"uint128\"/></union>";
static const char xml_tail[] = "</feature></target>";

/* The whole of target.xml into out (TARGET_XML_MAX bytes are enough). */
static void target_xml(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", xml_head);
    for (unsigned i = 0; i < NREGS && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s<reg name=\"%s\" bitsize=\"%u\" type=\"%s\"/>",
                              i == FIRST_SSE_REG ? xml_sse : "", regs[i].name, regs[i].bits,
                              regs[i].type);
    if (n < cap)
        snprintf(out + n, cap - n, "%s", xml_tail);
}

/* Bytes of register i in the 'g' packet. */
static unsigned reg_size(unsigned i)
{
    return regs[i].bits / 8;
}

static size_t reg_offset(unsigned n)
{
    size_t off = 0;
    for (unsigned i = 0; i < n; i++)
        off += reg_size(i);
    return off;
}

#define REGS_BYTES 536u /* reg_offset(NREGS): what cpu_to_buf fills */
_Static_assert(sizeof regs / sizeof regs[0] == 57, "the registers cpu_to_buf fills, in order");

/* ---- Addresses ------------------------------------------------------------------ */

static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                      struct sbx_diag *diag)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    size_t hl = colon ? (size_t)(colon - text) : 0;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || hl == 0 || hl >= sizeof host || !end || *end || end == colon + 1 || port < 1 ||
        port > 65535)
        return sbx_fail(diag, SBX_E_INVAL, "gdb address '%s' is not HOST:PORT (e.g. "
                        "127.0.0.1:1234)", text);
    memcpy(host, text, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    bool loopback = false;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        *len = sizeof *v4;
    } else if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)port);
            loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
            *len = sizeof *v6;
        }
    }
    if (!loopback)
        return sbx_fail(diag, SBX_E_INVAL, "gdb address '%s': the stub listens on a loopback "
                        "address only (127.0.0.1:PORT or [::1]:PORT), since whoever connects "
                        "controls the guest", text);
    return 0;
}

int sbx_gdb_check_addr(const char *addr, struct sbx_diag *diag)
{
    struct sockaddr_storage ss;
    socklen_t len;
    return parse_addr(addr, &ss, &len, diag);
}

/* ---- Packets --------------------------------------------------------------------- */

static int read_byte(struct sbx_gdb *g)
{
    while (g->rpos == g->rlen) {
        ssize_t n = recv(g->fd, g->rbuf, sizeof g->rbuf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        g->rlen = (size_t)n;
        g->rpos = 0;
    }
    return g->rbuf[g->rpos++];
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The next packet's payload into g->pkt, acknowledged; -1 when gdb is gone. */
static int get_packet(struct sbx_gdb *g)
{
    for (;;) {
        int c;
        while ((c = read_byte(g)) != '$')
            if (c < 0)
                return -1;
        size_t n = 0;
        uint8_t sum = 0;
        bool overflow = false;
        while ((c = read_byte(g)) != '#') {
            if (c < 0)
                return -1;
            sum = (uint8_t)(sum + c);
            if (n < PKT_MAX)
                g->pkt[n++] = (char)c;
            else
                overflow = true;
        }
        int h = hexval(read_byte(g)), l = hexval(read_byte(g));
        bool ok = !overflow && h >= 0 && l >= 0 && (uint8_t)(h << 4 | l) == sum;
        if (send(g->fd, ok ? "+" : "-", 1, MSG_NOSIGNAL) != 1)
            return -1;
        if (ok) {
            g->pkt[n] = '\0';
            return (int)n;
        }
    }
}

static int put_packet(struct sbx_gdb *g, const char *data)
{
    size_t n = strlen(data);
    char frame[sizeof g->out + 4];
    uint8_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + (uint8_t)data[i]);
    int len = snprintf(frame, sizeof frame, "$%s#%02x", data, sum);
    for (int tries = 0; tries < MAX_RESEND; tries++) {
        if (send(g->fd, frame, (size_t)len, MSG_NOSIGNAL) != len)
            return -1;
        int c;
        while ((c = read_byte(g)) != '+' && c != '-')
            if (c < 0)
                return -1;
        if (c == '+')
            return 0;
    }
    return -1;
}

static void to_hex(char *out, const void *p, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * len] = '\0';
}

static bool from_hex(const char *in, void *p, size_t len)
{
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        int h = hexval(in[2 * i]), l = h < 0 ? -1 : hexval(in[2 * i + 1]);
        if (l < 0)
            return false;
        b[i] = (uint8_t)(h << 4 | l);
    }
    return true;
}

/* "ADDR,LEN" (then end or ':'), hex; false on anything else. */
static bool parse_range(const char *p, uint64_t *addr, uint64_t *len, const char **rest)
{
    char *end;
    errno = 0;
    *addr = strtoull(p, &end, 16);
    if (end == p || *end != ',' || errno)
        return false;
    p = end + 1;
    *len = strtoull(p, &end, 16);
    if (end == p || errno)
        return false;
    *rest = end;
    return true;
}

/* ---- Registers ------------------------------------------------------------------- */

struct cpu {
    struct kvm_regs r;
    struct kvm_sregs s;
    struct kvm_fpu f;
};

static int get_cpu(struct sbx_sandbox *s, struct cpu *c)
{
    int fd = s->vm.vcpu_fd;
    return ioctl(fd, KVM_GET_REGS, &c->r) < 0 || ioctl(fd, KVM_GET_SREGS, &c->s) < 0 ||
           ioctl(fd, KVM_GET_FPU, &c->f) < 0 ? -1 : 0;
}

static void put32(uint8_t **p, uint64_t v) { uint32_t w = (uint32_t)v; memcpy(*p, &w, 4); *p += 4; }
static void put64(uint8_t **p, uint64_t v) { memcpy(*p, &v, 8); *p += 8; }
static uint64_t get32(const uint8_t **p) { uint32_t w; memcpy(&w, *p, 4); *p += 4; return w; }
static uint64_t get64(const uint8_t **p) { uint64_t w; memcpy(&w, *p, 8); *p += 8; return w; }

/* FXSAVE keeps one bit per x87 register (abridged tag); gdb wants two. */
static uint32_t full_tag(uint8_t abridged)
{
    uint32_t tag = 0;
    for (int i = 0; i < 8; i++)
        tag |= ((abridged >> i) & 1 ? 0u : 3u) << (2 * i);
    return tag;
}

static uint8_t abridged_tag(uint32_t full)
{
    uint8_t t = 0;
    for (int i = 0; i < 8; i++)
        t |= (uint8_t)(((full >> (2 * i)) & 3) != 3) << i;
    return t;
}

static void cpu_to_buf(const struct cpu *c, uint8_t *buf)
{
    const struct kvm_regs *r = &c->r;
    uint8_t *p = buf;
    const uint64_t gpr[] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->rsp,
                             r->r8, r->r9, r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip };
    for (size_t i = 0; i < sizeof gpr / sizeof gpr[0]; i++)
        put64(&p, gpr[i]);
    put32(&p, r->rflags);
    const struct kvm_segment *seg[] = { &c->s.cs, &c->s.ss, &c->s.ds, &c->s.es, &c->s.fs, &c->s.gs };
    for (size_t i = 0; i < 6; i++)
        put32(&p, seg[i]->selector);
    for (int i = 0; i < 8; i++, p += 10)
        memcpy(p, c->f.fpr[i], 10);
    const uint64_t x87[] = { c->f.fcw, c->f.fsw, full_tag(c->f.ftwx), 0, c->f.last_ip, 0,
                             c->f.last_dp, c->f.last_opcode };
    for (size_t i = 0; i < 8; i++)
        put32(&p, x87[i]);
    memcpy(p, c->f.xmm, 16 * 16);
    p += 16 * 16;
    put32(&p, c->f.mxcsr);
}

/* Segment selectors are not writable: the guest's GDT is the host's. */
static void buf_to_cpu(const uint8_t *buf, struct cpu *c)
{
    struct kvm_regs *r = &c->r;
    const uint8_t *p = buf;
    __u64 *gpr[] = { &r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi, &r->rbp, &r->rsp,
                        &r->r8, &r->r9, &r->r10, &r->r11, &r->r12, &r->r13, &r->r14, &r->r15,
                        &r->rip };
    for (size_t i = 0; i < sizeof gpr / sizeof gpr[0]; i++)
        *gpr[i] = get64(&p);
    r->rflags = get32(&p);
    p += 6 * 4;
    for (int i = 0; i < 8; i++, p += 10)
        memcpy(c->f.fpr[i], p, 10);
    c->f.fcw = (uint16_t)get32(&p);
    c->f.fsw = (uint16_t)get32(&p);
    c->f.ftwx = abridged_tag((uint32_t)get32(&p));
    p += 4;
    c->f.last_ip = get32(&p);
    p += 4;
    c->f.last_dp = get32(&p);
    c->f.last_opcode = (uint16_t)get32(&p);
    memcpy(c->f.xmm, p, 16 * 16);
    p += 16 * 16;
    c->f.mxcsr = (uint32_t)get32(&p);
}

static int set_cpu(struct sbx_sandbox *s, const struct cpu *c)
{
    int fd = s->vm.vcpu_fd;
    return ioctl(fd, KVM_SET_REGS, &c->r) < 0 || ioctl(fd, KVM_SET_FPU, &c->f) < 0 ? -1 : 0;
}

/* ---- Breakpoints ----------------------------------------------------------------- */

static uint8_t *stubs(struct sbx_sandbox *s)
{
    return sbx_mem_at(&s->vm, SBX_LAYOUT_FAULT_STUBS, SBX_FAULT_VECTORS * SBX_FAULT_STUB_SIZE);
}

static void insert_sw(struct sbx_sandbox *s)
{
    struct sbx_gdb *g = s->gdb;
    uint8_t *stub = stubs(s);
    if (!g->inserted && stub) {
        memcpy(g->stubs, stub, sizeof g->stubs);
        for (uint32_t v = 0; v < SBX_FAULT_VECTORS; v++)
            sbx_x86_fault_stub(v, true, stub + v * SBX_FAULT_STUB_SIZE);
    }
    for (size_t i = 0; i < g->nsw && !g->inserted; i++) {
        uint8_t *p = sbx_mem_at(&s->vm, g->sw[i].addr, 1);
        if (p) {
            g->sw[i].orig = *p;
            *p = INT3;
        }
    }
    g->inserted = true;
}

static void remove_sw(struct sbx_sandbox *s)
{
    struct sbx_gdb *g = s->gdb;
    for (size_t i = g->nsw; i-- > 0 && g->inserted;) {
        uint8_t *p = sbx_mem_at(&s->vm, g->sw[i].addr, 1);
        if (p && *p == INT3)
            *p = g->sw[i].orig;
    }
    uint8_t *stub = stubs(s);
    if (g->inserted && stub)
        memcpy(stub, g->stubs, sizeof g->stubs);
    g->inserted = false;
}

static const char *set_sw(struct sbx_gdb *g, struct sbx_sandbox *s, uint64_t addr, bool add)
{
    size_t i = 0;
    while (i < g->nsw && g->sw[i].addr != addr)
        i++;
    if (!add) {
        if (i < g->nsw)
            g->sw[i] = g->sw[--g->nsw];
        return "OK";
    }
    if (i < g->nsw)
        return "OK";
    if (g->nsw == MAX_SW_BP || !sbx_mem_at(&s->vm, addr, 1))
        return "E01";
    g->sw[g->nsw++] = (struct sw_bp){ .addr = addr };
    return "OK";
}

static const char *set_hw(struct sbx_gdb *g, uint64_t addr, bool add)
{
    for (unsigned i = 0; i < SBX_HW_BREAKPOINTS; i++)
        if (g->hw[i].used && g->hw[i].addr == addr) {
            g->hw[i].used = add;
            return "OK";
        }
    for (unsigned i = 0; add && i < SBX_HW_BREAKPOINTS; i++)
        if (!g->hw[i].used) {
            g->hw[i] = (struct sbx_hw_bp){ .used = true, .addr = addr, .type = 0, .len = 1 };
            return "OK";
        }
    return add ? "E01" : "OK";
}

/* Z and z packets: 0 software, 1 hardware execution breakpoints. */
static const char *breakpoint(struct sbx_sandbox *s, const char *pkt)
{
    uint64_t addr, kind;
    const char *rest;
    bool add = pkt[0] == 'Z';
    if (pkt[1] != '0' && pkt[1] != '1')
        return ""; /* watchpoints: not offered */
    if (pkt[2] != ',' || !parse_range(pkt + 3, &addr, &kind, &rest))
        return "E01";
    return pkt[1] == '0' ? set_sw(s->gdb, s, addr, add) : set_hw(s->gdb, addr, add);
}

/* ---- Commands -------------------------------------------------------------------- */

enum verdict { SERVE, RESUME, DETACH, KILL, GONE };

static void read_memory(struct sbx_sandbox *s, const char *pkt, char *out)
{
    uint64_t addr, len;
    const char *rest;
    const uint8_t *p;
    if (!parse_range(pkt + 1, &addr, &len, &rest) || *rest)
        strcpy(out, "E01");
    else if (len > PKT_MAX / 2 || !(p = sbx_mem_at(&s->vm, addr, len)))
        strcpy(out, "E14");
    else
        to_hex(out, p, (size_t)len);
}

static void write_memory(struct sbx_sandbox *s, const char *pkt, char *out)
{
    uint64_t addr, len;
    const char *rest;
    uint8_t *p;
    if (!parse_range(pkt + 1, &addr, &len, &rest) || *rest != ':' || len > PKT_MAX ||
        strlen(rest + 1) != 2 * len)
        strcpy(out, "E01");
    else if (!(p = sbx_mem_at(&s->vm, addr, len)) || !from_hex(rest + 1, p, (size_t)len))
        strcpy(out, "E14");
    else
        strcpy(out, "OK");
}

static void registers(struct sbx_sandbox *s, const char *pkt, char *out)
{
    struct cpu c;
    uint8_t buf[REGS_BYTES];
    if (get_cpu(s, &c) < 0) {
        strcpy(out, "E01");
        return;
    }
    cpu_to_buf(&c, buf);
    char *end;
    unsigned long n = pkt[0] == 'p' || pkt[0] == 'P' ? strtoul(pkt + 1, &end, 16) : 0;
    if ((pkt[0] == 'p' || pkt[0] == 'P') && (end == pkt + 1 || n >= NREGS)) {
        strcpy(out, "E01");
        return;
    }
    size_t off = reg_offset((unsigned)n), size = reg_size((unsigned)n);
    bool ok = true;
    switch (pkt[0]) {
    case 'g':
        to_hex(out, buf, sizeof buf);
        return;
    case 'p':
        to_hex(out, buf + off, size);
        return;
    case 'G':
        ok = strlen(pkt + 1) == 2 * sizeof buf && from_hex(pkt + 1, buf, sizeof buf);
        break;
    default: /* 'P' */
        ok = *end == '=' && strlen(end + 1) == 2 * size && from_hex(end + 1, buf + off, size);
    }
    if (ok) {
        buf_to_cpu(buf, &c);
        ok = set_cpu(s, &c) == 0;
    }
    strcpy(out, ok ? "OK" : "E01");
}

/* qXfer:features:read:target.xml:OFFSET,LENGTH */
static void features(const char *xml, const char *pkt, char *out)
{
    static const char prefix[] = "qXfer:features:read:target.xml:";
    uint64_t off, len;
    const char *rest;
    if (strncmp(pkt, prefix, sizeof prefix - 1) ||
        !parse_range(pkt + sizeof prefix - 1, &off, &len, &rest) || *rest) {
        strcpy(out, "E00");
        return;
    }
    size_t total = strlen(xml);
    if (len > PKT_MAX - 2)
        len = PKT_MAX - 2;
    if (off >= total) {
        strcpy(out, "l");
        return;
    }
    size_t n = total - off < len ? total - off : (size_t)len;
    out[0] = off + n >= total ? 'l' : 'm';
    memcpy(out + 1, xml + off, n);
    out[1 + n] = '\0';
}

static void query(const char *xml, const char *pkt, char *out)
{
    if (!strncmp(pkt, "qSupported", 10))
        snprintf(out, PKT_MAX, "PacketSize=%x;qXfer:features:read+", PKT_MAX);
    else if (!strncmp(pkt, "qXfer:features:read:", 20))
        features(xml, pkt, out);
    else if (!strcmp(pkt, "qAttached"))
        strcpy(out, "1");
    else if (!strcmp(pkt, "qC"))
        strcpy(out, "QC1");
    else if (!strcmp(pkt, "qfThreadInfo"))
        strcpy(out, "m1");
    else if (!strcmp(pkt, "qsThreadInfo"))
        strcpy(out, "l");
    else if (!strncmp(pkt, "qSymbol", 7))
        strcpy(out, "OK");
    else
        out[0] = '\0';
}

/* 'c' and 's' may name where to resume: "cADDR". */
static enum verdict resume(struct sbx_sandbox *s, const char *pkt, char *out)
{
    out[0] = '\0';
    if (pkt[1]) {
        struct cpu c;
        char *end;
        uint64_t pc = strtoull(pkt + 1, &end, 16);
        if (*end || get_cpu(s, &c) < 0) {
            strcpy(out, "E01");
            return SERVE;
        }
        c.r.rip = pc;
        if (ioctl(s->vm.vcpu_fd, KVM_SET_REGS, &c.r) < 0) {
            strcpy(out, "E01");
            return SERVE;
        }
    }
    s->gdb->step = pkt[0] == 's';
    return RESUME;
}

/* "Csig[;ADDR]", "Ssig[;ADDR]": gdb passes the signal the guest stopped
 * with. There is nothing to deliver it to: the guest resumes where it
 * stopped, so a faulting instruction faults again and ends the run. */
static enum verdict resume_signal(struct sbx_sandbox *s, const char *pkt, char *out)
{
    char plain[40] = { (char)(pkt[0] == 'C' ? 'c' : 's') };
    const char *addr = strchr(pkt, ';');
    if (addr && strlen(addr + 1) < sizeof plain - 1)
        strcpy(plain + 1, addr + 1);
    return resume(s, plain, out);
}

static enum verdict command(struct sbx_sandbox *s, const char *pkt, char *out)
{
    out[0] = '\0';
    switch (pkt[0]) {
    case '?':
        strcpy(out, "S05");
        break;
    case 'g': case 'G': case 'p': case 'P':
        registers(s, pkt, out);
        break;
    case 'm':
        read_memory(s, pkt, out);
        break;
    case 'M':
        write_memory(s, pkt, out);
        break;
    case 'Z': case 'z':
        strcpy(out, breakpoint(s, pkt));
        break;
    case 'c': case 's':
        return resume(s, pkt, out);
    case 'C': case 'S':
        return resume_signal(s, pkt, out);
    case 'D':
        strcpy(out, "OK");
        return DETACH;
    case 'k':
        return KILL;
    case 'H': case 'T':
        strcpy(out, "OK");
        break;
    case 'q':
        query(s->gdb->xml, pkt, out);
        break;
    default:
        break; /* empty: not supported (X, vCont, vFile, ...) */
    }
    return SERVE;
}

/* ---- The session ----------------------------------------------------------------- */

static void close_session(struct sbx_sandbox *s)
{
    struct sbx_gdb *g = s->gdb;
    remove_sw(s);
    (void)sbx_vcpu_guest_debug(&s->vm, false, false, NULL, NULL);
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    g->state = DONE;
}

/* Serve packets while the guest is stopped (after stop_reply, if any),
 * until gdb resumes, detaches or kills it. */
static int serve(struct sbx_sandbox *s, const char *stop_reply, struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    g->resumed = false;
    remove_sw(s);
    if (stop_reply && put_packet(g, stop_reply) < 0) {
        close_session(s);
        return 0;
    }
    enum verdict v = SERVE;
    while (v == SERVE) {
        if (get_packet(g) < 0) {
            v = GONE;
            break;
        }
        v = command(s, g->pkt, g->out);
        if ((v == SERVE || v == DETACH) && put_packet(g, g->out) < 0)
            v = GONE;
    }
    if (v == KILL) {
        close_session(s);
        return sbx_fail(diag, SBX_E_GUEST_ABORT, "the guest was killed from gdb (%s)", g->addr);
    }
    if (v != RESUME) { /* detached, or gdb went away: the guest runs on alone */
        close_session(s);
        return 0;
    }
    g->resumed = true;
    insert_sw(s);
    return sbx_vcpu_guest_debug(&s->vm, true, g->step, g->hw, diag);
}

static int listen_on(struct sbx_gdb *g, struct sbx_diag *diag)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = parse_addr(g->addr, &ss, &len, diag);
    if (rc)
        return rc;
    g->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (g->listen_fd < 0 ||
        setsockopt(g->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(g->listen_fd, (struct sockaddr *)&ss, len) < 0 || listen(g->listen_fd, 1) < 0)
        return sbx_fail(diag, SBX_E_IO, "gdb stub: cannot listen on %s: %s", g->addr,
                        strerror(errno));
    return 0;
}

static int sbx_gdb_new(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    struct sbx_gdb *g = calloc(1, sizeof *g);
    if (!g)
        return sbx_fail(diag, SBX_E_NOMEM, "out of memory for the gdb stub");
    g->listen_fd = g->fd = -1;
    snprintf(g->addr, sizeof g->addr, "%s", s->cfg.gdb_addr);
    target_xml(g->xml, sizeof g->xml);
    s->gdb = g;
    return listen_on(g, diag);
}

static int wait_for_gdb(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    sbx_logf(s->cfg.log, s->cfg.log_ctx, SBX_LOG_INFO, "gdb stub: waiting for gdb on %s "
             "(gdb GUEST.elf -ex 'target remote %s')", g->addr, g->addr);
    do
        g->fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    while (g->fd < 0 && errno == EINTR);
    if (g->fd < 0)
        return sbx_fail(diag, SBX_E_IO, "gdb stub: accept on %s failed: %s", g->addr,
                        strerror(errno));
    close(g->listen_fd);
    g->listen_fd = -1;
    int one = 1;
    setsockopt(g->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    g->state = ATTACHED;
    return serve(s, NULL, diag);
}

int sbx_gdb_run_begin(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    if (g->state == WAITING)
        return wait_for_gdb(s, diag);
    if (g->state == ATTACHED) {
        insert_sw(s);
        return sbx_vcpu_guest_debug(&s->vm, true, g->step, g->hw, diag);
    }
    return 0;
}

int sbx_gdb_debug_exit(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    const struct kvm_debug_exit_arch *d = &s->vm.run->debug.arch;
    if (g->state != ATTACHED) /* a stale exit after the session ended */
        return sbx_vcpu_guest_debug(&s->vm, false, false, NULL, diag);
    g->fault_shown = false;
    bool ours = d->exception != BP_VECTOR;
    for (size_t i = 0; i < g->nsw && !ours; i++)
        ours = g->sw[i].addr == d->pc;
    if (!ours) {
        /* The guest's own int3: step past it, as the CPU would have. */
        struct kvm_regs r;
        if (ioctl(s->vm.vcpu_fd, KVM_GET_REGS, &r) == 0) {
            r.rip++;
            (void)ioctl(s->vm.vcpu_fd, KVM_SET_REGS, &r);
        }
    }
    char reply[8];
    snprintf(reply, sizeof reply, "S%02x", SIGTRAP_);
    return serve(s, reply, diag);
}

/* GDB's number for the signal a Linux process would get (only SIGBUS differs). */
static int gdb_signal(int rc, int vector)
{
    int sig = sbx_core_signal(rc, vector);
    return sig == SIGBUS ? 10 : sig;
}

/* The guest took an exception through its IDT: our stub pushed %rax, the
 * CPU its frame. The push is undone in any case. One of our breakpoints
 * (a #BP after its int3) is undone entirely and stops there, as a
 * KVM_EXIT_DEBUG would. Another exception stops too, at the instruction
 * that faulted (or after a trap), as Linux stops a debugged process at a
 * signal: gdb shows it; resuming runs it again, and the second exception
 * in a row ends the run as usual. */
int sbx_gdb_guest_trap(struct sbx_sandbox *s, uint32_t vector, struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    if (g->state != ATTACHED || !g->inserted)
        return SBX_GDB_NOT_OURS;
    struct kvm_regs r;
    const uint8_t *rax;
    int rc = sbx_vcpu_finish_io(&s->vm, diag);
    if (rc)
        return rc;
    if (ioctl(s->vm.vcpu_fd, KVM_GET_REGS, &r) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_GET_REGS");
    if (!(rax = sbx_mem_at(&s->vm, r.rsp, sizeof r.rax)))
        return SBX_GDB_NOT_OURS;
    memcpy(&r.rax, rax, sizeof r.rax);
    r.rsp += sizeof r.rax;
    struct kvm_regs at = r;
    bool bp = false;
    if (sbx_fault_regs(&s->vm, &at) == BP_VECTOR)
        for (size_t i = 0; i < g->nsw && !bp; i++)
            bp = g->sw[i].addr == at.rip - 1;
    bool stop = bp || !g->fault_shown;
    if (stop) {
        /* The exception is undone: so is what it wrote at the top of the IST
         * stack (the CPU's frame and our %rax), which no guest code reads. */
        uint64_t low = r.rsp - sizeof r.rax;
        uint8_t *frame = low >= SBX_LAYOUT_IST_STACK && low < SBX_LAYOUT_IST_STACK_TOP
                             ? sbx_mem_at(&s->vm, low, SBX_LAYOUT_IST_STACK_TOP - low) : NULL;
        r = at;
        if (frame)
            memset(frame, 0, SBX_LAYOUT_IST_STACK_TOP - low);
    }
    r.rflags &= ~RFLAGS_TF; /* a single step's, KVM's own: not the guest's */
    r.rip -= bp;
    if (ioctl(s->vm.vcpu_fd, KVM_SET_REGS, &r) < 0)
        return sbx_vm_ioctl_fail(diag, "KVM_SET_REGS");
    if (!stop)
        return SBX_GDB_NOT_OURS;
    g->fault_shown = !bp;
    char reply[8];
    snprintf(reply, sizeof reply, "S%02x", bp ? SIGTRAP_ : gdb_signal(SBX_E_GUEST_FAULT, (int)vector));
    return serve(s, reply, diag);
}

void sbx_gdb_run_end(struct sbx_sandbox *s, int rc, const struct sbx_diag *diag)
{
    struct sbx_gdb *g = s->gdb;
    remove_sw(s);
    if (g->state != ATTACHED || rc == 0)
        return;
    /* The run failed: gdb learns that the guest is gone, as of a signal. */
    char reply[8];
    int vector = rc == SBX_E_GUEST_FAULT && diag ? (int)diag->fault.vector : -1;
    snprintf(reply, sizeof reply, "X%02x",
             rc == SBX_E_GUEST_FAULT || rc == SBX_E_GUEST_ABORT ? gdb_signal(rc, vector) : 9);
    if (g->resumed)
        (void)put_packet(g, reply);
    close_session(s);
}

int sbx_gdb_attach(struct sbx_sandbox *s, struct sbx_diag *diag)
{
    return s->cfg.gdb_addr ? sbx_gdb_new(s, diag) : 0;
}

void sbx_gdb_free(struct sbx_sandbox *s)
{
    struct sbx_gdb *g = s->gdb;
    if (!g)
        return;
    if (g->state == ATTACHED && g->resumed)
        (void)put_packet(g, "W00");
    if (g->fd >= 0)
        close(g->fd);
    if (g->listen_fd >= 0)
        close(g->listen_fd);
    free(g);
    s->gdb = NULL;
}
