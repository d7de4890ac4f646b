// Byte sizes as people write them in configuration ("200GiB", "500MB", "1.5 TiB", "1048576") and
// as messages show them ("9.8 GiB").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace berth {

// The number of bytes `text` names: digits, an optional fraction, optional spaces, then an optional
// unit: B; kB, MB, GB, TB, PB (powers of 1000); KiB, MiB, GiB, TiB, PiB (powers of 1024). The
// prefix letter may be written in either case ("2KB", "2kiB"); the rest as shown. A fraction of a
// byte is rounded down.
// INVALID_ARGUMENT, naming the accepted forms, when it is anything else or past 2^64 - 1.
result<std::uint64_t> parse_byte_size(std::string_view text);

// `bytes` in binary units with at most one decimal: "512 B", "1.5 KiB", "9.8 GiB", "10 GiB".
std::string binary_size(std::uint64_t bytes);

}  // namespace berth
