#include "storage/errc.h"

#include <cerrno>

namespace nagare::storage {

std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::io_error:
            return "io_error";
        case errc::storage_full:
            return "storage_full";
        case errc::corrupt:
            return "corrupt";
        case errc::not_found:
            return "not_found";
        case errc::out_of_range:
            return "out_of_range";
        case errc::invalid_argument:
            return "invalid_argument";
        case errc::closed:
            return "closed";
        case errc::busy:
            return "busy";
    }
    return "unknown";
}

errc from_errno(int error_number) noexcept {
    switch (error_number) {
        case ENOSPC:
        case EDQUOT:
            return errc::storage_full;
        case ENOENT:
            return errc::not_found;
        default:
            return errc::io_error;
    }
}

protocol::errc to_protocol(errc code) noexcept {
    switch (code) {
        case errc::storage_full:
            return protocol::errc::storage_full;
        case errc::invalid_argument:
            return protocol::errc::bad_request;
        case errc::out_of_range:
            return protocol::errc::unknown_position;
        case errc::busy:
            return protocol::errc::overloaded;
        default:
            return protocol::errc::storage_error;
    }
}

}  // namespace nagare::storage
