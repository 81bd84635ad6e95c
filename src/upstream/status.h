/*
 * What `upstream_status` (status_module.c) shows of a peer, for the admin API to show
 * the same fields the same way.
 */
#ifndef RP_UPSTREAM_STATUS_H
#define RP_UPSTREAM_STATUS_H

#include "upstream/upstream.h"

#include <stdint.h>

struct evbuffer;

/* Appends s's fields as JSON members ("address":..., ..., "window_failures":N), without
 * the braces: state, weights, in flight, EWMA latencies, health, failures, ejection. */
void rp_upstream_status_peer_fields(struct evbuffer *b, rp_upstream_conf_t *u,
                                    rp_upstream_server_t *s, int64_t now);

/* s's state as shown: down, draining, ejected, unhealthy, unknown, full (at max_conns),
 * unavailable (resting after max_fails), healthy or up. */
const char *rp_upstream_status_state(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now);

#endif
