// The consumer engine on a partition's owner shard (DESIGN.md section 4,
// "Deliver path"; section 3 point 4).
//
// A `consumer` is one consumer (durable or ephemeral) as seen by one shard:
// its definition, its subscribers (sessions on any shard), and one
// `consumer_cursor` per partition of its stream that this shard owns.
//
// A cursor delivers one partition to the consumer's subscribers:
//  - `_next` is the next offset to examine for a first delivery; messages
//    that do not match the filter are settled as they are passed;
//  - the ack state (storage::partition_ack_state) holds the ack floor, the
//    settled offsets above it and the delivery counts;
//  - the in-flight table holds at most max_inflight delivered, unsettled
//    messages, each with its deadline on the cursor's timer wheel;
//  - the ready queue holds in-flight entries due for redelivery (ack_wait
//    expired, nak, their subscriber left);
//  - ordered consumers skip a message whose project has one in flight and
//    rescan from the first skipped offset when a project is released.
// Work happens in passes (run()), each bounded (pass_records_max records), so
// a consumer catching up from an old position cannot stall the shard.
//
// Frames: a pass fills Deliver frames for subscribers that have transit
// credit (at most subscriber_frames_in_transit frames not yet taken by their
// connection), so a subscriber that does not read its socket stops receiving
// and its memory stays bounded.
//
// Owned by one shard; every call is made on it; not thread-safe.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker/consumer_config.h"
#include "broker/timer_wheel.h"
#include "broker/u64_index.h"
#include "protocol/frame.h"
#include "storage/consumer_state.h"
#include "storage/record_batch.h"

namespace nagare::broker {

class partition;
class consumer;
class consumer_cursor;

inline constexpr std::uint32_t subscriber_frames_in_transit = 4;
inline constexpr std::uint32_t deliver_frame_messages_max = 256;
inline constexpr std::size_t deliver_frame_bytes_target = 256u << 10;
inline constexpr std::uint32_t pass_records_max = 2048;
inline constexpr std::size_t read_window_bytes = 256u << 10;  // segment bytes read per step
inline constexpr std::size_t single_read_bytes = 64u << 10;   // reading one record (redelivery)
inline constexpr std::uint32_t subscribers_per_consumer_max = 1024;
inline constexpr std::uint64_t state_save_interval_ns = 100'000'000;  // 100 ms
// A durable cursor's changed state goes into a save (asynchronous, through
// the shard's io_uring) that starts on the state_save_wait_ticks-th shard
// tick that sees the change: at most that many ticks after it. The rest of
// state_save_interval_ns is left for the save to complete (its two syncs take
// 0.2-3.5 ms each on the disks measured). A change made while a save is in
// flight waits for that save to end and then for the same count of ticks.
inline constexpr std::uint32_t state_save_wait_ticks = 9;

// Where the Deliver frames of one subscription go.
struct subscriber_address {
    std::uint32_t shard = 0;
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;  // the session's
    std::uint64_t subscription_id = 0;
    bool operator==(const subscriber_address&) const = default;
};

// A Deliver frame on its way from the owner shard to a session (and back).
struct deliver_frame {
    std::vector<std::byte> bytes;
    subscriber_address to;
    std::uint32_t owner = 0;  // the shard that built it and gets it back
    std::uint64_t consumer_handle = 0;
    std::uint32_t subscriber = 0;  // index in the consumer's subscriber table
    std::uint32_t subscriber_generation = 0;
    bool taken = false;  // the session queued it on its connection
};

enum class dead_letter_result : std::uint8_t {
    accepted,   // the copy is being stored; dead_lettered() follows
    not_ready,  // the dead-letter stream is being created: retry later
    busy,       // the partition cannot take it now: retry later
};

// What the cursors need from their shard.
class consumer_host {
public:
    [[nodiscard]] virtual std::uint64_t now_ns() const noexcept = 0;
    // Scratch for segment reads (one pass at a time uses it).
    [[nodiscard]] virtual std::span<std::byte> read_buffer() noexcept = 0;
    [[nodiscard]] virtual protocol::frame_encoder& deliver_encoder() noexcept = 0;
    // nullptr when every frame is in use.
    [[nodiscard]] virtual deliver_frame* take_deliver_frame() noexcept = 0;
    virtual void send_deliver(deliver_frame* frame) noexcept = 0;
    [[nodiscard]] virtual dead_letter_result dead_letter(consumer_cursor& cursor, std::uint32_t slot,
                                                         const storage::record_view& record,
                                                         std::uint32_t deliveries) noexcept = 0;
    // The cursor has work: run it at the end of this loop turn.
    virtual void activate(consumer_cursor& cursor) noexcept = 0;

protected:
    ~consumer_host() = default;
};

struct consumer_counters_view {
    std::uint64_t redelivered = 0, dead_lettered = 0, terminated = 0;
    std::uint64_t in_flight = 0, not_yet_delivered = 0;
};

class consumer_cursor {
public:
    // `state`: loaded for a durable consumer after a restart, else nullopt
    // (the cursor starts where the deliver policy says).
    // `state_dir`: the partition's directory for a durable consumer (state
    // kept in `<state_dir>/consumers/`), nullptr for an ephemeral one.
    // Opening the store and reading back its `.state` (check_newest) block:
    // this runs when a consumer is created or loaded, not per message.
    consumer_cursor(consumer& owner, partition& part, std::uint32_t partition_id,
                    const std::filesystem::path* state_dir,
                    std::optional<storage::partition_ack_state> state,
                    storage::consumer_counters counters);
    // REQUIRES: no state save in flight (release_store() first).
    ~consumer_cursor();

