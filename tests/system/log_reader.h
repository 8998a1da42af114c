// Reads every partition of a stream from a stopped broker's data directory
// with the storage library, for checks of what was really stored.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "storage/partition_log.h"
#include "storage/sync_file_io.h"

namespace nagare::testing {

struct stored_record {
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::string project;
    std::string subject;
    std::string msg_id;
    std::string payload;
};

// Every record of `<data>/<stream>/<p>` for p in [0, partitions), in offset order per partition.
inline std::vector<stored_record> read_stream(const std::filesystem::path& data, const std::string& stream,
                                              std::uint32_t partitions) {
    std::vector<stored_record> out;
    for (std::uint32_t p = 0; p < partitions; ++p) {
        storage::sync_file_io io;
        auto log = storage::partition_log::open(data / stream / std::to_string(p), {}, io);
        if (!log) continue;
        (void)(*log)->for_each_record((*log)->first_offset(), [&](const storage::record_view& r) {
            out.push_back({p, r.record_offset.value, std::string(r.project), std::string(r.subject),
                           std::string(r.msg_id),
                           std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size())});
            return true;
        });
        (void)(*log)->close();
    }
    return out;
}

}  // namespace nagare::testing
