/* nagare C API: the nagare client library (publish, subscribe), for C and
 * for bindings of other languages.
 *
 * A nagare_client wraps one nagare::client::Client (see nagare/client.h):
 * one I/O thread, shard-aware routing, a bounded in-flight window, and
 * reconnect with backoff that re-sends unacknowledged publishes with the
 * same msg_id. nagare_publish is synchronous: it returns once the broker
 * acknowledged (or refused) the message. Every function but nagare_close
 * may be called from any thread, concurrently, on the same client.
 *
 * Subscriptions (nagare_subscribe) call a C function on the client's I/O
 * thread for every delivered message; the message is acked by its position
 * (nagare_ack, nagare_nak, ...) from the callback or later, from any thread.
 * The rules of nagare/subscription.h apply: the callback must be short, must
 * not block, must not call nagare_subscribe, nagare_flush or nagare_close.
 *
 * Return codes are the protocol's error numbers (docs/protocol.md), plus
 * NAGARE_UNAVAILABLE and NAGARE_CLOSED for failures on the client's side.
 * nagare_last_error_message() gives the text of the calling thread's last
 * failure. */
#ifndef NAGARE_NAGARE_C_H
#define NAGARE_NAGARE_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum nagare_code {
    NAGARE_OK = 0,
    NAGARE_BAD_FRAME = 1,
    NAGARE_FRAME_TOO_LARGE = 2,
    NAGARE_UNSUPPORTED_VERSION = 3,
    NAGARE_BAD_SUBJECT = 4,
    NAGARE_BAD_PATTERN = 5,
    NAGARE_BAD_PROJECT = 6,
    NAGARE_BAD_MSG_ID = 7,
    NAGARE_BAD_HEADERS = 8,
    NAGARE_PAYLOAD_TOO_LARGE = 9,
    NAGARE_BAD_REQUEST = 10,
    NAGARE_NOT_AUTHORIZED = 11,
    NAGARE_NO_SUCH_STREAM = 12,
    NAGARE_NO_SUCH_CONSUMER = 13,
    NAGARE_NO_SUCH_SUBSCRIPTION = 14,
    NAGARE_UNKNOWN_POSITION = 15,
    NAGARE_STREAM_EXISTS = 16,
    NAGARE_CONSUMER_EXISTS = 17,
    NAGARE_STORAGE_FULL = 18,
    NAGARE_STORAGE_ERROR = 19,
    NAGARE_OVERLOADED = 20,
    NAGARE_SHUTTING_DOWN = 21,
    NAGARE_INTERNAL = 22,
    /* Client side: the broker cannot be reached; the client is closed. */
    NAGARE_UNAVAILABLE = 100,
    NAGARE_CLOSED = 101
};

/* A stream name is at most 64 bytes; a dead-letter name "$dlq.<s>.<c>" 134. */
#define NAGARE_STREAM_BYTES_MAX 134

typedef struct nagare_client nagare_client;

typedef struct nagare_position {
    char stream[NAGARE_STREAM_BYTES_MAX + 1]; /* NUL-terminated */
    uint32_t partition;
    uint64_t offset;
    int duplicate; /* 1: the msg_id was stored before; offset is the first one */
} nagare_position;

/* Connects to url ("nagare://host:port") with token (NULL: none). On
 * NAGARE_OK, *out holds a client to release with nagare_close. */
int nagare_connect(const char* url, const char* token, nagare_client** out);

/* Publishes payload[0..payload_bytes) and waits for the broker's answer.
 * msg_id NULL: the client generates one (a ULID). out may be NULL. */
int nagare_publish(nagare_client* client, const char* project, const char* subject,
                   const void* payload, size_t payload_bytes, const char* msg_id,
                   nagare_position* out);

/* Waits until every publish is acknowledged (timeout_ms < 0: no limit).
 * NAGARE_OK, or NAGARE_OVERLOADED when the time ran out. */
int nagare_flush(nagare_client* client, int64_t timeout_ms);

/* Closes the connections, stops the I/O thread and frees the client. NULL is a no-op.
 * Subscriptions end (their handles stay to be freed with nagare_unsubscribe).
 * REQUIRES: no other call on this client is running or follows. */
void nagare_close(nagare_client* client);

/* ---- Subscriptions ---------------------------------------------------- */

typedef struct nagare_subscription nagare_subscription;

