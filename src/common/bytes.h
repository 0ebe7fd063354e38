// Byte buffers for I/O: `IoBytes` is a std::vector<uint8_t> whose resize and sized constructor
// leave new bytes uninitialised, for buffers that a read or a copy fills next (zeroing a 1 MiB
// buffer first costs as much as the copy that fills it).
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

namespace spindle {

template <typename T>
class DefaultInitAllocator : public std::allocator<T> {
 public:
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() noexcept = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}  // NOLINT: rebinding
  // Value-initialisation (what resize(n) asks for) becomes default-initialisation.
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using IoBytes = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace spindle