    [[nodiscard]] consumer& owner() noexcept { return _owner; }
    [[nodiscard]] partition& part() noexcept { return _partition; }
    [[nodiscard]] std::uint32_t partition_id() const noexcept { return _partition_id; }
    [[nodiscard]] offset start_offset() const noexcept { return offset{_next}; }

    // Deliver as much as credit and budget allow; true when more work is left.
    bool run(consumer_host& host) noexcept;
    // Redelivery deadlines; true when something became ready.
    bool tick(consumer_host& host) noexcept;

    enum class ack_result : std::uint8_t { done, unknown };
    ack_result ack(protocol::fb::AckKind kind, offset o, std::uint32_t nak_delay_ms,
                   consumer_host& host) noexcept;
    // Its subscriber `index` left: its in-flight messages are ready at once.
    void subscriber_left(std::uint32_t index) noexcept;
    // The copy of in-flight `slot` is stored in the dead-letter stream (or failed).
    void dead_lettered(std::uint32_t slot, bool stored) noexcept;

    // Durable state, saved through `io` (storage::consumer_state_store::save_async).
    // The shard calls step_state_save on every tick, for each durable cursor:
    // it takes the outcome of a save that finished (a failed save leaves the
    // state dirty, so a later tick saves again) and, when `when` allows and no
    // save is in flight, starts the next one.
    enum class save_when : std::uint8_t {
        due,    // state_save_wait_ticks after the change was first seen
        now,    // any change (shutdown)
        never,  // only take outcomes
    };
    struct state_save_step {
        bool started = false;
        std::optional<storage::errc> failed;  // a save that failed (or could not start)
    };
    state_save_step step_state_save(storage::file_io& io, save_when when) noexcept;
    [[nodiscard]] bool state_dirty() const noexcept { return _state_dirty; }
    [[nodiscard]] bool state_save_in_flight() const noexcept {
        return _store && _store->save_in_flight();
    }
    // Gives up the state store (nullptr for an ephemeral consumer): the shard
    // keeps a store whose save is in flight alive until it completes, and
    // removes the files of a deleted consumer with it.
    [[nodiscard]] std::unique_ptr<storage::consumer_state_store> release_store() noexcept;
    [[nodiscard]] const storage::partition_ack_state& ack_state() const noexcept { return _ack; }
    [[nodiscard]] const storage::consumer_counters& counters() const noexcept { return _counters; }
    [[nodiscard]] std::uint32_t in_flight() const noexcept { return _in_flight; }
    [[nodiscard]] std::uint64_t not_yet_delivered() const noexcept;

    bool active = false;  // in the shard's list of cursors to run

private:
    enum class entry_state : std::uint8_t { free, sent, waiting, dead_letter };
    struct entry {
        std::uint64_t offset = 0;
        std::uint64_t project_hash = 0;
        std::uint32_t subscriber = 0;
        entry_state state = entry_state::free;
        bool queued = false;  // in _ready
    };

