#include "broker/io/ring.h"

#include <cerrno>

#include "protocol/assert.h"

namespace nagare::broker::io {

std::expected<std::unique_ptr<ring>, int> ring::create(unsigned entries) {
    std::unique_ptr<ring> r(new ring());
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (const unsigned flags : attempts) {
        rc = io_uring_queue_init(entries, &r->_ring, flags);
        if (rc == 0) {
            r->_flags = flags;
            return r;
        }
    }
    return std::unexpected(-rc);
}

ring::~ring() { io_uring_queue_exit(&_ring); }

std::uint64_t ring::user_data(const completion_handler& handler, unsigned tag) noexcept {
    NG_ASSERT(tag <= ring_tag_max, "ring tag out of range");
    const auto address = reinterpret_cast<std::uintptr_t>(&handler);
    NG_ASSERT((address & ring_tag_max) == 0, "completion handlers must be 8-byte aligned");
    return address | tag;
}

io_uring_sqe* ring::prep(completion_handler& handler, unsigned tag, unsigned free_needed) noexcept {
    const std::uint64_t data = user_data(handler, tag);
    if (io_uring_sq_space_left(&_ring) < free_needed) io_uring_submit(&_ring);
    io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
    NG_ASSERT(sqe != nullptr, "submission queue full after a submit");
    io_uring_sqe_set_data64(sqe, data);
    return sqe;
}

void ring::schedule(submit_hook& hook) noexcept {
    if (hook._hook_scheduled) return;
    hook._hook_scheduled = true;
    hook._hook_next = nullptr;
    if (_hooks_tail == nullptr) {
        _hooks_head = &hook;
    } else {
        _hooks_tail->_hook_next = &hook;
    }
    _hooks_tail = &hook;
}

void ring::run_hooks() noexcept {
    for (unsigned round = 0; _hooks_head != nullptr; ++round) {
        NG_ASSERT(round < ring_hook_rounds_max, "submit hooks keep scheduling each other");
        submit_hook* hook = _hooks_head;
        _hooks_head = _hooks_tail = nullptr;
        while (hook != nullptr) {
            submit_hook* next = hook->_hook_next;
            hook->_hook_next = nullptr;
            hook->_hook_scheduled = false;
            hook->before_submit();  // may destroy *hook
            hook = next;
        }
    }
}

int ring::submit_and_wait(unsigned wait_nr) noexcept {
    run_hooks();
    // wait_nr 0 must still enter with GETEVENTS, or DEFER_TASKRUN completions stay queued.
    const int rc = wait_nr == 0 ? io_uring_submit_and_get_events(&_ring)
                                : io_uring_submit_and_wait(&_ring, wait_nr);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY) return rc;
    return 0;
}

int ring::submit_and_wait_for(unsigned wait_nr, std::uint64_t timeout_ns) noexcept {
    if (wait_nr == 0) return submit_and_wait(0);
    run_hooks();
    __kernel_timespec ts{};
    ts.tv_sec = static_cast<long long>(timeout_ns / 1'000'000'000u);
    ts.tv_nsec = static_cast<long long>(timeout_ns % 1'000'000'000u);
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_submit_and_wait_timeout(&_ring, &cqe, wait_nr, &ts, nullptr);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY) return rc;
    return 0;
}

std::size_t ring::dispatch() noexcept {
    std::size_t delivered = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&_ring, &cqe) == 0) {
        const auto data = io_uring_cqe_get_data64(cqe);
        const int res = cqe->res;
        const unsigned flags = cqe->flags;
        io_uring_cqe_seen(&_ring, cqe);
        auto* handler = reinterpret_cast<completion_handler*>(data & ~std::uint64_t{ring_tag_max});
        if (handler != nullptr) {
            handler->on_cqe(static_cast<unsigned>(data & ring_tag_max), res, flags);
        }
        ++delivered;
    }
    return delivered;
}

bool ring::supports(unsigned opcode) noexcept {
    io_uring_probe* probe = io_uring_get_probe_ring(&_ring);
    if (probe == nullptr) return false;
    const bool known = io_uring_opcode_supported(probe, static_cast<int>(opcode)) != 0;
    io_uring_free_probe(probe);
    return known;
}

unsigned ring::completions_ready() const noexcept { return io_uring_cq_ready(&_ring); }

int ring::register_buffer_ring(io_uring_buf_reg& registration) noexcept {
    return io_uring_register_buf_ring(&_ring, &registration, 0);
}

int ring::unregister_buffer_ring(std::uint16_t buffer_group_id) noexcept {
    return io_uring_unregister_buf_ring(&_ring, buffer_group_id);
}

}  // namespace nagare::broker::io
