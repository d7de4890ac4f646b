#include "pg/error.h"

namespace berth::pg {

errc code_for_sqlstate(std::string_view sqlstate) {
  if (sqlstate == "23505") return errc::already_exists;
  if (sqlstate.starts_with("23")) return errc::constraint;
  if (sqlstate == "40001" || sqlstate == "40P01") return errc::conflict;
  // 08: connection exception; 57P01..57P03: admin/crash shutdown, cannot connect now; 53300: too
  // many connections.
  if (sqlstate.starts_with("08") || sqlstate.starts_with("57P") || sqlstate == "53300") return errc::unavailable;
  if (sqlstate.starts_with("53") || sqlstate == "25006" || sqlstate == "57014" || sqlstate == "55P03") return errc::busy;
  return errc::failed;
}

}  // namespace berth::pg