    struct frame_in_progress;

    template <class Fn>
    [[nodiscard]] bool read_records(consumer_host& host, std::uint64_t from, std::size_t window_bytes,
                                    Fn&& fn) noexcept;
    [[nodiscard]] bool redeliver(consumer_host& host, frame_in_progress& frame,
                                 std::uint32_t& budget) noexcept;
    bool deliver_new(consumer_host& host, frame_in_progress& frame,
                     const storage::record_view& record, bool& stop) noexcept;
    [[nodiscard]] bool deliver_record(consumer_host& host, frame_in_progress& frame,
                                      const storage::record_view& record, std::uint32_t slot) noexcept;
    void finish_frame(consumer_host& host, frame_in_progress& frame) noexcept;
    void settle(std::uint64_t o) noexcept;
    void free_entry(std::uint32_t slot) noexcept;
    void make_ready(std::uint32_t slot) noexcept;
    void skip_removed() noexcept;
    [[nodiscard]] std::optional<std::uint32_t> allocate_entry(std::uint64_t o,
                                                              std::uint64_t project_hash) noexcept;
    void apply_start() noexcept;

    consumer& _owner;
    partition& _partition;
    std::uint32_t _partition_id;
    storage::partition_ack_state _ack;
    storage::consumer_counters _counters;
    std::uint64_t _next = 0;
    bool _started = false;

    std::vector<entry> _entries;  // [slot]
    std::vector<std::uint32_t> _free_slots;
    std::uint32_t _in_flight = 0;
    u64_index _by_offset;
    u64_index _by_project;  // ordered consumers only
    timer_wheel _timers;
    std::vector<std::uint32_t> _ready;  // ring of slots
    std::size_t _ready_head = 0;
    std::size_t _ready_count = 0;

    std::optional<std::uint64_t> _skipped_from;  // ordered: first offset skipped
    bool _rescan = false;
    std::vector<std::uint64_t> _snapshot;  // last_per_subject: offsets to send first
    std::size_t _snapshot_next = 0;

    bool _state_dirty = false;           // changed since the last save started
    std::uint32_t _state_dirty_ticks = 0;  // ticks that saw it dirty since then
    // Heap-allocated: a save in flight holds its address, and it may outlive the cursor.
    std::unique_ptr<storage::consumer_state_store> _store;
    storage::consumer_state _save_scratch;
};

class consumer {
public:
    consumer(consumer_config config, std::uint64_t stream_epoch, std::uint64_t handle);
    ~consumer();

    [[nodiscard]] const consumer_config& config() const noexcept { return _config; }
    [[nodiscard]] std::uint64_t stream_epoch() const noexcept { return _stream_epoch; }
    [[nodiscard]] std::uint64_t handle() const noexcept { return _handle; }
    [[nodiscard]] std::vector<std::unique_ptr<consumer_cursor>>& cursors() noexcept { return _cursors; }

    struct subscriber {
        subscriber_address address;
        std::uint32_t generation = 0;  // of this table entry
        std::uint32_t frames_in_transit = 0;
        bool live = false;
    };
    // Index of the new subscriber; nullopt when the table is full.
    [[nodiscard]] std::optional<std::uint32_t> attach(const subscriber_address& address);
    // Index of the subscriber with this address, if attached.
    [[nodiscard]] std::optional<std::uint32_t> find(const subscriber_address& address) const noexcept;
    void detach(std::uint32_t index) noexcept;
    [[nodiscard]] std::uint32_t subscriber_count() const noexcept { return _live; }
    [[nodiscard]] std::vector<subscriber>& subscribers() noexcept { return _subscribers; }
    // The next subscriber with transit credit (round robin), if any.
    [[nodiscard]] std::optional<std::uint32_t> pick_subscriber() noexcept;
    [[nodiscard]] bool has_credit() const noexcept;
    void frame_returned(std::uint32_t index, std::uint32_t generation) noexcept;
    void activate_all(consumer_host& host) noexcept;

private:
    consumer_config _config;
    std::uint64_t _stream_epoch;
    std::uint64_t _handle;
    std::vector<std::unique_ptr<consumer_cursor>> _cursors;
    std::vector<subscriber> _subscribers;
    std::uint32_t _live = 0;
    std::uint32_t _round_robin = 0;
};

}  // namespace nagare::broker
