// Helpers for the storage tests: owned records with their views, and a
// temporary directory that removes itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "storage/record_batch.h"

namespace nagare::storage::testing {

// A record that owns its bytes; ref() views them.
struct owned_record {
    std::string project;
    std::string subject;
    std::string msg_id;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<std::byte> payload;
    std::vector<header_ref> header_refs;

    [[nodiscard]] record_ref ref() {
        header_refs.clear();
        for (const auto& [k, v] : headers) header_refs.push_back({k, v});
        return {project, subject, msg_id, header_refs, payload};
    }
};

// (std::string::append throughout: g++ 12 at -O3 warns falsely on "literal" + std::string.)
inline owned_record random_record(std::mt19937_64& rng, std::size_t payload_bytes_max = 200) {
    owned_record r;
    r.project = std::string("p").append(std::to_string(rng() % 7));
    r.subject = std::string("task.updated").append(rng() % 3, 'x');
    r.msg_id = std::string("id-").append(std::to_string(rng()));
    const auto headers = rng() % 3;
    for (std::size_t i = 0; i < headers; ++i) {
        r.headers.emplace_back(std::string("k").append(std::to_string(i)),
                               std::string(rng() % 20, 'v'));
    }
    r.payload.resize(rng() % (payload_bytes_max + 1));
    for (auto& b : r.payload) b = static_cast<std::byte>(rng());
    return r;
}

// Compares a stored record with the one that was appended.
inline void expect_same(const record_view& got, const owned_record& want) {
    EXPECT_EQ(got.project, want.project);
    EXPECT_EQ(got.subject, want.subject);
    EXPECT_EQ(got.msg_id, want.msg_id);
    ASSERT_EQ(got.headers.size(), want.headers.size());
    std::size_t i = 0;
    for (const auto& h : got.headers) {
        EXPECT_EQ(h.key, want.headers[i].first);
        EXPECT_EQ(h.value, want.headers[i].second);
        ++i;
    }
    ASSERT_EQ(got.payload.size(), want.payload.size());
    EXPECT_TRUE(std::equal(got.payload.begin(), got.payload.end(), want.payload.begin()));
}

class temp_dir {
public:
    temp_dir() {
        static std::atomic<int> counter{0};
        _path = std::filesystem::temp_directory_path() /
                ("nagare-storage-test-" + std::to_string(::getpid()) + "-" +
                 std::to_string(counter.fetch_add(1)));
        std::filesystem::remove_all(_path);
        std::filesystem::create_directories(_path);
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(_path, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return _path; }

private:
    std::filesystem::path _path;
};

}  // namespace nagare::storage::testing
