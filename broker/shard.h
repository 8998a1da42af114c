// A shard: one thread pinned to a core, with its own io_uring, listeners,
// sessions, partitions and timers (DESIGN.md section 4). Shards share
// nothing mutable; they talk through the mesh and wake each other with the
// wakers.
//
// One loop turn: submit and wait (one io_uring_enter), dispatch
// completions (network, disk, timers, wakes), drain the mesh, then
// end_of_turn(): flush every partition appended to (group commit: one write
// and one fdatasync for the whole turn), send forwarded publishes to their
// owners, replay stalled sessions.
//
// Publishes for a partition this shard does not own are copied into a
// forward_batch and sent to the owner; the owner answers with the outcomes
// in the same object (the sender owns it and recycles it).
//
// Ownership: every member is touched only on this shard's thread, except
// `_stop_requested` (any thread) and what the node reads at start-up.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/config.h"
#include "broker/consumer.h"
#include "broker/io/buffer_ring.h"
#include "broker/io/ring.h"
#include "broker/io/tcp_listener.h"
#include "broker/io/timer.h"
#include "broker/io/uring_file_io.h"
#include "broker/io/waker.h"
#include "broker/mesh.h"
#include "broker/metrics.h"
#include "broker/partition.h"
#include "broker/session.h"
#include "broker/streams.h"

namespace nagare::broker {

class node;

inline constexpr std::size_t sessions_per_shard_max = 16384;
inline constexpr std::size_t forward_batches_per_shard_max = 256;
inline constexpr std::size_t forward_batch_messages_max = 4096;
inline constexpr std::uint64_t shard_tick_ns = 10'000'000;  // 10 ms
// Consumer state saves in flight at once on one shard (each holds one file
// operation); cursors beyond it start on a later tick.
inline constexpr std::size_t state_saves_in_flight_max = 256;
static_assert(state_save_wait_ticks * shard_tick_ns < state_save_interval_ns,
              "a save must start early enough to end within the save interval");
// publish_ticket.kind: who waits for a message's outcome.
inline constexpr std::uint32_t ticket_from_session = 0;
inline constexpr std::uint32_t ticket_from_forward = 1;   // forwarded from another shard
inline constexpr std::uint32_t ticket_dead_letter = 2;    // a consumer's dead-letter copy

// Messages of one loop turn for partitions of one other shard.
struct forward_item {
    std::uint32_t stream_index = 0;
    std::uint32_t partition = 0;
    publish_ticket origin;
    std::uint32_t project_offset = 0, project_bytes = 0;
    std::uint32_t subject_offset = 0, subject_bytes = 0;
    std::uint32_t msg_id_offset = 0, msg_id_bytes = 0;
    std::uint32_t payload_offset = 0, payload_bytes = 0;
    std::uint32_t headers_first = 0, headers_count = 0;  // into forward_batch::header_spans
};

struct forward_batch {
    std::uint32_t from = 0;
    std::uint32_t to = 0;
    std::uint32_t inbound_slot = 0;  // the owner's handle while it works on it
    std::uint32_t generation = 0;
    std::uint32_t next = 0;  // owner: first item not yet published
    std::uint32_t resolved = 0;
    stream_table_ptr streams;
    std::vector<std::byte> arena;
    std::vector<forward_item> items;
    std::vector<std::uint32_t> header_spans;  // key offset, key bytes, value offset, value bytes
    std::vector<publish_outcome> outcomes;

