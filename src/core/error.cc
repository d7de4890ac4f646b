#include "core/error.h"

#include <array>

namespace berth {
namespace {

constexpr std::array kTable = {
    error_info{"BLOB_UNKNOWN", "blob unknown to registry", 404},
    error_info{"BLOB_UPLOAD_INVALID", "blob upload invalid", 400},
    error_info{"BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404},
    error_info{"DIGEST_INVALID", "provided digest did not match uploaded content", 400},
    // 400, not 404: the request (the manifest) is at fault, as in distribution.
    error_info{"MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 400},
    error_info{"MANIFEST_INVALID", "manifest invalid", 400},
    error_info{"MANIFEST_UNKNOWN", "manifest unknown to registry", 404},
    error_info{"NAME_INVALID", "invalid repository name", 400},
    error_info{"NAME_UNKNOWN", "repository name not known to registry", 404},
    error_info{"SIZE_INVALID", "provided length did not match content length", 400},
    error_info{"UNAUTHORIZED", "authentication required", 401},
    error_info{"DENIED", "requested access to the resource is denied", 403},
    error_info{"UNSUPPORTED", "the operation is unsupported", 415},
    error_info{"TOOMANYREQUESTS", "too many requests", 429},
    error_info{"TAG_INVALID", "manifest tag did not match URI", 400},
    error_info{"BLOB_UPLOAD_INVALID", "requested range not satisfiable", 416},
    error_info{"MANIFEST_INVALID", "manifest too large", 413},
    error_info{"PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400},
    error_info{"UNSUPPORTED", "the method is not allowed for this resource", 405},
    error_info{"BLOB_UPLOAD_INVALID", "another request is writing to this upload", 409},
    error_info{"REQUEST_TIMEOUT", "the request body stopped arriving", 408},
    error_info{"UNKNOWN", "unknown error", 500},
    error_info{"UNAVAILABLE", "service unavailable", 503},
};
static_assert(kTable.size() == static_cast<size_t>(errc::unavailable) + 1, "one row per errc");

}  // namespace

const error_info& info(errc code) { return kTable[static_cast<size_t>(code)]; }

}  // namespace berth
