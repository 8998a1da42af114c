// One partition on the shard that owns it: its log, its dedup window and
// the publishes waiting for their record to become durable (DESIGN.md
// section 4, "Publish path").
//
// publish() checks the msg_id against the window (stored ids and ids still
// waiting for their fsync), appends a new record, and queues a waiter. The
// outcome reaches the publish_sink: at once for a duplicate of a durable
// record or a rejected message; after on_durable for the rest — a duplicate
// of a pending record waits for the original. A failed write fails every
// waiter (nothing not durable was stored) and forgets the pending ids.
//
// end_of_turn() flushes what the loop turn appended: every publish of a
// turn shares one write and one fdatasync (group commit).
//
// Owned by one shard; every call is made on it; not thread-safe.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "protocol/errc.h"
#include "protocol/frame.h"
#include "storage/dedup_window.h"
#include "storage/partition_log.h"

namespace nagare::broker {

class latency_buckets;
class consumer_cursor;

// Who waits for one message's outcome. The shard decides what the fields
// mean (a connection slot and generation, or a forwarded batch).
struct publish_ticket {
    std::uint32_t owner = 0;
    std::uint32_t generation = 0;
    std::uint32_t index = 0;  // the message's place in its request
    std::uint32_t kind = 0;
};

struct publish_outcome {
    offset position{};
    bool duplicate = false;
    protocol::errc error = protocol::errc::none;
    std::uint32_t partition = 0;
    std::uint32_t stream_index = 0;  // in the shard's stream table
};

class publish_sink {
public:
    virtual void on_published(const publish_ticket& ticket,
                              const publish_outcome& outcome) noexcept = 0;
    // Records became durable: the partition's consumers have work.
    virtual void on_new_data(class partition& p) noexcept = 0;

protected:
    ~publish_sink() = default;
};

struct partition_settings {
    storage::partition_options log;
    storage::dedup_window::options dedup;
    std::size_t waiters_max = 16384;  // publishes waiting for durability
};

class partition final : storage::log_listener {
public:
    // Opens the log and rebuilds the dedup window from its last window of
    // records. Start-up only: it blocks.
    [[nodiscard]] static std::expected<std::unique_ptr<partition>, std::string> open(
        const std::filesystem::path& dir, const partition_settings& settings,
        storage::file_io& io, publish_sink& sink);
    ~partition();

    enum class accepted : std::uint8_t { yes, busy };

    // busy: nothing was done; try again after the next write completes.
    [[nodiscard]] accepted publish(const protocol::message_ref& message,
                                   const publish_ticket& ticket, std::uint64_t now_ns) noexcept;
    // Interval syncs, dedup expiry.
    void tick(std::uint64_t now_ns) noexcept;

    // Which partition this is, for the acks it produces.
    void set_identity(std::uint32_t stream_index, std::uint32_t partition_id) noexcept {
        _stream_index = stream_index;
        _partition_id = partition_id;
    }
    // Appended to in this loop turn (the shard's list of partitions to flush).
    [[nodiscard]] bool dirty() const noexcept { return _dirty; }
    void mark_dirty() noexcept { _dirty = true; }
    // Called when appends of this turn are done: one flush for all of them.
    void end_of_turn() noexcept;
    // Nanoseconds from the start of each write to its durability.
    void set_latency_probe(class latency_buckets* probe) noexcept { _latency = probe; }

    [[nodiscard]] storage::partition_log& log() noexcept { return *_log; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return _dir; }
    // The consumer cursors reading this partition (the shard keeps the list).
    [[nodiscard]] std::vector<consumer_cursor*>& cursors() noexcept { return _cursors; }
    [[nodiscard]] const storage::dedup_window& dedup() const noexcept { return *_dedup; }
    [[nodiscard]] std::size_t waiting() const noexcept { return _waiter_count; }
    // Flushes and waits for the file_io until nothing is in flight, then closes.
    [[nodiscard]] std::expected<void, storage::errc> close_blocking() noexcept;

private:
    struct waiter {
        publish_ticket ticket;
        offset position{};
        bool duplicate = false;
    };

    partition(const partition_settings& settings, publish_sink& sink);
    void on_durable(offset end) noexcept override;
    void on_write_failed(offset from, storage::errc error) noexcept override;
    void push_waiter(const waiter& w) noexcept;
    [[nodiscard]] std::expected<void, std::string> rebuild_dedup();

    publish_sink& _sink;
    std::filesystem::path _dir;
    std::vector<consumer_cursor*> _cursors;
    std::unique_ptr<storage::partition_log> _log;
    std::unique_ptr<storage::dedup_window> _dedup;
    std::vector<waiter> _waiters;  // ring
    std::size_t _waiter_head = 0;
    std::size_t _waiter_count = 0;
    std::uint64_t _last_stored_ns = 0;
    storage::file_io* _io = nullptr;
    std::uint32_t _stream_index = 0;
    std::uint32_t _partition_id = 0;
    bool _dirty = false;
    latency_buckets* _latency = nullptr;
    std::uint64_t _write_started_ns = 0;  // steady clock; 0: no write timed
    offset _write_end{};                   // durable end the timed write reaches
};

}  // namespace nagare::broker