    void clear() noexcept;
    [[nodiscard]] std::uint32_t add(std::string_view bytes);
};

enum class mesh_kind : std::uint16_t {
    forward_publish = 1,
    forward_done = 2,
    admin_request = 3,  // origin -> shard 0
    admin_apply = 4,    // shard 0 -> every shard: adopt job.table, fill stats
    admin_applied = 5,  // every shard -> shard 0
    admin_done = 6,     // shard 0 -> origin: answer the session
    sub_attach = 7,     // session shard -> owner: subscribe_job
    sub_attached = 8,   // owner -> session shard: subscribe_job answered
    sub_detach = 9,     // session shard -> owner: detach_job
    sub_ended = 10,     // owner -> session shard: detach_job (consumer or stream deleted)
    deliver = 11,       // owner -> session shard: deliver_frame
    deliver_back = 12,  // session shard -> owner: deliver_frame returned
    ack = 13,           // session shard -> owner: ack_job
    ack_done = 14,      // owner -> session shard: ack_job answered
};

// Subscribe, detach and ack requests between a session's shard and the
// shards owning the stream's partitions (shard_consumers.cc).
struct subscribe_job;
struct detach_job;
struct ack_job;

// One stream admin request on its way through the shards (shard_admin.cc).
struct admin_job;

class shard final : session_host,
                    publish_sink,
                    consumer_host,
                    io::accept_handler,
                    io::timer_handler,
                    io::wake_handler {
public:
    shard(node& owner, shard_id id);
    ~shard();

    // The thread body: set up, serve until stop is requested, shut down.
    void run() noexcept;
    void request_stop() noexcept { _stop_requested.store(true, std::memory_order_release); }

    [[nodiscard]] shard_id id() const noexcept { return _id; }
    [[nodiscard]] const shard_probe& probe() const noexcept { return _probe; }

private:
    // session_host
    [[nodiscard]] const node_config& config() const noexcept override;
    [[nodiscard]] const stream_table_ptr& streams() const noexcept override { return _streams; }
    [[nodiscard]] std::span<const std::byte> hello_ok(protocol::frame_encoder& encoder) override;
    [[nodiscard]] partition::accepted publish(const stream_info& stream,
                                              const protocol::message_ref& message,
                                              const publish_ticket& ticket) noexcept override;
    void admin(session& from, const protocol::fb::Admin& request) override;
    void stalled(session& s) noexcept override;
    void closed(session& s) noexcept override;
    [[nodiscard]] std::uint64_t now_ns() const noexcept override { return _now_ns; }
    void subscribe(session& from, const protocol::fb::Subscribe& request) override;
    void ack(session& from, const protocol::fb::Ack& request) override;
    void unsubscribe(session& from, std::uint64_t subscription_id) override;
    void return_frame(deliver_frame* frame) noexcept override;

    // publish_sink
    void on_published(const publish_ticket& ticket, const publish_outcome& outcome) noexcept override;
    void on_new_data(partition& p) noexcept override;

    // consumer_host
    [[nodiscard]] std::span<std::byte> read_buffer() noexcept override;
    [[nodiscard]] protocol::frame_encoder& deliver_encoder() noexcept override { return _deliver_encoder; }
    [[nodiscard]] deliver_frame* take_deliver_frame() noexcept override;
    void send_deliver(deliver_frame* frame) noexcept override;
    [[nodiscard]] dead_letter_result dead_letter(consumer_cursor& cursor, std::uint32_t slot,
                                                 const storage::record_view& record,
                                                 std::uint32_t deliveries) noexcept override;
    void activate(consumer_cursor& cursor) noexcept override;
    // accept_handler
    void on_accept(int fd) noexcept override;
    void on_accept_error(int error) noexcept override;
    // timer_handler
    void on_timer() noexcept override;
    // wake_handler
    void on_wake() noexcept override;

    [[nodiscard]] bool set_up();
    [[nodiscard]] bool open_partitions();
    void serve() noexcept;
    void shut_down() noexcept;
    void end_of_turn() noexcept;
    void drain_mesh() noexcept;
    void send_forwards() noexcept;
    void publish_inbound(forward_batch& batch) noexcept;
    void finish_forward(forward_batch& batch) noexcept;
    [[nodiscard]] partition* local_partition(std::uint32_t stream_index,
                                             std::uint32_t partition_id) noexcept;
    [[nodiscard]] partition::accepted forward(shard_id owner, std::uint32_t stream_index,
                                              std::uint32_t partition_id,
                                              const protocol::message_ref& message,
                                              const publish_ticket& ticket) noexcept;
    void resolve_origin(const publish_ticket& ticket, const publish_outcome& outcome) noexcept;
    [[nodiscard]] forward_batch* take_batch() noexcept;
    void handle_admin(session& from, const protocol::fb::Admin& request);
    // shard_admin.cc
    void on_admin_message(mesh_kind kind, admin_job* job) noexcept;
    void start_admin_job(admin_job* job) noexcept;  // shard 0
    void broadcast_admin(admin_job* job) noexcept;  // shard 0
    void apply_admin(admin_job* job) noexcept;      // every shard
    void finish_admin(admin_job* job) noexcept;     // shard 0
    void answer_admin(admin_job* job) noexcept;     // origin
    void apply_table(stream_table_ptr next);
    [[nodiscard]] std::unique_ptr<partition> open_partition(const stream_info& stream,
                                                            std::uint32_t stream_index,
                                                            std::uint32_t partition_id);
    void send_to(shard_id to, mesh_kind kind, void* object) noexcept;
    // shard_consumers.cc
    void on_consumer_message(mesh_kind kind, void* object) noexcept;
    // After the last barrier of shutdown: frees what is left in the queues.
    void discard_consumer_message(mesh_kind kind, void* object) noexcept;
    void attach_here(subscribe_job* job) noexcept;                  // owner
    void attached(subscribe_job* job) noexcept;                     // session shard
    void detach_here(detach_job* job) noexcept;                     // owner
    void ended(detach_job* job) noexcept;                           // session shard
    void ack_here(ack_job* job) noexcept;                           // owner
    void ack_answered(ack_job* job) noexcept;                       // session shard
    void frame_back(deliver_frame* frame) noexcept;                 // owner
    void deliver_here(deliver_frame* frame) noexcept;               // session shard
    void detach_subscription(const session_subscription& sub) noexcept;
    void run_consumers() noexcept;
    void tick_consumers() noexcept;
    // Every tick: takes the outcomes of finished consumer state saves and
    // starts the due ones (consumer_cursor::step_state_save), never waiting.
    // Returns how many it started.
    std::size_t save_consumer_states(consumer_cursor::save_when when) noexcept;
    // Drops the orphaned stores whose save ended, removing their files if asked.
    void reap_orphan_stores() noexcept;
    // A store that left its cursor: kept while its save is in flight, then its
    // files are removed (remove_files) and it is closed.
    void retire_store(std::unique_ptr<storage::consumer_state_store> store, std::string_view name,
                      bool remove_files) noexcept;
    [[nodiscard]] std::size_t state_saves_in_flight() const noexcept;
    // Shutdown: waits for the saves in flight, saves every changed state once
    // more and waits for those (bounded by `deadline_ns`).
    void drain_consumer_states(std::uint64_t deadline_ns) noexcept;
    void wait_for_state_saves(std::uint64_t deadline_ns) noexcept;
    void load_consumers(const stream_info& stream, partition& part, std::uint32_t partition_id);
    [[nodiscard]] consumer* consumer_by_handle(std::uint64_t handle) noexcept;
    [[nodiscard]] consumer* find_consumer(std::string_view stream, std::string_view name) noexcept;
    [[nodiscard]] consumer& create_consumer(consumer_config config, std::uint64_t epoch);
    [[nodiscard]] consumer_cursor& add_cursor(consumer& c, partition& part, std::uint32_t partition_id,
                                              std::optional<storage::partition_ack_state> state,
                                              storage::consumer_counters counters);
    // Removes a consumer: its subscribers get `reason`; durable files go when remove_files.
    void end_consumer(consumer& c, protocol::errc reason, std::string_view message, bool remove_files) noexcept;
    void on_dead_lettered(const publish_ticket& ticket, const publish_outcome& outcome) noexcept;
    [[nodiscard]] session* session_at(std::uint32_t slot, std::uint32_t generation) noexcept;
    void fill_consumer_reports(admin_job* job) noexcept;
    void retire_partitions() noexcept;
    void update_clock() noexcept;

    node& _node;
    shard_id _id;
    std::atomic<bool> _stop_requested{false};
    shard_probe _probe;
    std::uint64_t _now_ns = 0;
    stream_table_ptr _streams;

    std::unique_ptr<io::ring> _ring;
    std::unique_ptr<io::buffer_ring> _buffers;
    std::unique_ptr<io::uring_file_io> _file_io;
    std::unique_ptr<io::wake_target> _wake_target;
    std::vector<std::unique_ptr<io::waker>> _wakers;  // [other shard]
    std::unique_ptr<io::tcp_listener> _main_listener;
    std::unique_ptr<io::tcp_listener> _shard_listener;
    std::unique_ptr<io::timer> _timer;
    std::uint64_t _ticks = 0;

    std::vector<std::unique_ptr<session>> _sessions;
    std::vector<std::uint32_t> _free_sessions;
    std::vector<session*> _stalled_sessions;
    session_limits _session_limits;

    // [stream index][partition]: nullptr where another shard owns it.
    std::vector<std::vector<std::unique_ptr<partition>>> _partitions;
    std::vector<partition*> _dirty_partitions;

    std::vector<std::unique_ptr<forward_batch>> _batch_storage;
    std::vector<forward_batch*> _free_batches;
    std::vector<forward_batch*> _outbox;            // [owner shard]: being filled this turn
    std::vector<mesh_message> _unsent;               // mesh pushes refused (queue full)
    std::vector<forward_batch*> _inbound;            // [slot] batches from other shards
    std::vector<std::uint32_t> _free_inbound;
    std::vector<forward_batch*> _inbound_stalled;    // owner side: a partition was busy
    std::vector<protocol::header_ref> _header_scratch;

    // Admin: shard 0 runs one job at a time; partitions of a deleted stream
    // close once their writes are done, then the job is reported applied.
    std::vector<admin_job*> _admin_queue;  // shard 0
    admin_job* _admin_running = nullptr;   // shard 0
    std::vector<std::unique_ptr<partition>> _retiring;
    std::vector<admin_job*> _retiring_jobs;

    // Consumers whose cursors read partitions this shard owns.
    std::vector<std::unique_ptr<consumer>> _consumers;  // [index]; nullptr: free
    std::vector<std::uint32_t> _consumer_generations;    // [index]
    std::vector<consumer_cursor*> _active_cursors;       // to run at the end of the turn
    std::vector<consumer_cursor*> _running_cursors;      // scratch
    // State stores of ended cursors whose save is still in flight: their
    // operations point into them. A new cursor on the same files does not
    // start a save before they are gone.
    struct orphan_store {
        std::unique_ptr<storage::consumer_state_store> store;
        std::string name;  // the consumer's
        bool remove_files = false;
    };
    std::vector<orphan_store> _orphan_stores;
    std::vector<std::unique_ptr<deliver_frame>> _frame_storage;
    std::vector<deliver_frame*> _free_frames;
    std::vector<std::unique_ptr<ack_job>> _ack_job_storage;
    std::vector<ack_job*> _free_ack_jobs;
    std::unique_ptr<std::byte[]> _read_buffer;
    protocol::frame_encoder _deliver_encoder{64u << 10};
    std::uint64_t _ephemeral_count = 0;
    struct dead_letter_request {
        std::string stream;
        bool failed = false;
        std::uint64_t retry_at_ns = 0;
    };
    std::vector<dead_letter_request> _dlq_requested;  // dead-letter streams being created
    std::vector<protocol::header_ref> _dlq_headers;
    std::array<std::string, 6> _dlq_values;
};

}  // namespace nagare::broker
