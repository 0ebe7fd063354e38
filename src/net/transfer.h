// A completion condition for asio's composed reads and writes (asio::async_read/async_write).
//
// Their default, transfer_all, hands the socket at most 64 KiB per system call
// (asio::detail::default_max_transfer_size): a 1 MiB answer then costs 16 recv or send calls,
// each also a wake-up of the peer. TransferAllAtOnce lets one call move as much as the socket
// takes, up to kMaxTransferAtOnce.
#pragma once

#include <cstddef>

#include <asio.hpp>

namespace spindle::net {

inline constexpr size_t kMaxTransferAtOnce = 64 * 1024 * 1024;

struct TransferAllAtOnce {
  size_t operator()(const asio::error_code& ec, size_t /*transferred*/) const {
    return ec ? 0 : kMaxTransferAtOnce;
  }
};

}  // namespace spindle::net
