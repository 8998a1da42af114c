// Runs the `nagare` binary on partition directories, clean and damaged.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "storage/partition_log.h"
#include "storage/sync_file_io.h"
#include "tests/storage/test_records.h"
#include "tests/tools/run_cli.h"

namespace nagare::storage {
namespace {

using nagare::testing::count_lines;

nagare::testing::run_result run(const std::string& args) { return nagare::testing::run_cli(args); }

class NagareLogCommand : public ::testing::Test {
protected:
    // A log of 200 records in several sealed segments.
    void SetUp() override {
        partition_options options;
        options.durability_mode = durability::none;
        options.segment_bytes = 4096;
        options.index_interval_bytes = 256;
        sync_file_io io;
        auto log = partition_log::open(dir.path(), options, io);
        ASSERT_TRUE(log.has_value());
        std::mt19937_64 rng(5);
        for (int i = 0; i < 40; ++i) {
            std::vector<testing::owned_record> owned;
            std::vector<record_ref> refs;
            for (int r = 0; r < 5; ++r) owned.push_back(testing::random_record(rng, 80));
            for (auto& r : owned) refs.push_back(r.ref());
            ASSERT_TRUE((*log)->append(refs, 1'700'000'000'000'000'000ull + i).has_value());
            (*log)->flush();
            while (io.pending() > 0) io.poll(true);
        }
        ASSERT_GE((*log)->segment_count(), 3u);
        second = (*log)->segments()[1]->log_path();
        second_entry = (*log)->segments()[1]->index()[1];
        ASSERT_TRUE((*log)->close().has_value());
    }

    testing::temp_dir dir;
    std::filesystem::path second;
    index_entry second_entry;
};

TEST_F(NagareLogCommand, VerifyPassesACleanLog) {
    const auto result = run("log verify " + dir.path().string());
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_NE(result.output.find("200 records, 0 faults"), std::string::npos) << result.output;
}

TEST_F(NagareLogCommand, VerifyNamesTheFileAndPositionOfACorruptBatch) {
    const auto position = second_entry.position + batch_header_bytes + 5;
    {
        std::fstream f(second, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(position));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ 0x20);
        f.seekp(static_cast<std::streamoff>(position));
        f.write(&c, 1);
    }
    const auto result = run("log verify " + dir.path().string());
    EXPECT_EQ(result.exit_code, 1) << result.output;
    const auto where = second.string() + ": position " + std::to_string(second_entry.position) +
                       ": bad header or checksum mismatch";
    EXPECT_NE(result.output.find(where), std::string::npos) << result.output;
    EXPECT_EQ(result.output.find("0 faults"), std::string::npos);
    // dump stops at the same place with the same words.
    const auto dumped = run("log dump " + dir.path().string());
    EXPECT_EQ(dumped.exit_code, 1);
    EXPECT_NE(dumped.output.find(where), std::string::npos) << dumped.output;
}

TEST_F(NagareLogCommand, VerifyReportsADamagedIndex) {
    auto idx = second;
    idx.replace_extension(".idx");
    {
        std::fstream f(idx, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(12);  // entry 1's position
        const std::uint32_t wrong = 3;
        f.write(reinterpret_cast<const char*>(&wrong), sizeof wrong);
    }
    const auto result = run("log verify " + dir.path().string());
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_NE(result.output.find(idx.string() + ": position 8: entry 1 points at log position 3"),
              std::string::npos)
        << result.output;
}

TEST_F(NagareLogCommand, DumpPrintsOneLinePerRecord) {
    const auto all = run("log dump " + dir.path().string());
    EXPECT_EQ(all.exit_code, 0) << all.output;
    EXPECT_EQ(count_lines(all.output), 200u);
    EXPECT_EQ(all.output.rfind("0\t2023-11-14T22:13:20.000000000Z\tp", 0), 0u)
        << all.output.substr(0, 200);
    const auto some = run("log dump " + dir.path().string() + " --from 57 --limit 3");
    EXPECT_EQ(some.exit_code, 0);
    ASSERT_EQ(count_lines(some.output), 3u) << some.output;
    EXPECT_EQ(some.output.rfind("57\t", 0), 0u);
    EXPECT_NE(some.output.find("\n59\t"), std::string::npos);
}

TEST_F(NagareLogCommand, UsageErrorsExitNonZero) {
    EXPECT_NE(run("log").exit_code, 0);
    EXPECT_NE(run("log verify").exit_code, 0);
    EXPECT_EQ(run("log verify /nonexistent/nagare/dir").exit_code, 2);
}

}  // namespace
}  // namespace nagare::storage
