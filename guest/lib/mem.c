/* mem.c - what the compiler may call in freestanding guests; guests linked
 * with the C library take these from it instead. */
#include "sbx_guest.h"

static uint64_t heap_next; /* 0 until the first allocation reads the boot information */

void *sbx_alloc(size_t size)
{
    if (!heap_next)
        heap_next = SBX_BOOT->heap_start;
    uint64_t start = (heap_next + 15) & ~15ull;
    uint64_t end = SBX_BOOT->heap_end;
    if (start > end || size > end - start)
        return NULL;
    heap_next = start + size;
    return (void *)(uintptr_t)start;
}


void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q)
            return *p < *q ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
