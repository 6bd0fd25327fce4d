// CRC-32C (Castagnoli), the checksum of PostgreSQL's WAL records, pages and backup manifests.
#ifndef WALFERRY_CRC32C_H
#define WALFERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C over `length` bytes at `data`. `crc` is the running value without the final
/// inversion: start with 0xFFFFFFFF, and invert (~crc) at the end.
uint32_t walferry_crc32c_update(uint32_t crc, const void *data, size_t length);

/// The same with the byte table only, whatever the processor: the reference the tests compare with.
uint32_t walferry_crc32c_update_portable(uint32_t crc, const void *data, size_t length);

#endif
