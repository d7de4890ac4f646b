// The errors of the PostgreSQL layer: a small enum a store can act on, with the SQLSTATE and a
// message for the log (PostgreSQL's own message; it may quote SQL but never the password). A store
// maps the code to Berth's error table and sends clients nothing of it.
// Thread-safety: value types.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace berth::pg {

enum class errc {
  already_exists,  // 23505 unique_violation: the row is there already
  constraint,      // another integrity violation (class 23: foreign key, not null, check)
  conflict,        // 40001 serialization failure, 40P01 deadlock: run the transaction again
  unavailable,     // no connection, connection lost, server shutting down, timeout
  busy,            // reached, but it cannot do this now: out of disk or memory (class 53), read-only
                   // (25006: a standby, say after a failover), cancelled (57014), lock not available (55P03)
  failed,          // anything else (a bug: syntax, types, ...)
};

struct error {
  errc code = errc::failed;
  std::string sqlstate;  // "23505"; "" when the server did not answer
  std::string message;   // for the log
};

template <class T>
using result = std::expected<T, error>;

// The code for a SQLSTATE.
errc code_for_sqlstate(std::string_view sqlstate);

inline std::unexpected<error> fail(errc code, std::string message, std::string sqlstate = {}) {
  return std::unexpected(error{code, std::move(sqlstate), std::move(message)});
}

}  // namespace berth::pg
