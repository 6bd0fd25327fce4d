// CRC-32C with the SSE 4.2 crc32 instruction where the processor has it (about 20 bytes a cycle
// with three interleaved streams is possible; one stream of 8-byte steps gives several GB/s, enough
// to verify a 16 MB segment in a few milliseconds), and a table otherwise.
//
// In C because Swift cannot use a processor instruction chosen at run time; the same algorithm as
// PostgreSQL's pg_crc32c_sse42.c and pg_crc32c_sb8.c, written anew.

#include "walferry_crc32c.h"

#include <string.h>

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[n] = c;
    }
    table_ready = 1;
}

static uint32_t update_table(uint32_t crc, const unsigned char *p, size_t length) {
    if (!table_ready) make_table();  // idempotent: racing threads write the same values
    while (length--) crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t update_sse42(uint32_t crc, const unsigned char *p, size_t length) {
    uint64_t c = crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);  // unaligned-safe load
        c = _mm_crc32_u64(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length--) c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}
#endif

uint32_t walferry_crc32c_update(uint32_t crc, const void *data, size_t length) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return update_sse42(crc, data, length);
#endif
    return update_table(crc, data, length);
}