/* Views into the received frame: valid only during the callback. Strings are
 * NUL-terminated; the *_bytes counts exclude the NUL. */
typedef struct nagare_header {
    const char* key;
    size_t key_bytes;
    const char* value;
    size_t value_bytes;
} nagare_header;

typedef struct nagare_message {
    nagare_subscription* subscription; /* for nagare_ack and friends */
    uint32_t partition;
    uint64_t offset;
    const char* project;
    size_t project_bytes;
    const char* subject;
    size_t subject_bytes;
    const char* msg_id;
    size_t msg_id_bytes;
    uint64_t timestamp_ns;   /* broker time at append, Unix ns */
    uint32_t delivery_count; /* 1 for a first delivery */
    const nagare_header* headers;
    size_t header_count;
    const void* payload;
    size_t payload_bytes;
} nagare_message;

typedef void (*nagare_message_fn)(const nagare_message* message, void* user_data);

enum nagare_deliver_policy {
    NAGARE_DELIVER_ALL = 0,
    NAGARE_DELIVER_NEW = 1,
    NAGARE_DELIVER_FROM_OFFSET = 2,     /* start_offset */
    NAGARE_DELIVER_FROM_TIME = 3,       /* start_time_ns */
    NAGARE_DELIVER_LAST_PER_SUBJECT = 4 /* needs project */
};

enum nagare_ack_policy { NAGARE_ACK_EXPLICIT = 0, NAGARE_ACK_NONE = 1 };

/* All zero (or a NULL pointer) means: every project and subject, ephemeral,
 * deliver all, explicit acks, the broker's defaults, a 5 s subscribe timeout. */
typedef struct nagare_subscribe_options {
    const char* project;         /* NULL or "": every project */
    const char* const* subjects; /* subject_count patterns ("task.*", "order.>") */
    size_t subject_count;        /* 0: every subject */
    const char* consumer;        /* durable consumer name; NULL or "": ephemeral */
    int deliver;                 /* enum nagare_deliver_policy */
    uint64_t start_offset;
    uint64_t start_time_ns;
    int ack;                    /* enum nagare_ack_policy */
    uint32_t ack_wait_ms;       /* 0: broker default (30 s) */
    uint32_t max_deliver;       /* 0: broker default (5) */
    const uint32_t* backoff_ms; /* backoff_count redelivery delays */
    size_t backoff_count;
    uint32_t max_inflight;        /* 0: broker default (1024 per partition) */
    int ordered;                  /* 1: one unacknowledged message per project */
    int64_t subscribe_timeout_ms; /* wait for the broker's answer; 0: 5000 */
} nagare_subscribe_options;

/* Subscribes to stream and waits for the broker's answer. On NAGARE_OK, *out
 * holds the subscription, to release with nagare_unsubscribe; on_message may
 * run before nagare_subscribe returns. options may be NULL. */
int nagare_subscribe(nagare_client* client, const char* stream,
                     const nagare_subscribe_options* options, nagare_message_fn on_message,
                     void* user_data, nagare_subscription** out);

/* Ack verbs by position, from the callback or later, from any thread. They
 * queue the verb (the I/O thread batches them into Ack frames) and return
 * NAGARE_OK, NAGARE_CLOSED (subscription ended) or NAGARE_BAD_REQUEST
 * (ack policy none). */
int nagare_ack(nagare_subscription* subscription, uint32_t partition, uint64_t offset);
int nagare_nak(nagare_subscription* subscription, uint32_t partition, uint64_t offset,
               uint32_t delay_ms);
int nagare_in_progress(nagare_subscription* subscription, uint32_t partition, uint64_t offset);
int nagare_term(nagare_subscription* subscription, uint32_t partition, uint64_t offset);

/* Ends the subscription (queued acks are sent first) and frees it; NULL is a
 * no-op. From outside the callback it returns once the callback is not
 * running and will not run again. Allowed from the subscription's own
 * callback (which then must not use `subscription` afterwards), and after
 * nagare_close of its client. */
void nagare_unsubscribe(nagare_subscription* subscription);

/* "BAD_SUBJECT" for NAGARE_BAD_SUBJECT; a static string. */
const char* nagare_error_string(int code);

/* The message of the calling thread's last failed call (static until that
 * thread's next call); "" when there is none. */
const char* nagare_last_error_message(void);

#ifdef __cplusplus
}
#endif

#endif /* NAGARE_NAGARE_C_H */
