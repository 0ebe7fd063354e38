#include "common/crc32c.h"

#include <isa-l/crc.h>

namespace spindle {

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t len) {
  // ISA-L's crc32_iscsi works on the raw register: undo and redo the final inversion.
  return ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len),
                      ~crc);
}

uint32_t Crc32c(const void* data, size_t len) {
  return Crc32cExtend(0, data, len);
}

}  // namespace spindle
