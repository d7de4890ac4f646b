// Renders an error as the OCI JSON envelope {"errors":[{"code","message","detail"}]}: the only place
// where error bodies are written. The message is the error's detail when it has one (clients print
// only code and message), else the table's message.
#pragma once

#include "core/error.h"
#include "http/message.h"

namespace berth::api {

http::response error_response(const error& e);

}  // namespace berth::api
