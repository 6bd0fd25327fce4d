// CRC-32C with the SSE 4.2 crc32 instruction where the processor has it, and a table otherwise.
//
// The instruction takes 3 cycles and can start one every cycle: one stream of 8-byte steps waits on
// itself and reaches about a third of what the processor can do. So long inputs are cut in three
// blocks whose CRCs run side by side, and the three are then joined: the CRC register of A followed
// by B is the register of A moved past |B| zero bytes, xored with B's register started from zero
// (the CRC is linear). Moving a register past a fixed number of zero bytes is a 32x32 matrix over
// GF(2), applied here through four 256-entry tables, made once (pthread_once) for the two block
// sizes used. Measured on 16 MB in memory on these machines: 1.85 ms as one stream, 1.2 ms as three.
//
// In C because Swift cannot use a processor instruction chosen at run time; the same algorithm as
// PostgreSQL's pg_crc32c_sse42.c and pg_crc32c_sb8.c for the plain paths, and the standard way of
// combining CRCs (as zlib's crc32_combine) for the interleaving, written anew.

#include "walferry_crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u  // CRC-32C, reflected

static uint32_t table[256];
static int table_ready;

static void make_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
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

// ---- moving a register past n zero bytes ----------------------------------------------------------

/// `matrix` (32 columns) times `vector`, over GF(2).
static uint32_t matrix_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (int i = 0; vector; i++, vector >>= 1)
        if (vector & 1) sum ^= matrix[i];
    return sum;
}

static void matrix_square(uint32_t *square, const uint32_t *matrix) {
    for (int n = 0; n < 32; n++) square[n] = matrix_times(matrix, matrix[n]);
}

/// The operator that moves a register past `bytes` zero bytes; `bytes` a power of two.
static void zeros_operator(uint32_t *result, size_t bytes) {
    uint32_t one_bit[32], work[32];
    one_bit[0] = POLY;  // one zero bit: shift right, xor the polynomial when a one falls out
    for (int n = 1; n < 32; n++) one_bit[n] = 1u << (n - 1);
    matrix_square(work, one_bit);    // 2 bits
    matrix_square(result, work);     // 4 bits
    matrix_square(work, result);     // 8 bits: one byte
    memcpy(result, work, sizeof(work));
    for (size_t done = 1; done < bytes; done <<= 1) {
        matrix_square(work, result);
        memcpy(result, work, sizeof(work));
    }
}

/// Four tables that apply the operator a byte of the register at a time.
static void make_shift_tables(uint32_t shift[4][256], size_t bytes) {
    uint32_t op[32];
    zeros_operator(op, bytes);
    for (uint32_t n = 0; n < 256; n++) {
        shift[0][n] = matrix_times(op, n);
        shift[1][n] = matrix_times(op, n << 8);
        shift[2][n] = matrix_times(op, n << 16);
        shift[3][n] = matrix_times(op, n << 24);
    }
}

static uint32_t shifted(uint32_t shift[4][256], uint32_t crc) {
    return shift[0][crc & 0xFF] ^ shift[1][(crc >> 8) & 0xFF] ^ shift[2][(crc >> 16) & 0xFF] ^ shift[3][crc >> 24];
}

#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t long_shift[4][256], short_shift[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void make_shifts(void) {
    make_shift_tables(long_shift, LONG_BLOCK);
    make_shift_tables(short_shift, SHORT_BLOCK);
}

// ---- the instruction ------------------------------------------------------------------------------

static inline uint64_t load64(const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, 8);  // unaligned-safe load
    return word;
}

/// Three blocks of `block` bytes at a time while at least three remain; returns the register.
__attribute__((target("sse4.2")))
static uint64_t three_streams(uint64_t crc, const unsigned char **pointer, size_t *length, size_t block,
                              uint32_t shift[4][256]) {
    const unsigned char *p = *pointer;
    while (*length >= 3 * block) {
        uint64_t crc1 = 0, crc2 = 0;
        const unsigned char *end = p + block;
        do {
            crc = _mm_crc32_u64(crc, load64(p));
            crc1 = _mm_crc32_u64(crc1, load64(p + block));
            crc2 = _mm_crc32_u64(crc2, load64(p + 2 * block));
            p += 8;
        } while (p < end);
        crc = shifted(shift, (uint32_t)crc) ^ (uint32_t)crc1;
        crc = shifted(shift, (uint32_t)crc) ^ (uint32_t)crc2;
        p += 2 * block;
        *length -= 3 * block;
    }
    *pointer = p;
    return crc;
}

__attribute__((target("sse4.2")))
static uint32_t update_sse42(uint32_t crc, const unsigned char *p, size_t length) {
    uint64_t c = crc;
    if (length >= 3 * SHORT_BLOCK) {
        pthread_once(&shift_once, make_shifts);
        c = three_streams(c, &p, &length, LONG_BLOCK, long_shift);
        c = three_streams(c, &p, &length, SHORT_BLOCK, short_shift);
    }
    while (length >= 8) {
        c = _mm_crc32_u64(c, load64(p));
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

uint32_t walferry_crc32c_update_portable(uint32_t crc, const void *data, size_t length) {
    return update_table(crc, data, length);
}
