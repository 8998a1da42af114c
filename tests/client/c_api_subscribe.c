/* Subscriptions through the C API, compiled as C. The callback acks even
 * offsets and naks odd ones (100 ms) by position, and counts what it saw;
 * the C++ side (c_api_test.cc) drives the fake node's deliveries. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nagare/nagare_c.h"

struct c_sub_run {
    nagare_client* client;
    nagare_subscription* subscription;
    atomic_int received;
    atomic_int bad_fields;
    atomic_int verb_failures;
};

struct c_sub_run* c_sub_start(const char* url, int* rc);
int c_sub_received(struct c_sub_run* run);
int c_sub_bad_fields(struct c_sub_run* run);
int c_sub_verb_failures(struct c_sub_run* run);
int c_sub_ack_after_stop(struct c_sub_run* run);
void c_sub_free(struct c_sub_run* run);

static void on_message(const nagare_message* m, void* user_data) {
    struct c_sub_run* run = (struct c_sub_run*)user_data;
    int rc = 0;
    if (m->subscription != run->subscription && run->subscription != NULL) {
        atomic_fetch_add(&run->bad_fields, 1);
    }
    if (strcmp(m->project, "proj-c") != 0 || m->project_bytes != 6 ||
        strncmp(m->subject, "task.", 5) != 0 || m->msg_id_bytes == 0 || m->payload_bytes != 2 ||
        memcmp(m->payload, "{}", 2) != 0 || m->header_count != 1 ||
        strcmp(m->headers[0].key, "trace_id") != 0 || m->headers[0].value_bytes != 3) {
        atomic_fetch_add(&run->bad_fields, 1);
    }
    if (m->offset % 2 == 0) {
        rc = nagare_ack(m->subscription, m->partition, m->offset);
    } else {
        rc = nagare_nak(m->subscription, m->partition, m->offset, 100);
    }
    if (rc != NAGARE_OK) atomic_fetch_add(&run->verb_failures, 1);
    atomic_fetch_add(&run->received, 1);
}

struct c_sub_run* c_sub_start(const char* url, int* rc) {
    static const char* const subjects[] = {"task.*"};
    struct c_sub_run* run = calloc(1, sizeof *run);
    nagare_subscribe_options options;
    if (run == NULL) return NULL;
    *rc = nagare_connect(url, NULL, &run->client);
    if (*rc != NAGARE_OK) return run;
    memset(&options, 0, sizeof options);
    options.project = "proj-c";
    options.subjects = subjects;
    options.subject_count = 1;
    options.consumer = "c-worker";
    options.ack_wait_ms = 2000;
    *rc = nagare_subscribe(run->client, "events", &options, on_message, run, &run->subscription);
    return run;
}

int c_sub_received(struct c_sub_run* run) { return atomic_load(&run->received); }
int c_sub_bad_fields(struct c_sub_run* run) { return atomic_load(&run->bad_fields); }
int c_sub_verb_failures(struct c_sub_run* run) { return atomic_load(&run->verb_failures); }

/* Unsubscribes, then shows that acks on a fresh handle fail cleanly. */
int c_sub_ack_after_stop(struct c_sub_run* run) {
    nagare_unsubscribe(run->subscription);
    run->subscription = NULL;
    return nagare_ack(NULL, 0, 0);
}

void c_sub_free(struct c_sub_run* run) {
    if (run == NULL) return;
    nagare_unsubscribe(run->subscription);
    nagare_close(run->client);
    free(run);
}
