// CRC-32C (Castagnoli), the checksum of every 4 KiB block on disk and on the wire.
// Standard parameters: init 0xffffffff, final xor 0xffffffff; "123456789" -> 0xe3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spindle {

uint32_t Crc32c(const void* data, size_t len);
// Continues a running CRC: Crc32cExtend(Crc32c(a), b) == Crc32c(a||b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t len);

}  // namespace spindle
